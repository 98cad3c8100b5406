from .configuration_encoder import EncoderConfig
from .modeling_encoder import (
    EncoderForMaskedLM,
    EncoderForSequenceClassification,
    EncoderModel,
    EncoderPreTrainedModel,
)

__all__ = [
    "EncoderConfig",
    "EncoderPreTrainedModel",
    "EncoderModel",
    "EncoderForMaskedLM",
    "EncoderForSequenceClassification",
]
