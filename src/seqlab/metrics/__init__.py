"""Classification metrics through `evaluate`, with the metric modules shipped inside seqlab.

``evaluate.load("accuracy")`` fetches its module from the Hugging Face Hub, which fails offline, and a
folder named like a metric in the working directory would shadow it. seqlab therefore loads its own
modules by file path (``metrics/accuracy/accuracy.py``, ``metrics/f1/f1.py``). ``evaluate`` is
imported lazily: importing it costs seconds, and only evaluation needs it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

METRICS_DIR = Path(__file__).resolve().parent
SHIPPED_METRICS = ("accuracy", "f1")


def metric_path(name: str) -> Path:
    """The file of a shipped metric module, e.g. ``.../seqlab/metrics/f1/f1.py``."""
    if name not in SHIPPED_METRICS:
        raise ValueError(f"unknown metric {name!r}; seqlab ships {', '.join(SHIPPED_METRICS)}")
    return METRICS_DIR / name / f"{name}.py"


@lru_cache(maxsize=None)
def load_metric(name: str) -> Any:
    """Load a shipped metric with ``evaluate.load`` from its file (works offline, kept in memory)."""
    import evaluate

    return evaluate.load(str(metric_path(name)), keep_in_memory=True)


def classification_metrics(
    predictions: Sequence[int], references: Sequence[int], num_labels: int | None = None
) -> dict[str, float]:
    """Accuracy and macro-F1 (over all ``num_labels`` classes when given) of class predictions."""
    predictions = [int(p) for p in predictions]
    references = [int(r) for r in references]
    labels = list(range(num_labels)) if num_labels else None
    accuracy = load_metric("accuracy").compute(predictions=predictions, references=references)["accuracy"]
    f1 = load_metric("f1").compute(predictions=predictions, references=references, average="macro", labels=labels)
    return {"accuracy": float(accuracy), "f1": float(f1["f1"])}


__all__ = ["METRICS_DIR", "SHIPPED_METRICS", "metric_path", "load_metric", "classification_metrics"]
