from .configuration_decoder import DecoderConfig
from .modeling_decoder import (
    DecoderForCausalLM,
    DecoderForSequenceClassification,
    DecoderModel,
    DecoderPreTrainedModel,
)

__all__ = [
    "DecoderConfig",
    "DecoderPreTrainedModel",
    "DecoderModel",
    "DecoderForCausalLM",
    "DecoderForSequenceClassification",
]
