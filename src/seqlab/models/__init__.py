from .auto_registration import register_auto_classes
from .decoder import DecoderConfig, DecoderForCausalLM, DecoderForSequenceClassification, DecoderModel
from .encoder import EncoderConfig, EncoderForMaskedLM, EncoderForSequenceClassification, EncoderModel
from .families import FAMILIES, Family, family_of_config, family_of_model_type
from .recurrent import (
    RecurrentConfig,
    RecurrentForCausalLM,
    RecurrentForSequenceClassification,
    RecurrentModel,
)

__all__ = [
    "FAMILIES",
    "Family",
    "family_of_config",
    "family_of_model_type",
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
