"""The typed arguments of a training run: one dataclass field per recipe key.

``TrainingArgs`` holds the keys of the training loop that pretraining and fine-tuning share;
``PretrainingArgs`` and ``FinetuningArgs`` add their own keys and change a few defaults. Each field
carries its meaning (``metadata["help"]``, shown by ``--help``) and, where a value must be positive,
its bound (``metadata["bound"]``: ``"> 0"`` or ``">= 0"``), checked once for every key by
``check_bounds``. Choices are ``Literal`` types. The resolved arguments are written beside a run as
``recipe.yaml`` (``to_dict``). How a recipe is read and layered: ``recipe.py``; the command line:
``cli.py``.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import SeqlabUsageError

# The three ways to say how long training lasts; at most one may be set.
BUDGET_KEYS = ("max_steps", "max_train_tokens", "num_train_epochs")
Scheduler = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "warmup_stable_decay",
]
MixedPrecision = Literal["auto", "no", "bf16", "fp16"]
ReportTo = Literal["none", "tensorboard", "wandb"]
Strategy = Literal["full", "freeze_body", "ulmfit"]
TOKENIZER_TRAIN_KEYS = {
    "sources": "list",
    "vocab_size": "int",
    "kind": "str",
    "max_texts": "int",
    "min_frequency": "int",
}

POSITIVE, NON_NEGATIVE = "> 0", ">= 0"


def arg(default: Any = None, help: str = "", *, bound: str | None = None) -> Any:
    """A recipe key's field: its default, one-line meaning and (optionally) the bound its value must respect."""
    metadata = {"help": help, **({"bound": bound} if bound else {})}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: copy.copy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def redefault(base: type, name: str, default: Any, help: str | None = None) -> Any:
    """The field ``name`` of ``base`` with another default (and help): a subclass's own default for a shared key."""
    inherited = base.__dataclass_fields__[name].metadata
    return arg(default, inherited["help"] if help is None else help, bound=inherited.get("bound"))


@dataclass
class TrainingArgs:
    """Keys of the training loop, common to pretraining and fine-tuning (their defaults differ)."""

    config: str | None = arg(None, "the recipe YAML this recipe came from (relative paths resolve against it)")
    output_dir: str | None = arg(None, "folder of the run: checkpoints, final model, metrics.json, train_log.jsonl")
    overwrite_output_dir: bool = arg(False, "replace an existing, non-empty output_dir")
    seed: int = arg(42, "seed of model initialisation, data order, dropout and masking")
    per_device_train_batch_size: int = arg(32, "sequences per process per micro-batch", bound=POSITIVE)
    per_device_eval_batch_size: int | None = arg(
        None, "evaluation batch size (unset: the training one)", bound=POSITIVE
    )
    gradient_accumulation_steps: int = arg(1, "micro-batches per optimizer step", bound=POSITIVE)
    learning_rate: float = arg(5e-4, "peak learning rate of AdamW", bound=POSITIVE)
    weight_decay: float = arg(
        0.01, "AdamW weight decay of matrices (biases and norms are not decayed)", bound=NON_NEGATIVE
    )
    adam_beta1: float = arg(0.9, "AdamW beta1")
    adam_beta2: float = arg(0.999, "AdamW beta2")
    adam_epsilon: float = arg(1e-8, "AdamW epsilon")
    lr_scheduler_type: Scheduler = arg("cosine", "transformers.get_scheduler name")
    warmup_ratio: float = arg(0.0, "warmup as a fraction of the optimizer steps", bound=NON_NEGATIVE)
    warmup_steps: int = arg(0, "warmup steps (overrides warmup_ratio when > 0)", bound=NON_NEGATIVE)
    max_steps: int | None = arg(None, "optimizer steps to train for", bound=POSITIVE)
    max_train_tokens: int | None = arg(
        None, "token budget, turned into optimizer steps (compare families at equal tokens)", bound=POSITIVE
    )
    num_train_epochs: float | None = arg(
        None, "passes over the training data (unset: 1 when no other budget is given)", bound=POSITIVE
    )
    max_grad_norm: float | None = arg(1.0, "gradient clipping threshold (0 or null: no clipping)", bound=NON_NEGATIVE)
    mixed_precision: MixedPrecision = arg("auto", "auto: bf16 on a GPU that has it, else no")
    logging_steps: int = arg(10, "optimizer steps between train_log.jsonl records", bound=POSITIVE)
    eval_steps: int | None = arg(
        None, "optimizer steps between evaluations (always evaluated at the end)", bound=POSITIVE
    )
    max_eval_batches: int | None = arg(
        None, "evaluate on the first N batches' worth of the validation split (null: all of it)", bound=POSITIVE
    )
    save_steps: int | None = arg(None, "optimizer steps between checkpoints (null: no checkpoints)", bound=POSITIVE)
    save_total_limit: int | None = arg(2, "checkpoints kept (the oldest are deleted)", bound=NON_NEGATIVE)
    resume_from_checkpoint: str | None = arg(None, "'latest' or a checkpoint folder to continue from")
    report_to: ReportTo = arg("none", "experiment tracker through Accelerate")
    run_name: str | None = arg(None, "tracker project/run name (unset: the output_dir name)")
    dataloader_num_workers: int = arg(0, "DataLoader worker processes", bound=NON_NEGATIVE)
    torch_compile: bool = arg(False, "compile the model with torch.compile (GPU throughput)")
    save_model: bool = arg(True, "write the final model and tokenizer with save_pretrained")
    skip_nonfinite_batches: bool = arg(
        False, "skip (and count) a step whose loss or gradient is inf/NaN instead of stopping the run"
    )

    def to_dict(self) -> dict[str, Any]:
        """``{key: value}`` of every recipe key: what ``recipe.yaml`` records and trackers log."""
        return {field.name: copy.copy(getattr(self, field.name)) for field in dataclasses.fields(self)}


@dataclass
class PretrainingArgs(TrainingArgs):
    """A pretraining recipe: the shared keys plus the model, tokenizer and corpus."""

    learning_rate: float = redefault(TrainingArgs, "learning_rate", 1e-3)
    adam_beta2: float = redefault(TrainingArgs, "adam_beta2", 0.95)
    warmup_ratio: float = redefault(TrainingArgs, "warmup_ratio", 0.05)
    eval_steps: int | None = redefault(TrainingArgs, "eval_steps", 200)
    save_steps: int | None = redefault(TrainingArgs, "save_steps", 500)
    model_config: str | None = arg(None, "model YAML (family + config kwargs) or a folder with config.json")
    model: dict[str, Any] = arg({}, "config overrides, e.g. --model.hidden_size 64")
    tokenizer_path: str | None = arg(None, "tokenizer folder (trained first when missing and tokenizer_train is set)")
    tokenizer_train: dict[str, Any] | None = arg(
        None, "{sources, vocab_size, kind, max_texts, min_frequency}: train the tokenizer"
    )
    datasets: list[str] | None = arg(None, "pretraining sources: data keys, key:split or files")
    max_seq_length: int = arg(128, "tokens per packed block", bound=POSITIVE)
    max_corpus_tokens: int | None = arg(None, "cap on the tokens of the packed corpus", bound=POSITIVE)
    validation_fraction: float = arg(0.01, "share of documents held out for validation", bound=NON_NEGATIVE)
    num_proc: int | None = arg(None, "processes for tokenization", bound=POSITIVE)
    mlm_probability: float = arg(0.15, "masked-LM mask rate (encoder family)")


@dataclass
class FinetuningArgs(TrainingArgs):
    """A fine-tuning recipe: the shared keys plus the model to start from, the labelled data and the strategy."""

    learning_rate: float = redefault(TrainingArgs, "learning_rate", 1e-3)
    lr_scheduler_type: Scheduler = redefault(TrainingArgs, "lr_scheduler_type", "linear")
    warmup_ratio: float = redefault(TrainingArgs, "warmup_ratio", 0.1)
    save_steps: int | None = redefault(TrainingArgs, "save_steps", None)
    save_total_limit: int | None = redefault(TrainingArgs, "save_total_limit", 1)
    per_device_eval_batch_size: int | None = redefault(TrainingArgs, "per_device_eval_batch_size", 64)
    num_train_epochs: float | None = redefault(
        TrainingArgs, "num_train_epochs", 3.0, "passes over the training data (when no other budget is given)"
    )
    model_name_or_path: str | None = arg(None, "pretrained LM folder, or 'scratch' for fresh weights")
    model_config: str | None = arg(None, "for scratch: model YAML or folder whose config to copy")
    model: dict[str, Any] = arg({}, "config overrides, e.g. --model.classifier_dropout_prob 0.2")
    tokenizer_path: str | None = arg(None, "tokenizer folder (unset: the model folder)")
    dataset: str | None = arg("sst2_sentence", "labelled data key or file")
    train_split: str | None = arg("train", "split to fine-tune on")
    eval_split: str | None = arg(
        "validation",
        "split of dataset to evaluate on, or a labelled file of held-out rows "
        "(a file dataset has no split of its own: training rows are never scored as validation)",
    )
    eval_files: list[str] = arg([], "extra labelled files scored with the final classifier (--eval_file, repeatable)")
    max_length: int = arg(128, "truncate texts to this many tokens", bound=POSITIVE)
    num_labels: int | None = arg(None, "classes (unset: from the data)", bound=POSITIVE)
    num_train_examples: int | None = arg(
        None, "stratified subset of the training split chosen by seed (null: all)", bound=POSITIVE
    )
    dev_examples: int | None = arg(
        None,
        "carve a stratified dev set of this size off the training split (fixed by "
        "dev_seed, never trained on) and score it as dev_*: select settings on it, not on eval_split",
    )
    dev_seed: int = arg(0, "seed of the dev carve (not the run seed, so every run shares one dev set)")
    strategy: Strategy = arg("full", "full, freeze_body (linear probe) or ulmfit")
    ulmfit_lr_decay: float = arg(2.6, "ULMFiT: each lower layer group trains at lr / decay^depth")
    ulmfit_cut_frac: float = arg(0.1, "ULMFiT: fraction of steps the slanted triangular schedule rises")
    ulmfit_ratio: float = arg(32.0, "ULMFiT: ratio of the peak to the lowest learning rate")
    ulmfit_unfreeze_steps: int | None = arg(
        None, "ULMFiT: steps between unfreezing layer groups (unset: one epoch)", bound=POSITIVE
    )


# ------------------------------------------------------------------------------------------------
# The schema as the recipe reader, the command line and --help see it
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecipeKey:
    """One recipe key: its kind (``int``, ``float``, ``bool``, ``str``, ``list``, ``dict``), default, help, choices."""

    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    bound: str | None = None


_KINDS = {int: "int", float: "float", bool: "bool", str: "str", list: "list", dict: "dict"}


def _kind_of(annotation: Any) -> tuple[str, tuple[str, ...] | None]:
    """``(kind, choices)`` of a field's type: ``int | None`` is ``int``, a ``Literal`` is a ``str`` with choices."""
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "str", tuple(typing.get_args(annotation))
    if arguments and origin not in (list, dict):  # a union with None
        return _kind_of(arguments[0])
    return _KINDS[origin or annotation], None


def recipe_keys(cls: type[TrainingArgs]) -> dict[str, RecipeKey]:
    """``{key: RecipeKey}`` of an arguments class, in field order."""
    hints = typing.get_type_hints(cls)
    keys = {}
    for field in dataclasses.fields(cls):
        kind, choices = _kind_of(hints[field.name])
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        keys[field.name] = RecipeKey(kind, default, field.metadata["help"], choices, field.metadata.get("bound"))
    return keys


def check_bounds(args: TrainingArgs) -> None:
    """Refuse a value outside its field's bound (``None`` is allowed: it means "not set")."""
    for key, spec in recipe_keys(type(args)).items():
        value = getattr(args, key)
        if spec.bound is None or value is None:
            continue
        if value < 0 or (value == 0 and spec.bound == POSITIVE):
            raise SeqlabUsageError(f"recipe key {key!r} must be {spec.bound}, got {value!r}")


def check_choices(values: Mapping[str, Any], keys: Mapping[str, RecipeKey]) -> None:
    for key, spec in keys.items():
        if spec.choices and values[key] is not None and values[key] not in spec.choices:
            raise SeqlabUsageError(f"recipe key {key!r} is {values[key]!r}; choose one of {', '.join(spec.choices)}")


def check_budget(args: TrainingArgs) -> None:
    """At most one of max_steps / max_train_tokens / num_train_epochs; none means one epoch."""
    given = [key for key in BUDGET_KEYS if getattr(args, key) is not None]
    if len(given) > 1:
        raise SeqlabUsageError(
            f"recipe sets {' and '.join(given)}; set only one of {', '.join(BUDGET_KEYS)} "
            "(a command-line override of one clears the recipe file's others)"
        )
    if not given:
        args.num_train_epochs = 1.0


def check_required(args: TrainingArgs, keys: tuple[str, ...], hint: str = "add it to the recipe or ") -> None:
    for key in keys:
        if not getattr(args, key):
            raise SeqlabUsageError(f"recipe key {key!r} is not set; {hint}pass --{key} VALUE")
