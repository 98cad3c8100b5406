"""F1 score: the harmonic mean of precision and recall, per class or averaged over classes.

An `evaluate` metric module shipped inside seqlab so that it loads offline from its file path
(``evaluate.load("<this file>")``) instead of from the Hugging Face Hub. Macro-F1 (the unweighted
mean over classes) does not let a majority class hide a poor minority class, which matters for
few-label fine-tuning.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "F1 = 2 * precision * recall / (precision + recall), for one class or averaged over classes."

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): reference class ids.
    labels (list of int): the classes to score; defaults to every class seen in predictions or references.
    pos_label (int): the positive class when average="binary" (default 1).
    average (str): "binary" (F1 of pos_label), "macro" (unweighted mean over classes), "micro" (F1 of the
        pooled counts, equal to accuracy for single-label classification), "weighted" (mean weighted by each
        class's number of references) or None (one F1 per class).
    sample_weight (list of float): optional weight of each example.
Returns:
    f1 (float, or a list of floats when average is None). A class with no true positives scores 0.
Example:
    >>> f1 = evaluate.load("path/to/f1.py")
    >>> f1.compute(predictions=[0, 1, 1], references=[0, 1, 0], average="macro")
    {'f1': 0.6666666666666666}
"""

_CITATION = ""

_AVERAGES = ("binary", "macro", "micro", "weighted", None)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=float), where=denominator > 0)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None):
        if average not in _AVERAGES:
            raise ValueError(f"f1: unknown average {average!r}; choose one of {_AVERAGES}")
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        if predictions.shape != references.shape:
            raise ValueError(
                f"f1: {predictions.shape[0]} predictions but {references.shape[0]} references; "
                "pass one prediction per reference"
            )
        weights = np.ones(len(predictions)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if average == "binary":
            labels = [pos_label]
        elif labels is None:
            labels = sorted(set(predictions.tolist()) | set(references.tolist()))
        labels = np.asarray(labels)

        predicted = predictions[None, :] == labels[:, None]  # (classes, examples)
        actual = references[None, :] == labels[:, None]
        true_positives = np.sum(weights * (predicted & actual), axis=1)
        predicted_count = np.sum(weights * predicted, axis=1)
        actual_count = np.sum(weights * actual, axis=1)

        if average == "micro":
            precision = _safe_divide(true_positives.sum(), predicted_count.sum())
            recall = _safe_divide(true_positives.sum(), actual_count.sum())
            return {"f1": float(_safe_divide(2 * precision * recall, precision + recall))}
        per_class = _safe_divide(2 * true_positives, predicted_count + actual_count)
        if average is None:
            return {"f1": per_class.tolist()}
        if average == "weighted":
            return {"f1": float(_safe_divide(np.sum(per_class * actual_count), actual_count.sum()))}
        return {"f1": float(per_class.mean()) if len(per_class) else 0.0}
