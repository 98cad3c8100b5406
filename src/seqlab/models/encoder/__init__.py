from .configuration_encoder import EncoderConfig
from .modeling_encoder import (
    EncoderModel,
    EncoderPreTrainedModel,
    EncoderForMaskedLM,
    EncoderForSequenceClassification,
)

__all__ = ["EncoderConfig", "EncoderPreTrainedModel", "EncoderModel", "EncoderForMaskedLM", "EncoderForSequenceClassification"]
