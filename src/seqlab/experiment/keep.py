"""Keep one fine-tuned classifier per (family, arm, label budget): the models the demo shows.

The grid deletes its fine-tuned models (seeds x learning rates of them per cell). After it, each cell's
kept run is chosen by the report's own rule, on dev only: the learning rate the report selects (best mean
dev score over seeds), and at that rate the seed with the best dev score (ties: the lowest seed). That one
fine-tune is run again with its model saved; on CPU it reproduces its record bit for bit, which
``kept.json`` states (``reproduced``). results.jsonl is never written here, so no reported number changes.

Layout: ``<output_dir>/classifiers/<family>/<arm>/n<budget>/`` holds only the files a model needs to load
(the Hub export whitelist: weights, config, modeling code, tokenizer) plus ``kept.json``.
"""

import json
import shutil
from pathlib import Path

from ..hub.export import is_whitelisted
from .report import select_cells

KEPT_FILE = "kept.json"
# the keys keep_classifier writes into kept.json: the only ones a Space publishes (seqlab.demo.space)
KEPT_KEYS = frozenset({
    "run_id", "family", "init", "num_train_examples", "seed", "learning_rate", "selection", "metrics",
    "dev_metrics", "reproduced",
})  # fmt: skip


def cell_dir(output_dir: Path, family: str, init: str, budget) -> Path:
    return Path(output_dir) / "classifiers" / family / init / f"n{budget}"


def selected_records(records: list[dict], metric: str = "accuracy") -> list[dict]:
    """The record of each cell's kept run: the report's dev-selected learning rate, its best seed on dev."""
    cells = select_cells(records, metric)
    chosen = []
    for (task, family, init, n), cell in sorted(cells.items(), key=lambda kv: str(kv[0])):
        runs = [
            r
            for r in records
            if (r["task"], r["family"], r["init"], int(r["num_train_examples"])) == (task, family, init, n)
            and r["learning_rate"] == cell["learning_rate"]
        ]
        split = "dev_metrics" if cell["selected_on"] == "dev" else "metrics"
        chosen.append(max(runs, key=lambda r: (r[split][metric], -r["seed"])))
    return chosen


def is_kept(output_dir: Path, record: dict) -> bool:
    path = cell_dir(output_dir, record["family"], record["init"], record["requested_examples"]) / KEPT_FILE
    return path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("run_id") == record["run_id"]


def keep_classifier(output_dir: Path, record: dict, run_folder: Path, metrics: dict) -> Path:
    """Move the whitelisted files of a finished re-run into the record's cell folder (replacing an older one)."""
    from .runner import validation_scores

    target = cell_dir(output_dir, record["family"], record["init"], record["requested_examples"])
    for path in list(run_folder.iterdir()):
        if not is_whitelisted(path.name) or path.name == "README.md":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    rerun = {"metrics": validation_scores(metrics), "dev_metrics": validation_scores(metrics, "dev_")}
    kept = {
        "run_id": record["run_id"],
        "family": record["family"],
        "init": record["init"],
        "num_train_examples": record["num_train_examples"],
        "seed": record["seed"],
        "learning_rate": record["learning_rate"],
        "selection": "the report's dev-selected learning rate, then the seed with the best dev score",
        **rerun,
        # a re-run on CPU repeats the recorded run exactly; on GPUs kernels may differ in the last bits
        "reproduced": rerun["metrics"] == record["metrics"] and rerun["dev_metrics"] == record.get("dev_metrics", {}),
    }
    (run_folder / KEPT_FILE).write_text(json.dumps(kept, indent=2) + "\n", encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    run_folder.rename(target)  # kept.json appears with the model, never before it
    return target
