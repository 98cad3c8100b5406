"""Run the transfer-gap experiment: shared tokenizer -> pretrain every family -> fine-tune the grid -> report.

Resumable: a finished tokenizer or pretraining run (its metrics.json exists) is reused, and a fine-tuning
run whose id is already in results.jsonl is not redone. Each finished fine-tune appends one JSON line
(one write, then fsync): a kill can only tear the last line, which the next invocation drops and redoes.
Only the grid may change between invocations on one output folder: other settings, and the contents of
each family's model YAML (recorded in model_configs.json), are refused when they differ.
Independent runs go to ``jobs`` processes at once (one thread each), with the same results as one by one.
"""

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from ..errors import SeqlabUsageError
from ..provenance import provenance
from ..training.lock import LOCK_FILE, OutputDirLock
from .arms import ARM_STRATEGIES, PRETRAINED_INITS
from .grid import ExperimentConfig, FinetuneRun, load_experiment
from .keep import is_kept, keep_classifier, selected_records
from .report import read_results, recover_torn_tail, write_report


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


def _existing_pretrained(config: ExperimentConfig, family: str, output_dir: Path) -> Path | None:
    """The family's pretrained folder when it needs no pretraining run: given in the config, or finished."""
    if family in config.pretrained_models:
        path = Path(config.pretrained_models[family])
        if not (path / "config.json").is_file():
            raise SeqlabUsageError(f"pretrained_models[{family!r}] = {path} holds no saved model (config.json).")
        return path
    path = output_dir / "pretrain" / family
    if (path / "metrics.json").is_file() and (path / "config.json").is_file():
        return path
    return None


def _pretraining_recipe(config: ExperimentConfig, family: str, tokenizer_path: Path, output_dir: Path) -> dict:
    return {
        **config.pretraining,
        **config.pretraining_overrides.get(family, {}),
        "model_config": config.families[family],
        "tokenizer_path": str(tokenizer_path),
        "output_dir": str(output_dir / "pretrain" / family),
        "overwrite_output_dir": True,  # an unfinished earlier attempt is restarted
    }


def _finetune_recipe(
    config: ExperimentConfig, run: FinetuneRun, model_path: Path | None, tokenizer_path: Path, output_dir: Path
) -> dict:
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
        "dev_examples": config.dev_examples,
        "dev_seed": config.dev_seed,
        "output_dir": str(output_dir),
        "overwrite_output_dir": True,
        "save_model": config.keep_models,
    }
    if ARM_STRATEGIES[run.init]:  # the optional arms: the same pretrained model and budget, another procedure
        recipe["strategy"] = ARM_STRATEGIES[run.init]
    if "max_steps" not in config.finetuning and "num_train_epochs" not in config.finetuning:
        if run.num_train_examples == "all" and config.finetune_steps is None:
            recipe["num_train_epochs"] = config.finetune_epochs
        else:
            recipe["max_steps"] = config.steps_for(
                0 if run.num_train_examples == "all" else run.num_train_examples, batch_size
            )
    return recipe


def validation_scores(metrics: dict, prefix: str = "eval_") -> dict:
    """{"accuracy", "f1", "loss", ...} of the evaluation split (``eval_*``) or of the dev set (``dev_*``)."""
    return {
        key[len(prefix) :]: value
        for key, value in metrics.items()
        if key.startswith(prefix) and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def _parameter_counts(paths: dict[str, Path]) -> dict[str, int]:
    from transformers import AutoConfig, AutoModel

    counts = {}
    for family, path in paths.items():
        model = AutoModel.from_config(AutoConfig.from_pretrained(path))
        counts[family] = model.num_parameters()
    return counts


# keys that may change between invocations on one output_dir: they only add or remove runs of the grid
_GRID_KEYS = {"families", "inits", "label_budgets", "seeds", "learning_rates", "keep_models", "keep_best_classifiers"}
_SETTINGS_FILE = "experiment.yaml"
# the contents of each family's model YAML when its runs were made: experiment.yaml names only the path
_MODELS_FILE = "model_configs.json"


def _model_contents(families: dict) -> dict:
    """{family: parsed model YAML (or a model folder's config.json)}; None where it cannot be read (the runs
    themselves report that)."""
    contents = {}
    for name, model_config in families.items():
        path = Path(model_config)
        path = path / "config.json" if path.is_dir() else path
        try:
            contents[name] = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            contents[name] = None
    return contents


def _changed_models(output_dir: Path, families: dict) -> list[str]:
    """``families.NAME (PATH: key old -> new, ...)`` for each family whose model YAML changed since its runs."""
    try:
        saved = json.loads((output_dir / _MODELS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:  # made before the contents were recorded: nothing to compare with
        return []
    changed = []
    for name, now in _model_contents(families).items():
        if name not in saved or saved[name] == now:
            continue
        old = saved[name] if isinstance(saved[name], dict) else {}
        new = now if isinstance(now, dict) else {}
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        details = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys) or "contents differ"
        changed.append(f"families.{name} ({families[name]}: {details})")
    return changed


def _record_models(output_dir: Path, families: dict) -> None:
    """Record the model YAML contents (keeping families no longer in the grid: their runs are still here)."""
    from ..training.checkpointing import write_text_atomic

    path = output_dir / _MODELS_FILE
    saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    write_text_atomic(path, json.dumps({**saved, **_model_contents(families)}, indent=2, sort_keys=True) + "\n")


def _check_same_settings(config_path: Path, output_dir: Path) -> None:
    """Finished runs and pretrained models are reused only under the settings that made them."""
    current = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    saved_path = output_dir / _SETTINGS_FILE
    if not saved_path.is_file():
        if output_dir.exists() and any(p.name != LOCK_FILE for p in output_dir.iterdir()):
            raise SeqlabUsageError(
                f"{output_dir} is not empty and holds no {_SETTINGS_FILE}: it was not made by this experiment "
                "runner; choose a new --output_dir."
            )
        return
    saved = yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {}
    changed = sorted(k for k in set(saved) | set(current) if k not in _GRID_KEYS and saved.get(k) != current.get(k))
    old_families, new_families = saved.get("families") or {}, current.get("families") or {}
    changed += [
        f"families.{name}" for name in new_families if name in old_families and old_families[name] != new_families[name]
    ]
    changed += [entry for entry in _changed_models(output_dir, new_families) if entry.split(" ")[0] not in changed]
    if changed:
        raise SeqlabUsageError(
            f"{output_dir} holds runs made with other settings ({', '.join(changed)} differ from {config_path}); "
            "reusing them would mix experiments. Choose a new --output_dir, or delete the old one."
        )


def default_jobs() -> int:
    """One process per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_experiment(config_path: str | Path, output_dir: str | Path | None = None, jobs: int | None = None) -> Path:
    """Tokenizer, pretrainings and the fine-tuning grid, ``jobs`` independent runs at a time.

    Every run is a task for a pool of ``jobs`` processes with one thread each (``jobs=1``: in this process,
    also on one thread), so a parallel grid gives the same numbers as a serial one. Scratch arms start at
    once; a family's pretrained arms as soon as its pretraining is done. Each run's own output (progress
    bars, warnings) goes to ``logs/`` in the output folder; the console shows one bar for the whole grid.
    Two invocations on one output folder at once are refused (the second names the first), as for a training run.
    """
    output_dir = Path(output_dir or Path("runs") / f"transfer_gap_{Path(config_path).stem}")
    with OutputDirLock(output_dir) as lock:
        lock.acquire()  # an existing folder: refuse at once when another invocation runs on it
        return _run_experiment(config_path, output_dir, jobs, lock)


def _run_experiment(config_path: str | Path, output_dir: Path, jobs: int | None, lock: OutputDirLock) -> Path:
    config = load_experiment(config_path)
    jobs = default_jobs() if jobs is None else int(jobs)
    if jobs < 1:
        raise SeqlabUsageError(f"--jobs must be at least 1, got {jobs}")
    _claim_output_dir(config, config_path, output_dir, lock)
    started = time.time()
    origin = provenance()  # at the start: the commit and versions the runs are made with
    origin["hardware"]["torch_threads"] = 1  # every run below is on one thread

    print("[transfer-gap] shared tokenizer", file=sys.stderr)
    tokenizer_path = _train_tokenizer(config, output_dir)
    todo = _runs_to_do(config, output_dir / "results.jsonl")
    pretrained, to_pretrain = _pretrained_models(config, output_dir)
    _run_grid(
        config,
        output_dir,
        jobs=jobs,
        tokenizer_path=tokenizer_path,
        todo=todo,
        pretrained=pretrained,
        to_pretrain=to_pretrain,
        origin=origin,
    )
    write_report(output_dir, _report_metadata(config, jobs, origin, started, pretrained))
    return output_dir


def _claim_output_dir(config: ExperimentConfig, config_path: str | Path, output_dir: Path, lock: OutputDirLock) -> None:
    """Refuse a folder made under other settings, then take it: lock it and record the settings of these runs."""
    _check_same_settings(Path(config_path), output_dir)
    lock.acquire(create=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config_path, output_dir / _SETTINGS_FILE)
    _record_models(output_dir, config.families)


def _runs_to_do(config: ExperimentConfig, results_path: Path) -> list[FinetuneRun]:
    """The grid's fine-tunes whose result is not in results.jsonl yet (a torn last line is dropped first)."""
    torn = recover_torn_tail(results_path)
    if torn:
        print(
            f"[transfer-gap] {results_path}: dropped a torn last line ({torn} bytes, a run killed while appending "
            "its result); that run is redone",
            file=sys.stderr,
        )
    done = {r["run_id"] for r in read_results(results_path)}
    return [run for run in config.runs() if run.run_id not in done]


def _pretrained_models(config: ExperimentConfig, output_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """({family: pretrained folder} of those ready, [families still to pretrain]); none when no arm needs one."""
    pretrained = {}
    to_pretrain = []
    if any(init in PRETRAINED_INITS for init in config.inits):
        for family in config.families:
            path = _existing_pretrained(config, family, output_dir)
            if path is None:
                to_pretrain.append(family)
            else:
                pretrained[family] = path
    return pretrained, to_pretrain


def _run_grid(
    config: ExperimentConfig,
    output_dir: Path,
    *,
    jobs: int,
    tokenizer_path: Path,
    todo: list[FinetuneRun],
    pretrained: dict[str, Path],
    to_pretrain: list[str],
    origin: dict,
) -> None:
    """Pretrain ``to_pretrain`` and fine-tune ``todo`` on ``jobs`` processes, appending each result as it comes.

    ``pretrained`` gains each family as its pretraining finishes (the report reads it afterwards).
    """
    results_path = output_dir / "results.jsonl"
    # a family's pretrained arms wait for its pretraining; everything else starts at once
    waiting = {family: [r for r in todo if r.family == family and r.init in PRETRAINED_INITS] for family in to_pretrain}
    ready = [r for r in todo if not (r.family in waiting and r.init in PRETRAINED_INITS)]
    tasks = [_pretrain_task(config, f, tokenizer_path, output_dir) for f in to_pretrain] + [
        _finetune_task(config, r, pretrained, tokenizer_path, output_dir) for r in ready
    ]
    if to_pretrain:
        print(f"[transfer-gap] pretraining {', '.join(to_pretrain)} ({jobs} process(es) in all)", file=sys.stderr)
    # the bar counts optimizer steps (a pretraining step and a fine-tuning step cost about the same on these
    # models), so its ETA holds while the long pretrainings run; the postfix counts runs
    work = {f"pretrain/{f}": _pretraining_steps(config, f) for f in to_pretrain}
    all_rows = _training_rows(config) if todo else 0
    work.update({run.run_id: _finetune_steps(config, run, all_rows) for run in todo})
    bar = tqdm(total=sum(work.values()), desc="transfer-gap grid", unit="step", dynamic_ncols=True)
    finished = 0
    with _Pool(jobs) as pool:
        for kind, key, outcome in pool.run(tasks):
            if kind == "pretrain":
                pretrained[key] = Path(outcome)
                pool.add([_finetune_task(config, r, pretrained, tokenizer_path, output_dir) for r in waiting.pop(key)])
                bar.update(work[f"pretrain/{key}"])
            else:
                metrics, seconds = outcome
                _append_record(results_path, _result_record(config, key, metrics, seconds, pretrained, origin))
                if not config.keep_models:
                    shutil.rmtree(_run_dir(output_dir, key), ignore_errors=True)
                bar.update(work[key.run_id])
            finished += 1
            bar.set_postfix_str(f"{finished}/{len(work)} runs")
        bar.close()
        if config.keep_best_classifiers:
            _keep_best_classifiers(config, output_dir, pool, pretrained, tokenizer_path)


def _run_dir(output_dir: Path, run: FinetuneRun) -> Path:
    return output_dir / "finetune" / run.run_id.replace("/", "_")


def _finetune_task(
    config: ExperimentConfig, run: FinetuneRun, pretrained: dict[str, Path], tokenizer_path: Path, output_dir: Path
) -> tuple:
    recipe = _finetune_recipe(config, run, pretrained.get(run.family), tokenizer_path, _run_dir(output_dir, run))
    return ("finetune", run, recipe, str(_log_path(output_dir, run.run_id)))


def _pretrain_task(config: ExperimentConfig, family: str, tokenizer_path: Path, output_dir: Path) -> tuple:
    recipe = _pretraining_recipe(config, family, tokenizer_path, output_dir)
    return ("pretrain", family, recipe, str(_log_path(output_dir, f"pretrain/{family}")))


def _result_record(
    config: ExperimentConfig, run: FinetuneRun, metrics: dict, seconds: float, pretrained: dict, origin: dict
) -> dict:
    """The results.jsonl line of a finished fine-tune."""
    return {
        "run_id": run.run_id,
        "task": run.task,
        "family": run.family,
        "init": run.init,
        "num_train_examples": metrics.get("num_train_examples", run.num_train_examples),
        "requested_examples": run.num_train_examples,
        "seed": run.seed,
        "learning_rate": run.learning_rate,
        "strategy": ARM_STRATEGIES[run.init] or config.finetuning.get("strategy", "full"),
        "steps": metrics.get("step"),
        "metrics": validation_scores(metrics),
        "dev_metrics": validation_scores(metrics, "dev_"),
        "eval_files": metrics.get("eval_files", {}),
        "parameters": metrics.get("num_parameters"),
        "wall_time_s": round(seconds, 2),
        "model_config": config.families[run.family],
        "pretrained_from": str(pretrained[run.family]) if run.init in PRETRAINED_INITS else None,
        "hardware": origin["hardware"],
        "versions": origin["versions"],
    }


def _report_metadata(config: ExperimentConfig, jobs: int, origin: dict, started: float, pretrained: dict) -> dict:
    """What the report states about the settings, the machine and the pretrained models."""
    metadata = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "experiment config": config.source,
        "task": config.task,
        "families": ", ".join(f"{k} ({v})" for k, v in config.families.items()),
        "label budgets": ", ".join(str(n) for n in config.label_budgets),
        "seeds": "; ".join(f"N={n}: {', '.join(str(s) for s in seeds)}" for n, seeds in config.seeds.items()),
        "learning-rate grid": "; ".join(
            f"{family} {arm}: {grid}"
            for family, by_arm in config.learning_rates.items()
            for arm, grid in by_arm.items()
        ),
        "fine-tuning budget": (
            f"{config.finetune_steps} optimizer steps per run"
            if config.finetune_steps
            else f"{config.finetune_epochs:g} epochs over the N examples, at least {config.min_finetune_steps} steps"
        ),
        "dev set": f"{config.dev_examples} stratified examples carved off {config.task}'s training split "
        f"(dev_seed {config.dev_seed}), excluded from every label budget",
        "pretraining": json.dumps(config.pretraining),
        "date": origin["date"],
        "hardware": json.dumps(origin["hardware"]),
        "parallel processes": jobs,
        "versions": json.dumps(origin["versions"]),
        "git commit": origin["git_commit"],
        "wall time of this invocation (s)": round(time.time() - started, 1),
    }
    if pretrained:  # none when the grid has no pretrained arm
        metadata["parameters (body, without heads)"] = json.dumps(_parameter_counts(pretrained))
        metadata["pretraining results"] = json.dumps({f: _pretraining_summary(p) for f, p in pretrained.items()})
    return metadata


def _keep_best_classifiers(
    config: ExperimentConfig, output_dir: Path, pool: "_Pool", pretrained: dict, tokenizer_path: Path
) -> None:
    """Re-run each cell's dev-selected fine-tune with its model saved, into classifiers/ (see keep.py)."""
    grid = {run.run_id: run for run in config.runs()}
    records = [r for r in read_results(output_dir / "results.jsonl") if r["run_id"] in grid]
    todo = [r for r in selected_records(records) if not is_kept(output_dir, r)]
    if not todo:
        return
    print(
        f"[transfer-gap] keeping the dev-selected classifier of {len(todo)} cell(s) under {output_dir / 'classifiers'}",
        file=sys.stderr,
    )
    tasks = []
    for record in todo:
        run = grid[record["run_id"]]
        staging = _keep_staging(output_dir, record)
        recipe = {
            **_finetune_recipe(config, run, pretrained.get(run.family), tokenizer_path, staging),
            "save_model": True,
        }
        tasks.append(("finetune", record, recipe, str(_log_path(output_dir, f"keep/{run.run_id}"))))
    for _, record, (metrics, _seconds) in pool.run(tasks):
        keep_classifier(output_dir, record, _keep_staging(output_dir, record), metrics)


def _keep_staging(output_dir: Path, record: dict) -> Path:
    """Where a kept classifier's re-run writes before keep_classifier moves it into its cell folder."""
    return output_dir / "classifiers" / f".tmp-{record['family']}-{record['init']}-n{record['requested_examples']}"


def _pretraining_steps(config: ExperimentConfig, family: str) -> int:
    """Optimizer steps of a family's pretraining, from its token budget (for the progress bar)."""
    recipe = {**config.pretraining, **config.pretraining_overrides.get(family, {})}
    if recipe.get("max_steps"):
        return int(recipe["max_steps"])
    tokens_per_step = (
        int(recipe.get("per_device_train_batch_size", 8))
        * int(recipe.get("max_seq_length", 128))
        * int(recipe.get("gradient_accumulation_steps", 1))
    )
    return max(1, math.ceil(float(recipe.get("max_train_tokens") or 1e6) / tokens_per_step))


def _training_rows(config: ExperimentConfig) -> int:
    """Rows of the task's training split left after the dev carve (about what the budget 'all' trains on)."""
    if "all" not in config.label_budgets:
        return 0
    from ..data import load_text_dataset

    return len(load_text_dataset(config.task, config.finetuning.get("train_split", "train"))) - config.dev_examples


def _finetune_steps(config: ExperimentConfig, run: FinetuneRun, all_rows: int) -> int:
    """Optimizer steps of a fine-tune, from the budget its recipe sets (for the progress bar)."""
    recipe = _finetune_recipe(config, run, None, Path(), Path())
    if recipe.get("max_steps"):
        return int(recipe["max_steps"])
    rows = all_rows if run.num_train_examples == "all" else run.num_train_examples
    batch = int(recipe.get("per_device_train_batch_size", 32))
    return max(1, math.ceil(float(recipe["num_train_epochs"]) * math.ceil(rows / batch)))


def _append_record(path: Path, record: dict) -> None:
    """One JSON line per finished run: one ``os.write`` of the whole line in append mode, then fsync, so a line
    is never interleaved and a kill can only leave a torn *last* line (``recover_torn_tail`` drops it)."""
    line = (json.dumps(record) + "\n").encode("utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(descriptor, line)
        if written != len(line):  # a full disk: the torn tail is dropped and the run redone next time
            raise OSError(f"only {written} of {len(line)} bytes of a result line were written to {path}")
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _log_path(output_dir: Path, name: str) -> Path:
    return output_dir / "logs" / (name.replace("/", "_") + ".log")


def _run_task(task: tuple):
    """Run one pretraining or fine-tune on one thread, its console output going to its log file."""
    import contextlib

    import torch

    kind, key, recipe, log = task
    torch.set_num_threads(1)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with (
        open(log, "w", encoding="utf-8") as handle,
        contextlib.redirect_stderr(handle),
        contextlib.redirect_stdout(handle),
    ):
        if kind == "pretrain":
            from ..training import run_pretraining

            run_pretraining(recipe)
            return kind, key, recipe["output_dir"]
        from ..training import run_finetuning

        metrics = run_finetuning(recipe)
    return kind, key, (metrics, time.time() - started)


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


class _Pool:
    """``jobs`` worker processes (spawned, one thread each) fed from a queue that may grow while it runs;
    ``jobs=1`` runs every task here instead, in order."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.queue: list[tuple] = []
        self.executor = None

    def __enter__(self):
        if self.jobs > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.executor = ProcessPoolExecutor(
                self.jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
            )
        return self

    def __exit__(self, *exc_info):
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)

    def add(self, tasks: list[tuple]) -> None:
        self.queue.extend(tasks)

    def run(self, tasks: list[tuple]):
        """Yield ``(kind, key, outcome)`` as tasks finish; tasks added meanwhile run too."""
        self.queue.extend(tasks)
        if self.executor is None:
            while self.queue:
                yield _run_task(self.queue.pop(0))
            return
        from concurrent.futures import FIRST_COMPLETED, wait

        running = set()
        while self.queue or running:
            while self.queue and len(running) < self.jobs:  # submit only what can start: added tasks keep order
                running.add(self.executor.submit(_run_task, self.queue.pop(0)))
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()  # a failed run raises here, with its own error


def _pretraining_summary(path: Path) -> dict:
    metrics_path = path / "metrics.json"
    if not metrics_path.is_file():
        return {}
    metrics = json.loads(metrics_path.read_text())
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
