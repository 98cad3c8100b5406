from .configuration_recurrent import RecurrentConfig
from .modeling_recurrent import (
    RecurrentModel,
    RecurrentPreTrainedModel,
    RecurrentForCausalLM,
    RecurrentForSequenceClassification,
)

__all__ = ["RecurrentConfig", "RecurrentPreTrainedModel", "RecurrentModel", "RecurrentForCausalLM", "RecurrentForSequenceClassification"]
