from .configuration_decoder import DecoderConfig
from .modeling_decoder import (
    DecoderModel,
    DecoderPreTrainedModel,
    DecoderForCausalLM,
    DecoderForSequenceClassification,
)

__all__ = ["DecoderConfig", "DecoderPreTrainedModel", "DecoderModel", "DecoderForCausalLM", "DecoderForSequenceClassification"]
