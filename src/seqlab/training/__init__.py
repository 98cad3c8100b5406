"""seqlab's training: one Accelerate loop shared by pretraining and fine-tuning, driven by YAML recipes."""

from .checkpointing import TrainingProgress, find_checkpoint, list_checkpoints
from .finetuning import run_finetuning
from .pretraining import run_pretraining
from .recipe import FINETUNE_FIELDS, PRETRAIN_FIELDS, recipe_from_argv, resolve_recipe

__all__ = [
    "run_pretraining",
    "run_finetuning",
    "resolve_recipe",
    "recipe_from_argv",
    "PRETRAIN_FIELDS",
    "FINETUNE_FIELDS",
    "TrainingProgress",
    "find_checkpoint",
    "list_checkpoints",
]
