"""Register every seqlab family with the transformers Auto classes.

Two registrations per class:
- ``AutoX.register`` so that ``AutoModelForCausalLM.from_pretrained(dir)`` finds the class while
  seqlab is importable (no ``trust_remote_code`` needed);
- ``register_for_auto_class`` so that ``save_pretrained`` copies the family's configuration and
  modeling files next to the weights and writes ``auto_map``: the folder then loads with
  ``trust_remote_code=True`` on a machine without seqlab.
"""

import transformers
from transformers import AutoConfig

from .decoder import (
    DecoderConfig,
    DecoderForCausalLM,
    DecoderForSequenceClassification,
    DecoderModel,
)
from .encoder import (
    EncoderConfig,
    EncoderForMaskedLM,
    EncoderForSequenceClassification,
    EncoderModel,
)
from .recurrent import (
    RecurrentConfig,
    RecurrentForCausalLM,
    RecurrentForSequenceClassification,
    RecurrentModel,
)

FAMILIES = {
    "recurrent": (
        RecurrentConfig,
        {
            "AutoModel": RecurrentModel,
            "AutoModelForCausalLM": RecurrentForCausalLM,
            "AutoModelForSequenceClassification": RecurrentForSequenceClassification,
        },
    ),
    "decoder": (
        DecoderConfig,
        {
            "AutoModel": DecoderModel,
            "AutoModelForCausalLM": DecoderForCausalLM,
            "AutoModelForSequenceClassification": DecoderForSequenceClassification,
        },
    ),
    "encoder": (
        EncoderConfig,
        {
            "AutoModel": EncoderModel,
            "AutoModelForMaskedLM": EncoderForMaskedLM,
            "AutoModelForSequenceClassification": EncoderForSequenceClassification,
        },
    ),
}


def register_auto_classes() -> None:
    for config_class, heads in FAMILIES.values():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        config_class.register_for_auto_class()
        for auto_name, model_class in heads.items():
            getattr(transformers, auto_name).register(config_class, model_class, exist_ok=True)
            model_class.register_for_auto_class(auto_name)
