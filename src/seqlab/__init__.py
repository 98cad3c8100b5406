"""seqlab: recurrent networks and Transformers as real transformers models.

``import seqlab`` registers every configuration and model with the transformers Auto classes.
"""

from .models import (
    DecoderConfig,
    DecoderForCausalLM,
    DecoderForSequenceClassification,
    DecoderModel,
    EncoderConfig,
    EncoderForMaskedLM,
    EncoderForSequenceClassification,
    EncoderModel,
    RecurrentConfig,
    RecurrentForCausalLM,
    RecurrentForSequenceClassification,
    RecurrentModel,
    register_auto_classes,
)
from .models.recurrent.modeling_recurrent import RecurrentState

__version__ = "0.1.0"

register_auto_classes()

__all__ = [
    "RecurrentConfig",
    "RecurrentModel",
    "RecurrentForCausalLM",
    "RecurrentForSequenceClassification",
    "RecurrentState",
    "DecoderConfig",
    "DecoderModel",
    "DecoderForCausalLM",
    "DecoderForSequenceClassification",
    "EncoderConfig",
    "EncoderModel",
    "EncoderForMaskedLM",
    "EncoderForSequenceClassification",
    "register_auto_classes",
]
