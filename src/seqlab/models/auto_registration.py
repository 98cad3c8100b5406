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

from .families import FAMILIES


def register_auto_classes() -> None:
    for family in FAMILIES.values():
        AutoConfig.register(family.model_type, family.config_class, exist_ok=True)
        family.config_class.register_for_auto_class()
        for auto_name, model_class in family.auto_classes.items():
            getattr(transformers, auto_name).register(family.config_class, model_class, exist_ok=True)
            model_class.register_for_auto_class(auto_name)
