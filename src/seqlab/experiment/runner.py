"""Run the transfer-gap experiment: shared tokenizer -> pretrain every family -> fine-tune the grid -> report.

Resumable: a finished tokenizer or pretraining run (its metrics.json exists) is reused, and a fine-tuning
run whose id is already in results.jsonl is not redone. Each finished fine-tune appends one JSON line.
"""

import json
import shutil
import sys
import time
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from ..errors import SeqlabUsageError
from ..provenance import provenance
from .grid import PRETRAINED_INITS, ExperimentConfig, FinetuneRun, load_experiment
from .report import read_results, write_report


def _train_tokenizer(config: ExperimentConfig, output_dir: Path) -> Path:
    if config.tokenizer_path:
        path = Path(config.tokenizer_path)
        if not (path / "tokenizer.json").is_file():
            raise SeqlabUsageError(f"tokenizer_path {path} holds no tokenizer.json; train one or fix the path.")
        return path
    path = output_dir / "tokenizer"
    if (path / "tokenizer.json").is_file():
        return path
    from ..tokenizer import train_tokenizer_from_sources

    spec = dict(config.tokenizer or {})
    if not spec.get("sources"):
        raise SeqlabUsageError("the experiment needs `tokenizer: {sources: [...], vocab_size: N}` or `tokenizer_path`.")
    train_tokenizer_from_sources(
        spec.pop("sources"),
        output_dir=path,
        show_progress=True,
        **spec,
    )
    return path


def _pretrain(config: ExperimentConfig, family: str, tokenizer_path: Path, output_dir: Path) -> Path:
    if family in config.pretrained_models:
        path = Path(config.pretrained_models[family])
        if not (path / "config.json").is_file():
            raise SeqlabUsageError(f"pretrained_models[{family!r}] = {path} holds no saved model (config.json).")
        return path
    path = output_dir / "pretrain" / family
    if (path / "metrics.json").is_file() and (path / "config.json").is_file():
        return path
    from ..training import run_pretraining

    recipe = {
        **config.pretraining,
        **config.pretraining_overrides.get(family, {}),
        "model_config": config.families[family],
        "tokenizer_path": str(tokenizer_path),
        "output_dir": str(path),
        "overwrite_output_dir": True,  # an unfinished earlier attempt is restarted
    }
    run_pretraining(recipe)
    return path


def _finetune(config: ExperimentConfig, run: FinetuneRun, model_path: Path, tokenizer_path: Path, output_dir: Path) -> dict:
    from ..training import run_finetuning

    batch_size = int(config.finetuning.get("per_device_train_batch_size", 32))
    recipe = {
        **config.finetuning,
        "dataset": config.task,
        "model_name_or_path": str(model_path) if run.init in PRETRAINED_INITS else "scratch",
        "model_config": config.families[run.family],
        "tokenizer_path": str(tokenizer_path),
        "num_train_examples": None if run.num_train_examples == "all" else run.num_train_examples,
        "seed": run.seed,
        "learning_rate": run.learning_rate,
        "eval_files": list(config.eval_files),
        "output_dir": str(output_dir),
        "overwrite_output_dir": True,
        "save_model": config.keep_models,
    }
    if run.init == "ulmfit":  # the optional arm: the same pretrained model and budget, ULMFiT's procedure
        recipe["strategy"] = "ulmfit"
    if "max_steps" not in config.finetuning and "num_train_epochs" not in config.finetuning:
        if run.num_train_examples == "all":
            recipe["num_train_epochs"] = config.finetune_epochs
        else:
            recipe["max_steps"] = config.finetune_steps(run.num_train_examples, batch_size)
    return run_finetuning(recipe)


def validation_scores(metrics: dict) -> dict:
    """{"accuracy", "f1", "loss"} of the evaluation split from a fine-tune's metrics (keys eval_*)."""
    return {
        key[len("eval_") :]: value
        for key, value in metrics.items()
        if key.startswith("eval_") and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def _parameter_counts(paths: dict[str, Path]) -> dict[str, int]:
    from transformers import AutoConfig, AutoModel

    counts = {}
    for family, path in paths.items():
        model = AutoModel.from_config(AutoConfig.from_pretrained(path))
        counts[family] = model.num_parameters()
    return counts


# keys that may change between invocations on one output_dir: they only add or remove runs of the grid
_GRID_KEYS = {"families", "inits", "label_budgets", "seeds", "learning_rates", "keep_models"}
_SETTINGS_FILE = "experiment.yaml"


def _check_same_settings(config_path: Path, output_dir: Path) -> None:
    """Finished runs and pretrained models are reused only under the settings that made them."""
    current = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    saved_path = output_dir / _SETTINGS_FILE
    if not saved_path.is_file():
        if output_dir.exists() and any(output_dir.iterdir()):
            raise SeqlabUsageError(
                f"{output_dir} is not empty and holds no {_SETTINGS_FILE}: it was not made by this experiment "
                "runner; choose a new --output_dir."
            )
        return
    saved = yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {}
    changed = sorted(k for k in set(saved) | set(current) if k not in _GRID_KEYS and saved.get(k) != current.get(k))
    old_families, new_families = saved.get("families") or {}, current.get("families") or {}
    changed += [f"families.{name}" for name in new_families if name in old_families and old_families[name] != new_families[name]]
    if changed:
        raise SeqlabUsageError(
            f"{output_dir} holds runs made with other settings ({', '.join(changed)} differ from {config_path}); "
            "reusing them would mix experiments. Choose a new --output_dir, or delete the old one."
        )


def run_experiment(config_path: str | Path, output_dir: str | Path | None = None) -> Path:
    config = load_experiment(config_path)
    output_dir = Path(output_dir or Path("runs") / f"transfer_gap_{Path(config_path).stem}")
    _check_same_settings(Path(config_path), output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config_path, output_dir / _SETTINGS_FILE)
    started = time.time()
    origin = provenance()  # at the start: the commit and versions the runs are made with

    tokenizer_path = _train_tokenizer(config, output_dir)
    needs_pretraining = any(init in PRETRAINED_INITS for init in config.inits)
    pretrained = {}
    if needs_pretraining:
        for family in config.families:
            print(f"[transfer-gap] pretraining {family}", file=sys.stderr)
            pretrained[family] = _pretrain(config, family, tokenizer_path, output_dir)

    results_path = output_dir / "results.jsonl"
    done = {r["run_id"] for r in read_results(results_path)}
    todo = [run for run in config.runs() if run.run_id not in done]
    for run in tqdm(todo, desc="fine-tuning runs", unit="run"):
        run_dir = output_dir / "finetune" / run.run_id.replace("/", "_")
        t0 = time.time()
        metrics = _finetune(config, run, pretrained.get(run.family), tokenizer_path, run_dir)
        record = {
            "run_id": run.run_id,
            "task": run.task,
            "family": run.family,
            "init": run.init,
            "num_train_examples": metrics.get("num_train_examples", run.num_train_examples),
            "requested_examples": run.num_train_examples,
            "seed": run.seed,
            "learning_rate": run.learning_rate,
            "strategy": "ulmfit" if run.init == "ulmfit" else config.finetuning.get("strategy", "full"),
            "metrics": validation_scores(metrics),
            "eval_files": metrics.get("eval_files", {}),
            "parameters": metrics.get("num_parameters"),
            "wall_time_s": round(time.time() - t0, 2),
            "model_config": config.families[run.family],
            "pretrained_from": str(pretrained[run.family]) if run.init in PRETRAINED_INITS else None,
            "hardware": origin["hardware"],
            "versions": origin["versions"],
        }
        with results_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if not config.keep_models:
            shutil.rmtree(run_dir, ignore_errors=True)

    model_paths = pretrained or {}
    metadata = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "experiment config": config.source,
        "task": config.task,
        "families": ", ".join(f"{k} ({v})" for k, v in config.families.items()),
        "label budgets": ", ".join(str(n) for n in config.label_budgets),
        "seeds": ", ".join(str(s) for s in config.seeds),
        "learning-rate grid": "; ".join(f"{k}: {v}" for k, v in config.learning_rates.items()),
        "pretraining": json.dumps(config.pretraining),
        "date": origin["date"],
        "hardware": json.dumps(origin["hardware"]),
        "versions": json.dumps(origin["versions"]),
        "git commit": origin["git_commit"],
        "wall time of this invocation (s)": round(time.time() - started, 1),
    }
    if model_paths:
        metadata["parameters (body, without heads)"] = json.dumps(_parameter_counts(model_paths))
        metadata["pretraining results"] = json.dumps(
            {f: _pretraining_summary(p) for f, p in model_paths.items()}
        )
    write_report(output_dir, metadata)
    return output_dir


def _pretraining_summary(path: Path) -> dict:
    metrics_path = path / "metrics.json"
    if not metrics_path.is_file():
        return {}
    metrics = json.loads(metrics_path.read_text())
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
