"""Accuracy: the fraction of examples whose predicted class equals the reference class.

An `evaluate` metric module shipped inside seqlab so that it loads offline from its file path
(``evaluate.load("<this file>")``) instead of from the Hugging Face Hub.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Accuracy = (number of correct predictions) / (number of predictions)."

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): reference class ids.
    normalize (bool): if False, return the number of correct predictions instead of the fraction.
    sample_weight (list of float): optional weight of each example.
Returns:
    accuracy (float): in [0, 1] when normalize is True.
Example:
    >>> accuracy = evaluate.load("path/to/accuracy.py")
    >>> accuracy.compute(predictions=[0, 1, 1], references=[0, 1, 0])
    {'accuracy': 0.6666666666666666}
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        if predictions.shape != references.shape:
            raise ValueError(
                f"accuracy: {predictions.shape[0]} predictions but {references.shape[0]} references; "
                "pass one prediction per reference"
            )
        weights = np.ones(len(predictions)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        correct = float(np.sum(weights * (predictions == references)))
        if not normalize:
            return {"accuracy": correct}
        total = float(np.sum(weights))
        return {"accuracy": correct / total if total > 0 else 0.0}
