"""The transfer-gap experiment's configuration and the grid of fine-tuning runs it expands to."""

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import SeqlabUsageError
from .arms import DEFAULT_INITS, INITS

DEFAULT_DEV_EXAMPLES = 500
_KEYS = {
    "task": "labelled data key or file fine-tuned on (sst2_sentence, imdb, sst2, ...); a file needs its held-out "
    "rows as `finetuning: {eval_split: DEV_FILE}`",
    "families": "mapping: name in the tables (lstm, ...) -> model YAML (configs/models/...), whose `family:` key "
    "(recurrent, decoder or encoder) names the model family",
    "inits": "subset of [pretrained, scratch, ulmfit, probe] (default [pretrained, scratch]); ulmfit: the pretrained "
    "model fine-tuned with strategy ulmfit (discriminative rates, slanted schedule, gradual unfreezing); probe: "
    "only the new head trains on the frozen pretrained body (strategy freeze_body)",
    "label_budgets": "numbers of labelled training examples; 'all' for the whole training split",
    "seeds": "list of seeds, or mapping label budget -> list (more seeds where noise is largest, the small "
    "budgets); each seed fixes the label subset (identical across arms), init and data order",
    "learning_rates": "list shared by every family, or mapping family -> list, or family -> {arm: list} "
    "(every arm's grid the same length: a fair search)",
    "tokenizer": "{sources, vocab_size, kind, max_texts}: the one shared tokenizer, trained first",
    "tokenizer_path": "use this existing tokenizer folder instead of training one",
    "pretraining": "pretraining recipe keys shared by every family (same corpus, same token budget)",
    "pretraining_overrides": "mapping family -> recipe keys that differ (e.g. the learning rate)",
    "pretrained_models": "mapping family -> existing pretrained folder to reuse instead of pretraining",
    "finetuning": "fine-tuning recipe keys shared by every run",
    "finetune_epochs": "passes over the N labelled examples",
    "min_finetune_steps": "floor on optimizer steps, so tiny label budgets still train",
    "finetune_steps": "a fixed number of optimizer steps for every run, whatever N (replaces the two keys above)",
    "dev_examples": f"size of the stratified dev set carved off the task's training split (default "
    f"{DEFAULT_DEV_EXAMPLES}): learning rates are selected on it, never on the reported validation split",
    "dev_seed": "seed of the dev carve (default 0; the same dev rows for every run)",
    "eval_files": "extra labelled files every fine-tuned model is scored on",
    "keep_models": "keep every fine-tuned model folder (default false: only metrics are kept)",
    "keep_best_classifiers": "after the grid, re-run and keep each (family, arm, budget) cell's dev-selected "
    "fine-tune under classifiers/ (default true; the demo shows these models)",
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
        return (
            f"{self.task}/{self.family}/{self.init}/n{self.num_train_examples}/seed{self.seed}/lr{self.learning_rate:g}"
        )


@dataclass
class ExperimentConfig:
    task: str
    families: dict[str, str]
    inits: list[str]
    label_budgets: list
    seeds: dict  # label budget -> list of seeds
    learning_rates: dict[str, dict[str, list[float]]]  # family -> arm -> grid
    tokenizer: dict | None = None
    tokenizer_path: str | None = None
    pretraining: dict = field(default_factory=dict)
    pretraining_overrides: dict = field(default_factory=dict)
    pretrained_models: dict = field(default_factory=dict)
    finetuning: dict = field(default_factory=dict)
    finetune_epochs: float = 3.0
    min_finetune_steps: int = 30
    finetune_steps: int | None = None
    dev_examples: int = DEFAULT_DEV_EXAMPLES
    dev_seed: int = 0
    eval_files: list[str] = field(default_factory=list)
    keep_models: bool = False
    keep_best_classifiers: bool = True
    source: str = ""

    def runs(self) -> list[FinetuneRun]:
        """Every fine-tuning run, ordered so that each (N, seed) is complete across arms before the next."""
        return [
            FinetuneRun(self.task, family, init, n, seed, lr)
            for n in self.label_budgets
            for seed in self.seeds[n]
            for family in self.families
            for init in self.inits
            for lr in self.learning_rates[family][init]
        ]

    def steps_for(self, num_examples: int, batch_size: int) -> int:
        if self.finetune_steps is not None:
            return self.finetune_steps
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
            f"unknown key(s) {unknown} in {path}; valid keys: " + "; ".join(f"{k} ({v})" for k, v in _KEYS.items())
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
    lrs = _learning_rate_grids(path, raw["learning_rates"], families, inits)
    finetune_steps = raw.get("finetune_steps")
    if finetune_steps is not None and (
        isinstance(finetune_steps, bool) or not isinstance(finetune_steps, int) or finetune_steps < 1
    ):
        raise SeqlabUsageError(f"{path}: `finetune_steps` must be a positive integer, got {finetune_steps!r}.")
    dev_examples = raw.get("dev_examples", DEFAULT_DEV_EXAMPLES)
    if isinstance(dev_examples, bool) or not isinstance(dev_examples, int) or dev_examples < 2:
        raise SeqlabUsageError(
            f"{path}: `dev_examples` must be an integer of at least 2 (the dev set selection uses), got {dev_examples!r}."
        )
    return ExperimentConfig(
        task=raw.get("task", "sst2_sentence"),
        families={name: str(model_yaml) for name, model_yaml in families.items()},
        inits=inits,
        label_budgets=budgets,
        seeds=_seeds_per_budget(path, raw["seeds"], budgets),
        learning_rates=lrs,
        tokenizer=raw.get("tokenizer"),
        tokenizer_path=raw.get("tokenizer_path"),
        pretraining=dict(raw.get("pretraining") or {}),
        pretraining_overrides=dict(raw.get("pretraining_overrides") or {}),
        pretrained_models=dict(raw.get("pretrained_models") or {}),
        finetuning=dict(raw.get("finetuning") or {}),
        finetune_epochs=float(raw.get("finetune_epochs", 3.0)),
        min_finetune_steps=int(raw.get("min_finetune_steps", 30)),
        finetune_steps=finetune_steps,
        dev_examples=dev_examples,
        dev_seed=int(raw.get("dev_seed", 0)),
        eval_files=list(raw.get("eval_files") or []),
        keep_models=bool(raw.get("keep_models", False)),
        keep_best_classifiers=bool(raw.get("keep_best_classifiers", True)),
        source=str(path),
    )


def _learning_rate_grids(path: Path, raw, families: dict, inits: list[str]) -> dict[str, dict[str, list[float]]]:
    """family -> arm -> learning-rate grid, from a list, a per-family list or a per-family, per-arm mapping."""
    per_family = {f: raw for f in families} if isinstance(raw, list) else dict(raw)
    missing = [f for f in families if f not in per_family]
    if missing:
        raise SeqlabUsageError(f"{path}: `learning_rates` has no grid for {missing}.")
    grids = {}
    for family in families:
        value = per_family[family]
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(inits))
            absent = [arm for arm in inits if arm not in value]
            if unknown or absent:
                raise SeqlabUsageError(
                    f"{path}: learning_rates.{family} must give a grid for each arm of {inits}"
                    + (f"; unknown arm(s) {unknown}" if unknown else "")
                    + (f"; missing {absent}" if absent else "")
                )
            grids[family] = {arm: value[arm] for arm in inits}
        else:
            grids[family] = {arm: value for arm in inits}
        for arm, grid in grids[family].items():
            if not isinstance(grid, list) or not grid:
                raise SeqlabUsageError(f"{path}: learning_rates.{family}.{arm} must be a non-empty list, got {grid!r}.")
            grids[family][arm] = [float(v) for v in grid]
    sizes = {f"{f}.{arm}": len(g) for f, by_arm in grids.items() for arm, g in by_arm.items()}
    if len(set(sizes.values())) != 1:
        raise SeqlabUsageError(
            f"{path}: every family and arm needs a learning-rate grid of the same size (a fair search), got {sizes}."
        )
    return grids


def _seeds_per_budget(path: Path, raw, budgets: list) -> dict:
    """label budget -> seeds, from one list for every budget or a mapping that names each budget."""
    if not isinstance(raw, dict):
        raw = {n: raw for n in budgets}
    by_name = {str(k): v for k, v in raw.items()}
    unknown = sorted(set(by_name) - {str(n) for n in budgets})
    missing = [n for n in budgets if str(n) not in by_name]
    if unknown or missing:
        raise SeqlabUsageError(
            f"{path}: `seeds` as a mapping needs one list per label budget of {budgets}"
            + (f"; not a budget: {unknown}" if unknown else "")
            + (f"; missing {missing}" if missing else "")
        )
    seeds = {}
    for n in budgets:
        values = by_name[str(n)]
        if (
            not isinstance(values, list)
            or not values
            or any(isinstance(v, bool) or not isinstance(v, int) for v in values)
        ):
            raise SeqlabUsageError(
                f"{path}: seeds for budget {n} must be a non-empty list of integers, got {values!r}."
            )
        seeds[n] = list(values)
    return seeds
