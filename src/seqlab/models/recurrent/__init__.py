from .configuration_recurrent import RecurrentConfig
from .modeling_recurrent import (
    RecurrentForCausalLM,
    RecurrentForSequenceClassification,
    RecurrentModel,
    RecurrentPreTrainedModel,
)

__all__ = [
    "RecurrentConfig",
    "RecurrentPreTrainedModel",
    "RecurrentModel",
    "RecurrentForCausalLM",
    "RecurrentForSequenceClassification",
]
