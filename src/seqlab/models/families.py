"""One record per model family: the facts that training, the experiment, the hub export and the demo read.

Before this record they were string checks spread over the code (``family != "recurrent"``,
``family == "encoder"``, objective and Auto-class tables); a new family now means one new entry here.

Seqlab's family names are ``recurrent``, ``decoder`` and ``encoder`` (the ``model_type`` without its
``seqlab_`` prefix). An experiment names its models freely (``lstm: configs/models/recurrent-tiny.yaml``);
the model YAML's ``family:`` key says which record applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .decoder import DecoderConfig, DecoderForCausalLM, DecoderForSequenceClassification, DecoderModel
from .encoder import EncoderConfig, EncoderForMaskedLM, EncoderForSequenceClassification, EncoderModel
from .recurrent import RecurrentConfig, RecurrentForCausalLM, RecurrentForSequenceClassification, RecurrentModel

LM_AUTO_NAMES = {"causal": "AutoModelForCausalLM", "masked": "AutoModelForMaskedLM"}


@dataclass(frozen=True)
class Family:
    name: str
    config_class: type
    base_model_class: type
    lm_class: type  # the pretraining head
    classifier_class: type
    objective: Literal["causal", "masked"]  # next-token prediction, or hidden tokens from both sides
    # Transformers have a table of max_position_embeddings positions, which caps the sequence length;
    # a recurrence has none
    has_position_table: bool
    # ULMFiT's layer groups, named rather than inferred from the order modules were registered in: the body
    # modules of the bottom group (embeddings), the stack whose layers are one group each, and the body
    # modules that join the head in the top group. Every body parameter must fall in one of them.
    ulmfit_bottom: tuple[str, ...]
    ulmfit_top: tuple[str, ...] = ()
    layers_attribute: str = "layers"

    @property
    def model_type(self) -> str:
        return self.config_class.model_type

    @property
    def uses_mask_token(self) -> bool:
        """The masked objective needs the tokenizer's mask id in the config."""
        return self.objective == "masked"

    @property
    def lm_auto_name(self) -> str:
        return LM_AUTO_NAMES[self.objective]

    @property
    def auto_classes(self) -> dict[str, type]:
        """Auto class name -> model class, as registered with transformers and written to ``auto_map``."""
        return {
            "AutoModel": self.base_model_class,
            self.lm_auto_name: self.lm_class,
            "AutoModelForSequenceClassification": self.classifier_class,
        }


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "recurrent",
            RecurrentConfig,
            RecurrentModel,
            RecurrentForCausalLM,
            RecurrentForSequenceClassification,
            objective="causal",
            has_position_table=False,
            ulmfit_bottom=("embed_tokens",),
        ),
        Family(
            "decoder",
            DecoderConfig,
            DecoderModel,
            DecoderForCausalLM,
            DecoderForSequenceClassification,
            objective="causal",
            has_position_table=True,
            ulmfit_bottom=("embed_tokens", "embed_positions"),
            ulmfit_top=("norm",),
        ),
        Family(
            "encoder",
            EncoderConfig,
            EncoderModel,
            EncoderForMaskedLM,
            EncoderForSequenceClassification,
            objective="masked",
            has_position_table=True,
            ulmfit_bottom=("embed_tokens", "embed_positions"),
            ulmfit_top=("norm",),
        ),
    )
}


def family_of_model_type(model_type: object) -> Family | None:
    """The family whose config has this ``model_type`` (``seqlab_decoder`` ...), or None."""
    return next((family for family in FAMILIES.values() if family.model_type == model_type), None)


def family_of_config(config: object) -> Family | None:
    """The family of a config object (by class, so subclasses count), or None."""
    return next((family for family in FAMILIES.values() if isinstance(config, family.config_class)), None)
