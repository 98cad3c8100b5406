from .auto_registration import FAMILIES, register_auto_classes
from .decoder import DecoderConfig, DecoderForCausalLM, DecoderForSequenceClassification, DecoderModel
from .encoder import EncoderConfig, EncoderForMaskedLM, EncoderForSequenceClassification, EncoderModel
from .recurrent import (
    RecurrentConfig,
    RecurrentForCausalLM,
    RecurrentForSequenceClassification,
    RecurrentModel,
)

__all__ = [
    "FAMILIES",
    "register_auto_classes",
    "RecurrentConfig",
    "RecurrentModel",
    "RecurrentForCausalLM",
    "RecurrentForSequenceClassification",
    "DecoderConfig",
    "DecoderModel",
    "DecoderForCausalLM",
    "DecoderForSequenceClassification",
    "EncoderConfig",
    "EncoderModel",
    "EncoderForMaskedLM",
    "EncoderForSequenceClassification",
]
