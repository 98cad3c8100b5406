"""What a run leaves behind besides weights: train_log.jsonl, metrics.json and a loss-curve PNG.

Only the main process writes. ``train_log.jsonl`` gets one JSON object per logging step (``step``,
``loss``, ``lr``, ``grad_norm``, ``tokens_per_second``, ...) and one per evaluation (keys starting
with ``eval_``); it is flushed as it grows, so a killed run keeps its log, and on resume the records
after the checkpoint's step (and a line torn by the kill) are dropped before training continues.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .checkpointing import write_text_atomic

TRAIN_LOG = "train_log.jsonl"
METRICS_FILE = "metrics.json"
LOSS_CURVE = "loss_curve.png"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no inf/nan
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return _jsonable(value.item())
    return value


class TrainLog:
    """Appends records to ``train_log.jsonl``; a no-op on processes other than the main one."""

    def __init__(self, output_dir: str | Path, enabled: bool, resume_step: int | None = None):
        self.path = Path(output_dir) / TRAIN_LOG
        self.enabled = enabled
        if enabled and resume_step is not None and self.path.exists():
            self._truncate_after(resume_step)

    def _truncate_after(self, step: int) -> None:
        kept = [
            line
            for line in self.path.read_text(encoding="utf-8").splitlines()
            if (record := _parse_record(line)) is not None and record.get("step", 0) <= step
        ]
        write_text_atomic(self.path, "".join(line + "\n" for line in kept))

    def write(self, record: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(_jsonable(record)) + "\n")

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [record for record in map(_parse_record, lines) if record is not None]


def _parse_record(line: str) -> dict | None:
    """A log line as a record; None for a blank line or the torn last line of a killed run."""
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def write_metrics(output_dir: str | Path, metrics: Mapping[str, Any]) -> Path:
    """metrics.json appears whole or not at all: its presence marks a finished run."""
    path = Path(output_dir) / METRICS_FILE
    write_text_atomic(path, json.dumps(_jsonable(metrics), indent=2, sort_keys=True) + "\n")
    return path


def plot_loss_curve(records: list[dict], path: str | Path, title: str = "") -> Path | None:
    """Training loss (and evaluation loss) against optimizer steps; None when there is nothing to plot
    or matplotlib is not installed (it is an optional dependency: ``pip install seqlab[plots]``)."""
    train = [(r["step"], r["loss"]) for r in records if isinstance(r.get("loss"), (int, float))]
    evaluation = [(r["step"], r["eval_loss"]) for r in records if isinstance(r.get("eval_loss"), (int, float))]
    if not train and not evaluation:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on training machines
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axis = plt.subplots(figsize=(6, 4))
    if train:
        axis.plot(*zip(*train), label="train loss", linewidth=1.2)
    if evaluation:
        axis.plot(*zip(*evaluation), "o-", label="eval loss", linewidth=1.2, markersize=3)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("cross-entropy (nats/token)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)
