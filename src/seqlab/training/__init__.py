"""seqlab's training: one Accelerate loop shared by pretraining and fine-tuning, driven by typed recipes."""

from .args import FinetuningArgs, PretrainingArgs, TrainingArgs
from .checkpointing import TrainingProgress, find_checkpoint, list_checkpoints
from .cli import args_from_argv
from .finetuning import run_finetuning
from .pretraining import run_pretraining
from .recipe import resolve_args

__all__ = [
    "run_pretraining",
    "run_finetuning",
    "TrainingArgs",
    "PretrainingArgs",
    "FinetuningArgs",
    "resolve_args",
    "args_from_argv",
    "TrainingProgress",
    "find_checkpoint",
    "list_checkpoints",
]
