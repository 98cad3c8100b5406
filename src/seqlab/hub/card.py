"""Model cards filled from a run's config, metrics.json and recipe, rendered from the model_cards/ templates."""

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..data.sources import parse_source
from ..errors import SeqlabUsageError
from ..training.runtime import RECIPE_FILE

TEMPLATES_DIR = Path(__file__).resolve().parent / "model_cards"  # the repository's model_cards/ links here
_DATASETS = {  # data key -> (Hub id or None, what it is)
    "sst2": ("stanfordnlp/sst2", "SST-2, phrase-level training set (Socher et al., 2013)"),
    "sst2_sentence": ("stanfordnlp/sst2", "SST-2, sentence-level training set (Socher et al., 2013)"),
    "sst5": ("SetFit/sst5", "SST-5 fine-grained sentiment (Socher et al., 2013)"),
    "imdb": ("stanfordnlp/imdb", "IMDB film reviews (Maas et al., 2011)"),
    "general_english": (
        None,
        "general English: Brown, a Gutenberg selection, ABC news, State of the Union and inaugural addresses, "
        "web text, a Penn Treebank WSJ sample, Reuters-21578 and 20 Newsgroups",
    ),
    "tinyshakespeare": (None, "tiny Shakespeare (karpathy/char-rnn)"),
}
# recipe keys that describe the procedure (paths, debug switches and bookkeeping stay out of the card)
_PROCEDURE_KEYS = (
    "datasets", "dataset", "strategy", "num_train_examples", "max_seq_length", "max_length", "mlm_probability",
    "max_steps", "max_train_tokens", "num_train_epochs", "per_device_train_batch_size",
    "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type", "warmup_ratio", "warmup_steps",
    "weight_decay", "adam_beta1", "adam_beta2", "max_grad_norm", "mixed_precision", "seed",
)  # fmt: skip
_FAMILY_SHORT = {"recurrent": "recurrent", "decoder": "decoder-only Transformer", "encoder": "encoder-only Transformer"}


def _templates_dir() -> Path:
    if not (TEMPLATES_DIR / "language_model.md").is_file():
        raise SeqlabUsageError(f"model card templates not found in {TEMPLATES_DIR}: reinstall seqlab.")
    return TEMPLATES_DIR


def read_run_files(model_dir: Path) -> tuple[dict, dict]:
    """(metrics, recipe) of a training output folder; empty dicts where a file is absent."""
    metrics_path = model_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    recipe_path = model_dir / RECIPE_FILE
    recipe = (yaml.safe_load(recipe_path.read_text(encoding="utf-8")) or {}) if recipe_path.is_file() else {}
    return metrics, recipe


def flatten_numbers(tree: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_numbers(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out


class DataNames:
    """The names a card publishes for a run's data: a data key as it is, a local file never by its path.

    A path tells the world the author's user name and folder layout (/home/alice/private/...), and even a
    file's base name can say what private data it was (customer_emails.txt), so by default a local file is
    "local file N", numbered in order of appearance. `publish_file_names=True` (push_to_hub.py
    --publish_file_names) publishes base names instead, never folders.
    """

    def __init__(self, publish_file_names: bool = False):
        self.publish_file_names = publish_file_names
        self._files: dict[str, str] = {}

    def source(self, source) -> str:
        """Public name of a recipe source: "imdb:unsup" stays, "/home/alice/x.tsv" becomes "local file 1"."""
        name, _ = parse_source(str(source))
        return str(source) if name in _DATASETS else self.file(name)

    def key(self, source) -> str:
        """Public name without the split: the data key, or the file's public name."""
        name, _ = parse_source(str(source))
        return name if name in _DATASETS else self.file(name)

    def file(self, path: str) -> str:
        if path not in self._files:
            number = len(self._files) + 1
            self._files[path] = self._base_name(path) if self.publish_file_names else f"local file {number}"
        return self._files[path]

    def _base_name(self, path: str) -> str:
        base = re.split(r"[\\/]", path.rstrip("/\\"))[-1]  # Windows paths too
        name, copy = base, 1
        while name in self._files.values():  # two folders' train.tsv stay two entries
            copy += 1
            name = f"{base} ({copy})"
        return name


def _sources(recipe: dict, is_classifier: bool) -> list[str]:
    if is_classifier:
        return [recipe.get("dataset") or "sst2_sentence"]
    return [str(s) for s in recipe.get("datasets") or []]


def _data_keys(recipe: dict, is_classifier: bool, names: DataNames) -> list[str]:
    """Public names of the run's data, without splits, in order, each once."""
    return list(dict.fromkeys(names.key(s) for s in _sources(recipe, is_classifier)))


@dataclass(frozen=True)
class _Metric:
    type: str  # the evaluate / Hub metric id
    name: str  # what the card shows
    average: str | None = None  # how a multi-class score averages its classes (a model-index metric arg)

    @property
    def args(self) -> dict | None:
        return {"average": self.average} if self.average else None


def _metrics_of(kind: str) -> dict[str, _Metric]:
    """metrics.json key (after eval_) -> the metric it is, per kind of model."""
    return {
        # seqlab's f1 averages the per-class F1 scores without weights (seqlab.metrics.classification_metrics)
        "classifier": {"accuracy": _Metric("accuracy", "accuracy"), "f1": _Metric("f1", "macro-F1", average="macro")},
        "causal": {"perplexity": _Metric("perplexity", "perplexity"), "loss": _Metric("loss", "loss")},
        "masked": {"accuracy": _Metric("accuracy", "masked_token_accuracy"), "loss": _Metric("loss", "loss")},
    }[kind]


def _eval_file_scores(metrics: dict, known: dict, names: DataNames) -> dict:
    """{(public file name, metric): value} of the --eval_file scores; metrics.json names each file by its base
    name, or folder/base name when two share one, so the names go through `names` like any local file."""
    return {
        (names.file(file), known[metric]): value
        for file, scores in (metrics.get("eval_files") or {}).items()
        if isinstance(scores, dict)
        for metric, value in flatten_numbers(scores).items()
        if metric in known
    }


def _evaluation(metrics: dict, kind: str, keys: list[str], names: DataNames):
    """The card's evaluation table (validation data and any --eval_file) and the model-index results."""
    known = _metrics_of(kind)
    validation = {
        known[key[len("eval_") :]]: value
        for key, value in flatten_numbers({k: v for k, v in metrics.items() if k != "eval_files"}).items()
        if key.startswith("eval_") and key[len("eval_") :] in known
    }
    extra = _eval_file_scores(metrics, known, names)
    if not validation and not extra:
        return "No evaluation results were recorded for this run (metrics.json is missing or empty).", []
    if kind == "classifier":
        data = f"{keys[0]} validation" if keys else "validation"
        dataset_type = _DATASETS.get(keys[0], (None,))[0] if keys else None
    else:  # language models are scored on documents held out from their own pretraining mixture
        data = "held-out pretraining documents"
        dataset_type = None
    rows = sorted(validation.items(), key=lambda item: item[0].name)
    lines = ["| data | metric | value |", "|---|---|---|"]
    lines += [f"| {data} | {metric.name} | {value:.4f} |" for metric, value in rows]
    lines += [
        f"| {file} | {metric.name} | {value:.4f} |"
        for (file, metric), value in sorted(extra.items(), key=lambda item: (item[0][0], item[0][1].name))
    ]
    if any(metric.name == "macro-F1" for metric in [*validation, *(metric for _, metric in extra)]):
        lines += ["", "macro-F1 is the unweighted mean of the per-class F1 scores, so every class counts equally."]
    task_type = {"classifier": "text-classification", "causal": "text-generation", "masked": "fill-mask"}[kind]
    results = [
        EvalResult(
            task_type=task_type,
            dataset_type=dataset_type or "+".join(keys) or "unknown",
            dataset_name=data,
            dataset_split="validation",
            metric_type=metric.type,
            metric_name=metric.name,
            metric_args=metric.args,
            metric_value=value,
        )
        for metric, value in rows
    ]
    return "\n".join(lines), results


def _family_text(family: str, config, num_parameters: int) -> str:
    from jinja2 import Template

    template = (_templates_dir() / "families" / f"{family}.md").read_text(encoding="utf-8")
    values = config.to_dict()
    cell_names = {"rnn": "vanilla RNN", "lstm": "LSTM", "gru": "GRU"}
    values.update(num_parameters=f"{num_parameters / 1e6:.1f}M", cell_name=cell_names.get(values.get("cell_type"), ""))
    return Template(template).render(**values).strip()


def _training_data(keys: list[str], recipe: dict, is_classifier: bool, names: DataNames) -> str:
    if not keys:
        return "Not recorded."
    lines = [f"- `{key}`: {_source_text(key)}" for key in keys]
    sources = ", ".join(names.source(s) for s in _sources(recipe, is_classifier))
    return f"Sources as given to seqlab (`{sources}`):\n\n" + "\n".join(lines)


def _source_text(key: str) -> str:
    if key not in _DATASETS:
        return "a local file of the author's (its path is not published)"
    hub_id, description = _DATASETS[key]
    return (
        description
        if hub_id
        else f"{description} (a local collection with no Hub dataset; the metadata names it `{key}`)"
    )


def _procedure(recipe: dict, metrics: dict, config, kind: str, names: DataNames) -> str:
    """The recipe's settings that describe the training, the vocabulary and how long it trained."""
    keys = [k for k in _PROCEDURE_KEYS if k != "mlm_probability" or kind == "masked"]  # only masking uses it
    shown = {
        **recipe,
        "dataset": recipe.get("dataset") and names.source(recipe["dataset"]),
        "datasets": recipe.get("datasets") and [names.source(s) for s in recipe["datasets"]],
    }
    lines = [f"- `{k}`: {shown[k]}" for k in keys if shown.get(k) is not None]
    if not lines:
        lines = ["- The recipe was not recorded."]
    lines.append(f"- vocabulary size: {config.vocab_size:,} tokens (`<pad> <s> </s> <unk> <mask>` included)")
    if isinstance(metrics.get("step"), int):
        trained = f"- optimizer steps trained: {metrics['step']:,}"
        if isinstance(metrics.get("tokens_seen"), int):
            trained += f" ({metrics['tokens_seen']:,} tokens)"
        lines.append(trained)
    return "\n".join(lines)


def build_model_card(
    model_dir: str | Path, model, repo_id: str, overrides: dict | None = None, publish_file_names: bool = False
) -> ModelCard:
    """A ModelCard whose metadata parses and whose model-index holds the run's validation results.

    Data appear by key, and local files as "local file N" (their base names with `publish_file_names`): never
    a local path (see `DataNames`).
    """
    from ..models import family_of_config

    overrides = dict(overrides or {})
    metrics, recipe = read_run_files(Path(model_dir))
    config = model.config
    family = family_of_config(config).name
    head = type(model).__name__
    kind = (
        "classifier"
        if head.endswith("ForSequenceClassification")
        else ("masked" if head.endswith("ForMaskedLM") else "causal")
    )
    names = DataNames(publish_file_names)
    keys = _data_keys(recipe, kind == "classifier", names)
    # the Hub id of each data key; a key without a Hub twin (general_english) is listed by its own name
    hub_ids = list(dict.fromkeys(_DATASETS[k][0] or k for k in keys if k in _DATASETS))
    base_model = overrides.pop("base_model", None)
    table, eval_results = _evaluation(metrics, kind, keys, names)
    card_data = ModelCardData(
        language="en",
        license=overrides.pop("license", "apache-2.0"),
        library_name="transformers",
        tags=["seqlab", config.model_type, family, "custom_code"],
        datasets=hub_ids or None,
        pipeline_tag={"classifier": "text-classification", "masked": "fill-mask", "causal": "text-generation"}[kind],
        base_model=base_model,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results or None,
    )
    template = "classifier.md" if kind == "classifier" else "language_model.md"
    return ModelCard.from_template(
        card_data,
        template_path=str(_templates_dir() / template),
        model_name=repo_id.split("/")[-1],
        repo_id=repo_id,
        base_model=base_model,
        family_description=_family_text(family, config, model.num_parameters()),
        family_short=_FAMILY_SHORT[family],
        masked=kind == "masked",
        objective="masked-language modelling" if kind == "masked" else "next-token prediction",
        auto_class="AutoModelForMaskedLM" if kind == "masked" else "AutoModelForCausalLM",
        task_description=f"{config.num_labels} labels: {', '.join(str(v) for v in config.id2label.values())}",
        training_data=_training_data(keys, recipe, kind == "classifier", names),
        training_procedure=_procedure(recipe, metrics, config, kind, names),
        evaluation_table=table,
        **overrides,
    )
