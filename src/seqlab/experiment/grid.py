"""The transfer-gap experiment's configuration and the grid of fine-tuning runs it expands to."""

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import SeqlabUsageError

INITS = ("pretrained", "scratch", "ulmfit")
DEFAULT_INITS = ("pretrained", "scratch")
# arms that start from the family's pretrained language model; `ulmfit` also fine-tunes it ULMFiT-style
PRETRAINED_INITS = ("pretrained", "ulmfit")
_KEYS = {
    "task": "labelled data key or file fine-tuned on (sst2_sentence, imdb, sst2, ...)",
    "families": "mapping: name in the tables -> model YAML (configs/models/...)",
    "inits": "subset of [pretrained, scratch, ulmfit] (default [pretrained, scratch]); ulmfit: the pretrained "
    "model fine-tuned with strategy ulmfit (discriminative rates, slanted schedule, gradual unfreezing)",
    "label_budgets": "numbers of labelled training examples; 'all' for the whole training split",
    "seeds": "seeds: each seed fixes the label subset (identical across arms), init and data order",
    "learning_rates": "list shared by every family, or mapping family -> list (same length for every family)",
    "tokenizer": "{sources, vocab_size, kind, max_texts}: the one shared tokenizer, trained first",
    "tokenizer_path": "use this existing tokenizer folder instead of training one",
    "pretraining": "pretraining recipe keys shared by every family (same corpus, same token budget)",
    "pretraining_overrides": "mapping family -> recipe keys that differ (e.g. the learning rate)",
    "pretrained_models": "mapping family -> existing pretrained folder to reuse instead of pretraining",
    "finetuning": "fine-tuning recipe keys shared by every run",
    "finetune_epochs": "passes over the N labelled examples",
    "min_finetune_steps": "floor on optimizer steps, so tiny label budgets still train",
    "eval_files": "extra labelled files every fine-tuned model is scored on",
    "keep_models": "keep every fine-tuned model folder (default false: only metrics are kept)",
}


@dataclass(frozen=True)
class FinetuneRun:
    task: str
    family: str
    init: str
    num_train_examples: int | str
    seed: int
    learning_rate: float

    @property
    def run_id(self) -> str:
        return f"{self.task}/{self.family}/{self.init}/n{self.num_train_examples}/seed{self.seed}/lr{self.learning_rate:g}"


@dataclass
class ExperimentConfig:
    task: str
    families: dict[str, str]
    inits: list[str]
    label_budgets: list
    seeds: list[int]
    learning_rates: dict[str, list[float]]
    tokenizer: dict | None = None
    tokenizer_path: str | None = None
    pretraining: dict = field(default_factory=dict)
    pretraining_overrides: dict = field(default_factory=dict)
    pretrained_models: dict = field(default_factory=dict)
    finetuning: dict = field(default_factory=dict)
    finetune_epochs: float = 3.0
    min_finetune_steps: int = 30
    eval_files: list[str] = field(default_factory=list)
    keep_models: bool = False
    source: str = ""

    def runs(self) -> list[FinetuneRun]:
        """Every fine-tuning run, ordered so that each (N, seed) is complete across arms before the next."""
        return [
            FinetuneRun(self.task, family, init, n, seed, lr)
            for n in self.label_budgets
            for seed in self.seeds
            for family in self.families
            for init in self.inits
            for lr in self.learning_rates[family]
        ]

    def finetune_steps(self, num_examples: int, batch_size: int) -> int:
        return max(self.min_finetune_steps, math.ceil(self.finetune_epochs * num_examples / batch_size))


def load_experiment(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    if not path.is_file():
        raise SeqlabUsageError(f"experiment config {path} does not exist; see configs/experiments/ for examples.")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise SeqlabUsageError(f"experiment config {path} must be a mapping of keys to values.")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise SeqlabUsageError(
            f"unknown key(s) {unknown} in {path}; valid keys: "
            + "; ".join(f"{k} ({v})" for k, v in _KEYS.items())
        )
    for key in ("families", "label_budgets", "seeds", "learning_rates"):
        if not raw.get(key):
            raise SeqlabUsageError(f"{path}: `{key}` is required ({_KEYS[key]}).")
    families = raw["families"]
    if not isinstance(families, dict):
        raise SeqlabUsageError(f"{path}: `families` must map a name to a model YAML, got {families!r}.")
    inits = list(raw.get("inits", DEFAULT_INITS))
    if not inits or any(i not in INITS for i in inits):
        raise SeqlabUsageError(f"{path}: `inits` must be a non-empty subset of {list(INITS)}, got {inits}.")
    budgets = []
    for n in raw["label_budgets"]:
        if n == "all" or (isinstance(n, int) and not isinstance(n, bool) and n > 0):
            budgets.append(n)
        else:
            raise SeqlabUsageError(f"{path}: label budget {n!r} must be a positive integer or 'all'.")
    lrs = raw["learning_rates"]
    lrs = {f: list(lrs) for f in families} if isinstance(lrs, list) else dict(lrs)
    missing = [f for f in families if f not in lrs]
    if missing:
        raise SeqlabUsageError(f"{path}: `learning_rates` has no grid for {missing}.")
    sizes = {f: len(lrs[f]) for f in families}
    if len(set(sizes.values())) != 1:
        raise SeqlabUsageError(
            f"{path}: every family needs a learning-rate grid of the same size (a fair search), got {sizes}."
        )
    lrs = {f: [float(v) for v in lrs[f]] for f in families}
    return ExperimentConfig(
        task=raw.get("task", "sst2_sentence"),
        families={name: str(model_yaml) for name, model_yaml in families.items()},
        inits=inits,
        label_budgets=budgets,
        seeds=[int(s) for s in raw["seeds"]],
        learning_rates=lrs,
        tokenizer=raw.get("tokenizer"),
        tokenizer_path=raw.get("tokenizer_path"),
        pretraining=dict(raw.get("pretraining") or {}),
        pretraining_overrides=dict(raw.get("pretraining_overrides") or {}),
        pretrained_models=dict(raw.get("pretrained_models") or {}),
        finetuning=dict(raw.get("finetuning") or {}),
        finetune_epochs=float(raw.get("finetune_epochs", 3.0)),
        min_finetune_steps=int(raw.get("min_finetune_steps", 30)),
        eval_files=list(raw.get("eval_files") or []),
        keep_models=bool(raw.get("keep_models", False)),
        source=str(path),
    )
