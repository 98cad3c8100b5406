"""Model cards filled from a run's config, metrics.json and recipe, rendered from model_cards/ templates."""

import json
import math
from pathlib import Path

import yaml

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..errors import SeqlabUsageError
from ..training.runtime import RECIPE_FILE

TEMPLATES_DIR = Path(__file__).resolve().parents[3] / "model_cards"
_DATASET_IDS = {
    "sst2": "stanfordnlp/sst2",
    "sst2_sentence": "stanfordnlp/sst2",
    "sst5": "SetFit/sst5",
    "imdb": "stanfordnlp/imdb",
    "tinyshakespeare": "karpathy/tiny_shakespeare",
}
_CLASSIFIER_METRICS = ("accuracy", "f1")
_LM_METRICS = ("perplexity", "loss", "accuracy")


def _templates_dir() -> Path:
    if not (TEMPLATES_DIR / "language_model.md").is_file():
        raise SeqlabUsageError(
            f"model card templates not found in {TEMPLATES_DIR}: run from a seqlab checkout "
            "(pip install -e .), where model_cards/ sits beside src/."
        )
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


def _source_key(source) -> str:
    return str(source).split(":")[0]


def _dataset_names(recipe: dict, is_classifier: bool) -> list[str]:
    if is_classifier:
        sources = [recipe.get("dataset") or recipe.get("task") or "sst2_sentence"]
    else:
        sources = recipe.get("datasets") or []
    return [_source_key(s) for s in sources]


def _family_text(family: str, config, num_parameters: int) -> str:
    template = (_templates_dir() / "families" / f"{family}.md").read_text(encoding="utf-8")
    from jinja2 import Template

    values = config.to_dict()
    cell_names = {"rnn": "vanilla RNN", "lstm": "LSTM", "gru": "GRU"}
    values.update(num_parameters=f"{num_parameters / 1e6:.1f}M", cell_name=cell_names.get(values.get("cell_type"), ""))
    return Template(template).render(**values).strip()


def _metric_name(key: str) -> str | None:
    """"eval_accuracy" -> "accuracy"; None for keys that are not validation scores."""
    return key[len("eval_") :] if key.startswith("eval_") else None


def _evaluation(metrics: dict, is_classifier: bool, dataset: str | None, dataset_id: str | None):
    """The card's evaluation table (validation split and any --eval_file) and the model-index results."""
    wanted = _CLASSIFIER_METRICS if is_classifier else _LM_METRICS
    validation = {
        name: value
        for key, value in flatten_numbers({k: v for k, v in metrics.items() if k != "eval_files"}).items()
        if (name := _metric_name(key)) in wanted
    }
    extra = {
        f"{file} / {name}": value
        for key, value in flatten_numbers(metrics.get("eval_files") or {}).items()
        for file, name in [key.rsplit("/", 1)]
        if name in wanted
    }
    if not validation and not extra:
        return "No evaluation results were recorded for this run (metrics.json is missing or empty).", []
    split = f"{dataset} validation" if dataset else "validation"
    lines = ["| data | metric | value |", "|---|---|---|"]
    lines += [f"| {split} | {name} | {value:.4f} |" for name, value in sorted(validation.items())]
    lines += [f"| {key.split(' / ')[0]} | {key.split(' / ')[1]} | {value:.4f} |" for key, value in sorted(extra.items())]
    results = [
        EvalResult(
            task_type="text-classification" if is_classifier else "text-generation",
            dataset_type=dataset_id,
            dataset_name=dataset or dataset_id,
            dataset_split="validation",
            metric_type=name,
            metric_name=name,
            metric_value=value,
        )
        for name, value in sorted(validation.items())
    ] if dataset_id else []
    return "\n".join(lines), results


def build_model_card(model_dir: str | Path, model, repo_id: str, overrides: dict | None = None) -> ModelCard:
    """A ModelCard whose metadata parses and whose model-index holds the run's validation results."""
    from ..models import FAMILIES

    overrides = dict(overrides or {})
    model_dir = Path(model_dir)
    metrics, recipe = read_run_files(model_dir)
    config = model.config
    family = next(name for name, (cls, _) in FAMILIES.items() if isinstance(config, cls))
    is_classifier = type(model).__name__.endswith("ForSequenceClassification")
    is_masked = type(model).__name__.endswith("ForMaskedLM")
    datasets = _dataset_names(recipe, is_classifier)
    dataset_ids = [_DATASET_IDS[d] for d in datasets if d in _DATASET_IDS]
    base_model = overrides.pop("base_model", None)
    num_parameters = model.num_parameters()
    table, eval_results = _evaluation(
        metrics, is_classifier, datasets[0] if datasets else None, dataset_ids[0] if dataset_ids else None
    )
    pipeline_tag = "text-classification" if is_classifier else ("fill-mask" if is_masked else "text-generation")
    card_data = ModelCardData(
        language="en",
        license=overrides.pop("license", "apache-2.0"),
        library_name="transformers",
        tags=["seqlab", config.model_type, family, "custom_code"],
        datasets=dataset_ids or None,
        pipeline_tag=pipeline_tag,
        base_model=base_model,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results or None,
    )
    procedure = {k: recipe[k] for k in sorted(recipe) if not isinstance(recipe[k], (dict, list))}
    procedure_text = (
        "\n".join(f"- `{k}`: {v}" for k, v in procedure.items()) if procedure else "The recipe was not recorded."
    )
    template = "classifier.md" if is_classifier else "language_model.md"
    auto_class = "AutoModelForMaskedLM" if is_masked else "AutoModelForCausalLM"
    return ModelCard.from_template(
        card_data,
        template_path=str(_templates_dir() / template),
        model_name=repo_id.split("/")[-1],
        repo_id=repo_id,
        base_model=base_model,
        family_description=_family_text(family, config, num_parameters),
        family_short={"recurrent": "recurrent", "decoder": "decoder-only Transformer", "encoder": "encoder-only Transformer"}[family],
        objective="masked-language modelling" if is_masked else "next-token prediction",
        auto_class=auto_class,
        task_description=f"{config.num_labels} labels: {', '.join(str(v) for v in config.id2label.values())}",
        training_data=(
            "Data keys: " + ", ".join(f"`{s}`" for s in (recipe.get("datasets") or datasets))
            if (recipe.get("datasets") or datasets)
            else "Not recorded."
        )
        + " (see seqlab's `../shared/data/README.md` for sources and licences).",
        training_procedure=procedure_text,
        evaluation_table=table,
        usage_example=overrides.pop("usage_example", ""),
        **overrides,
    )
