"""Classification metrics through `evaluate`, with the metric modules shipped inside seqlab.

``evaluate.load("accuracy")`` fetches its module from the Hugging Face Hub, which fails offline
("Couldn't find a module script ... doesn't exist on the Hugging Face Hub either"), and a folder named
like a metric in the working directory would shadow it. ``load_metric("accuracy")`` (or ``"f1"``) is the
offline drop-in: the same ``evaluate`` metric object, loaded by file path from seqlab's own modules
(``metrics/accuracy/accuracy.py``, ``metrics/f1/f1.py``), e.g. in a ``Trainer``'s ``compute_metrics``.
``evaluate`` is imported lazily: importing it costs seconds, and only evaluation needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import SeqlabUsageError

METRICS_DIR = Path(__file__).resolve().parent
SHIPPED_METRICS = ("accuracy", "f1")


_HUB_NAMESPACE = "evaluate-metric/"  # where evaluate's canonical metrics live on the Hub


def metric_path(name: str) -> Path:
    """The file of a shipped metric module, e.g. ``.../seqlab/metrics/f1/f1.py``.

    ``name`` is an ``evaluate`` metric name (``"f1"``, or its Hub id ``"evaluate-metric/f1"``).
    """
    short = name.removeprefix(_HUB_NAMESPACE)
    if short not in SHIPPED_METRICS:
        raise SeqlabUsageError(
            f"seqlab ships no metric {name!r}, only {', '.join(SHIPPED_METRICS)} (offline); for another one "
            f"call evaluate.load({name!r}) with Hub access, or evaluate.load('path/to/metric.py') with a module file"
        )
    return METRICS_DIR / short / f"{short}.py"


@cache
def load_metric(name: str) -> Any:
    """``evaluate.load(name)`` for a shipped metric, from its file: works offline, kept in memory."""
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
