"""Sequence classification data: labelled subsets, label checks and tokenization.

The transfer-gap experiment fine-tunes every architecture on the *same* N training examples, so
``stratified_subset`` depends only on (dataset, N, seed), never on the model.
"""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np

from ..errors import SeqlabUsageError


def _labels(dataset: datasets.Dataset) -> np.ndarray:
    if "label" not in dataset.column_names:
        raise SeqlabUsageError(
            f"the dataset has no 'label' column (columns: {', '.join(dataset.column_names)}); "
            "use a labelled source such as sst2 or imdb:train"
        )
    return np.asarray(dataset["label"], dtype=np.int64)


def stratified_subset(dataset: datasets.Dataset, num_examples: int | str | None, seed: int = 0) -> datasets.Dataset:
    """Pick ``num_examples`` rows with the class proportions of ``dataset``, deterministically.

    Each class gets its proportional share (largest remainders break ties) and, when
    ``num_examples`` allows, at least one example. Rows come back in their original order. ``None``
    or ``"all"`` returns the whole dataset.
    """
    if num_examples is None or (isinstance(num_examples, str) and num_examples.lower() == "all"):
        return dataset
    return dataset.select(stratified_indices(dataset, num_examples, seed).tolist())


def stratified_indices(dataset: datasets.Dataset, num_examples: int | str, seed: int = 0) -> np.ndarray:
    """The sorted row indices ``stratified_subset`` keeps (see there)."""
    try:
        wanted = int(num_examples)
    except (TypeError, ValueError):
        raise SeqlabUsageError(f"num_examples must be a positive integer or 'all', got {num_examples!r}") from None
    if wanted <= 0:
        raise SeqlabUsageError(f"num_examples must be a positive integer or 'all', got {num_examples!r}")
    if wanted > len(dataset):
        raise SeqlabUsageError(
            f"num_examples={wanted} is more than the {len(dataset)} examples in the dataset; "
            f"ask for at most {len(dataset)} or 'all'"
        )
    labels = _labels(dataset)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = _allocate(counts, wanted)
    rng = np.random.default_rng(seed)
    chosen = []
    for label, quota in zip(classes, quotas):
        members = np.flatnonzero(labels == label)
        chosen.append(members[rng.permutation(len(members))[:quota]])
    return np.sort(np.concatenate(chosen))


def carve_dev_split(
    dataset: datasets.Dataset, num_examples: int, seed: int
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Split ``(rest, dev)`` off a training split: a stratified dev set fixed by ``seed`` alone.

    Model selection (learning rate, strategy) happens on ``dev`` while the reported numbers come from
    the evaluation split, which selection never sees. Label budgets are drawn from ``rest`` only, so the
    dev rows are never trained on, whatever the budget; a training row whose text repeats a dev row's
    (SST-2 holds a few duplicate sentences) is dropped from ``rest`` too.
    """
    if num_examples >= len(dataset):
        raise SeqlabUsageError(
            f"dev_examples={num_examples} leaves no training rows of the {len(dataset)} in the split; "
            "lower dev_examples"
        )
    dev = stratified_indices(dataset, num_examples, seed)
    rest = np.setdiff1d(np.arange(len(dataset)), dev, assume_unique=True)
    if "text" in dataset.column_names:
        texts = list(dataset["text"])  # one read of the column: indexing a datasets Column reads row by row
        dev_texts = {texts[i] for i in dev}
        rest = np.asarray([i for i in rest if texts[i] not in dev_texts], dtype=np.int64)
    return dataset.select(rest.tolist()), dataset.select(dev.tolist())


def _allocate(counts: np.ndarray, wanted: int) -> np.ndarray:
    """Split ``wanted`` over classes in proportion to ``counts``, one per class first when possible.

    After the minimum of one, the rest goes to each class in proportion to how far it is below its
    proportional share, and the last few by largest remainder (ties: the lower label).
    """
    quotas = np.ones(len(counts), dtype=np.int64) if wanted >= len(counts) else np.zeros(len(counts), np.int64)
    remaining = wanted - int(quotas.sum())
    deficit = np.maximum(counts * (wanted / counts.sum()) - quotas, 0.0)
    if remaining > 0 and deficit.sum() > 0:
        shares = deficit / deficit.sum() * remaining
        whole = np.minimum(np.floor(shares).astype(np.int64), counts - quotas)
        quotas += whole
        remaining -= int(whole.sum())
        order = np.lexsort((np.arange(len(counts)), -(shares - whole)))
    else:
        order = np.arange(len(counts))
    while remaining > 0:  # fewer than one per class is left, unless classes ran out of examples
        for index in order:
            if remaining > 0 and quotas[index] < counts[index]:
                quotas[index] += 1
                remaining -= 1
    return quotas


def check_labels(dataset: datasets.Dataset, num_labels: int) -> None:
    """Raise ``SeqlabUsageError`` if a label lies outside ``[0, num_labels)``, naming the first bad row."""
    labels = _labels(dataset)
    bad = np.flatnonzero((labels < 0) | (labels >= num_labels))
    if bad.size:
        row = int(bad[0])
        raise SeqlabUsageError(
            f"row {row} has label {int(labels[row])}, outside 0..{num_labels - 1} for num_labels={num_labels} "
            f"({bad.size} rows in all); set num_labels to cover every class or fix the labels"
        )


def infer_num_labels(dataset: datasets.Dataset) -> int:
    """Number of classes a classifier needs for ``dataset``: the largest label plus one."""
    labels = _labels(dataset)
    if labels.size == 0:
        raise SeqlabUsageError("the dataset has no examples to infer the number of labels from")
    if labels.min() < 0:
        raise SeqlabUsageError(f"labels must be 0 or more; found {int(labels.min())}")
    return int(labels.max()) + 1


def _tokenize_examples(batch: dict[str, list], tokenizer: Any, max_length: int) -> dict[str, list]:
    encoded = tokenizer(batch["text"], truncation=True, max_length=max_length, return_attention_mask=False)
    return {"input_ids": encoded["input_ids"]}


def tokenize_classification(
    dataset: datasets.Dataset, tokenizer: Any, max_length: int, num_proc: int = 1
) -> datasets.Dataset:
    """Tokenize ``text`` (``<s>`` first, truncated to ``max_length`` ids) into ``input_ids`` + ``labels``.

    Padding is left to ``ClassificationCollator`` so each batch pads only to its own longest example.
    """
    if "text" not in dataset.column_names:
        raise SeqlabUsageError(
            f"the dataset has no 'text' column (columns: {', '.join(dataset.column_names)}); "
            "load it with seqlab.data.load_text_dataset"
        )
    if max_length < 2:
        raise SeqlabUsageError(f"max_length must be at least 2 (<s> and one token), got {max_length}")
    keep = [c for c in ("label",) if c in dataset.column_names]
    tokenized = dataset.map(
        _tokenize_examples,
        batched=True,
        num_proc=num_proc if len(dataset) >= 2 * num_proc else 1,
        remove_columns=[c for c in dataset.column_names if c not in keep],
        fn_kwargs={"tokenizer": tokenizer, "max_length": max_length},
        desc="Tokenizing examples",
    )
    return tokenized.rename_column("label", "labels") if keep else tokenized
