"""Where texts come from: data keys, plain file paths, and the Hub datasets behind the keys.

Every source ends up as rows ``{"text": str}`` or, for labelled sources, ``{"text": str, "label": int}``.

A data key (``sst2``, ``imdb``, ...) names a dataset. It resolves to the files under
``$SEQLAB_DATA_DIR`` when its folder exists there (layout in ``shared/data/README.md``), otherwise to
its Hugging Face Hub twin. A plain file path (``.txt``, ``.tsv``, ``.csv``, ``.jsonl``, optionally
compressed ``.xz``/``.gz``) works wherever a key does. A source string may name a split after a
colon: ``"imdb:unsup"``; a file holds one split, whatever its name.

Plain text files are cut into documents (see ``seqlab.data.files``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from ..errors import SeqlabUsageError
from .files import (
    COMPRESSION_SUFFIXES,
    TEXT_SUFFIXES,
    file_format,
    file_has_labels,
    file_signature,
    generate_rows,
    read_rows,
    split_documents,
)

DATA_DIR_ENV = "SEQLAB_DATA_DIR"
EVALUATION_SPLITS = ("validation", "valid", "dev", "test")


@dataclass(frozen=True)
class HubDataset:
    """The Hugging Face Hub dataset that stands in for a key when no local copy exists."""

    path: str
    name: str | None = None
    splits: dict[str, str] = field(default_factory=dict)  # seqlab split -> Hub split
    text_column: str = "text"
    label_column: str | None = "label"
    plain_text: bool = False  # rows are lines or whole corpora: cut them into documents like a .txt file


@dataclass(frozen=True)
class DataKey:
    """A named dataset: its local layout under ``$SEQLAB_DATA_DIR`` and its Hub twin."""

    key: str
    local_dir: str  # relative to $SEQLAB_DATA_DIR
    local_files: dict[str, str]  # split -> glob pattern relative to local_dir
    hub: HubDataset
    labelled_splits: tuple[str, ...] = ()
    label_names: tuple[str, ...] | None = None
    text_column: str = "text"
    # share of 'train' held out as a 'validation' split when the data ships none (IMDB: its test split is
    # deliberately absent); 'train' then means the rest, so pretraining on key:train never sees it
    validation_from_train: float | None = None

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.local_files) + (("validation",) if self.validation_from_train else ())

    @property
    def num_labels(self) -> int | None:
        return len(self.label_names) if self.label_names else None


_SST_SPLITS = {"train": "train.tsv", "validation": "validation.tsv"}
_SST5_LABELS = ("very negative", "negative", "neutral", "positive", "very positive")

KNOWN_KEYS: dict[str, DataKey] = {
    "sst2": DataKey(
        key="sst2",
        local_dir="sst2",
        local_files=_SST_SPLITS,
        hub=HubDataset(
            "stanfordnlp/sst2", splits={"train": "train", "validation": "validation"}, text_column="sentence"
        ),
        labelled_splits=("train", "validation"),
        label_names=("negative", "positive"),
        text_column="sentence",
    ),
    "sst2_sentence": DataKey(
        key="sst2_sentence",
        local_dir="sst2_sentence",
        local_files=_SST_SPLITS,
        hub=HubDataset("SetFit/sst2", splits={"train": "train", "validation": "validation"}),
        labelled_splits=("train", "validation"),
        label_names=("negative", "positive"),
        text_column="sentence",
    ),
    "sst5": DataKey(
        key="sst5",
        local_dir="sst5",
        local_files=_SST_SPLITS,
        hub=HubDataset("SetFit/sst5", splits={"train": "train", "validation": "validation"}),
        labelled_splits=("train", "validation"),
        label_names=_SST5_LABELS,
        text_column="sentence",
    ),
    "imdb": DataKey(
        key="imdb",
        local_dir="imdb",
        local_files={"train": "train.jsonl.xz", "unsup": "unsup.jsonl.xz"},
        hub=HubDataset("stanfordnlp/imdb", splits={"train": "train", "unsup": "unsupervised"}),
        labelled_splits=("train", "validation"),
        label_names=("negative", "positive"),
        validation_from_train=0.1,
    ),
    "general_english": DataKey(
        key="general_english",
        local_dir="pretrain/general_english",
        local_files={"train": "*.txt.xz"},
        # No single Hub twin: WikiText-103 is the usual stand-in.
        hub=HubDataset(
            "Salesforce/wikitext",
            name="wikitext-103-raw-v1",
            splits={"train": "train"},
            label_column=None,
            plain_text=True,
        ),
    ),
    "tinyshakespeare": DataKey(
        key="tinyshakespeare",
        local_dir="tinyshakespeare",
        local_files={"train": "input.txt"},
        hub=HubDataset("karpathy/tiny_shakespeare", splits={"train": "train"}, label_column=None, plain_text=True),
    ),
}


@dataclass(frozen=True)
class ResolvedSource:
    """A source string turned into either local files or a Hub dataset, for one split."""

    source: str  # as the user wrote it (without the split)
    split: str
    key: DataKey | None = None  # None for a plain file path
    files: tuple[str, ...] = ()  # local files; empty means the Hub
    labelled: bool | None = None  # None: a plain file decides from its columns
    carve: str | None = None  # "train" or "validation": which side of a held-out split of 'train' to keep
    carve_fraction: float = 0.0

    @property
    def description(self) -> str:
        return f"{self.source!r} (split {self.split!r})"

    def keeps(self, text: str) -> bool:
        """Whether a row of the underlying 'train' file belongs to this (possibly carved) split.

        The held-out side is chosen by a hash of the text, so it is the same on every machine and for
        every reader (Arrow loading, streaming for the tokenizer, pretraining).
        """
        if self.carve is None:
            return True
        bucket = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big") % 10_000
        return (bucket < self.carve_fraction * 10_000) == (self.carve == "validation")


def parse_source(source: str, default_split: str = "train") -> tuple[str, str]:
    """Split ``"key:split"`` into ``(key, split)``; a string that is an existing path is never split."""
    source = str(source)
    if ":" in source and not os.path.exists(source):
        name, _, split = source.rpartition(":")
        if name and re.fullmatch(r"\w+", split):
            return name, split
    return source, default_split


def refuse_evaluation_splits(sources: Iterable[str], purpose: str = "pretraining") -> None:
    """Raise if a source names an evaluation split: evaluation texts never enter pretraining."""
    for source in sources:
        _, split = parse_source(source)
        if split in EVALUATION_SPLITS:
            raise SeqlabUsageError(
                f"source {source!r} names the evaluation split {split!r}, but evaluation texts never enter "
                f"pretraining ({purpose}); use a training split such as 'train' or 'unsup'"
            )


def data_dir() -> Path | None:
    """The folder named by ``$SEQLAB_DATA_DIR``, or None when unset."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def resolve_source(source: str, split: str = "train") -> ResolvedSource:
    """Resolve a key, ``key:split`` or file path to local files or a Hub dataset (nothing is read)."""
    name, split = parse_source(source, split)
    key = KNOWN_KEYS.get(name)
    if key is not None:
        return _resolve_key(key, split)
    path = Path(name).expanduser()
    if path.is_dir():
        raise SeqlabUsageError(
            f"dataset {name!r} is a folder; pass one file ({', '.join(TEXT_SUFFIXES)}, optionally "
            f"compressed {'/'.join(COMPRESSION_SUFFIXES)}) or a data key ({', '.join(KNOWN_KEYS)})"
        )
    if path.is_file():
        file_format(path)  # refuse unknown formats before anything is read
        return ResolvedSource(source=name, split=split, files=(str(path),))
    raise SeqlabUsageError(
        f"unknown dataset {name!r}: it is neither a data key ({', '.join(KNOWN_KEYS)}) nor an existing "
        f"file; fix the spelling or pass the path of a {'/'.join(TEXT_SUFFIXES)} file"
    )


def _resolve_key(key: DataKey, split: str) -> ResolvedSource:
    if key.validation_from_train and split in ("train", "validation"):
        resolved = _resolve_files(key, "train")
        return dataclasses.replace(
            resolved, split=split, labelled=True, carve=split, carve_fraction=key.validation_from_train
        )
    return _resolve_files(key, split)


def _resolve_files(key: DataKey, split: str) -> ResolvedSource:
    if split not in key.local_files:
        hint = ""
        if split in EVALUATION_SPLITS and "train" in key.local_files:
            hint = (
                " (it has no evaluation split: carve one from 'train', e.g. with "
                "build_pretraining_dataset's validation_fraction or datasets' train_test_split)"
            )
        raise SeqlabUsageError(
            f"dataset {key.key!r} has no split {split!r}; its splits are {', '.join(key.splits)}{hint}"
        )
    labelled = split in key.labelled_splits
    root = data_dir()
    folder = root / key.local_dir if root is not None else None
    if folder is None or not folder.is_dir():
        return ResolvedSource(source=key.key, split=split, key=key, labelled=labelled)
    files = tuple(sorted(str(p) for p in folder.glob(key.local_files[split])))
    if not files:
        raise SeqlabUsageError(
            f"dataset {key.key!r}: no file matches {key.local_files[split]!r} in {folder} (split "
            f"{split!r}); restore the layout described in the data README or unset {DATA_DIR_ENV}"
        )
    return ResolvedSource(source=key.key, split=split, key=key, files=files, labelled=labelled)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def load_text_dataset(source: str, split: str = "train") -> datasets.Dataset:
    """Load a key, ``key:split`` or file as a ``datasets.Dataset`` with ``text`` (and ``label`` if labelled).

    Labels are ints; text-only sources drop empty documents. Local files are converted to Arrow once
    and cached by ``datasets`` (keyed by the files' size and modification time).
    """
    resolved = resolve_source(source, split)
    dataset = _load_local(resolved) if resolved.files else _load_hub(resolved)
    if resolved.carve is not None:
        dataset = dataset.filter(lambda batch: [resolved.keeps(t) for t in batch["text"]], batched=True)
    if len(dataset) == 0:
        raise SeqlabUsageError(f"dataset {resolved.description} holds no texts; check the file or split")
    return dataset


def iter_texts(sources: str | Iterable[str], split: str = "train", max_texts: int | None = None) -> Iterator[str]:
    """Stream non-empty texts from one or more sources, one text from each in turn, at most ``max_texts``.

    All sources are resolved before the first text is read, so a bad key fails at once. Local files
    are streamed without building Arrow caches, which suits tokenizer training.
    """
    if isinstance(sources, str):
        sources = [sources]
    resolved = [resolve_source(s, split) for s in sources]
    if not resolved:
        raise SeqlabUsageError("no dataset given; pass at least one data key or file")
    if max_texts is not None and max_texts <= 0:
        raise SeqlabUsageError(f"max_texts must be a positive number of texts, got {max_texts}")
    return _interleave([_stream_texts(r) for r in resolved], max_texts)


def _interleave(streams: list[Iterator[str]], max_texts: int | None) -> Iterator[str]:
    count = 0
    active = list(streams)
    while active:
        for stream in list(active):
            text = next(stream, None)
            if text is None:
                active.remove(stream)
                continue
            yield text
            count += 1
            if max_texts is not None and count >= max_texts:
                return


def _stream_texts(resolved: ResolvedSource) -> Iterator[str]:
    if resolved.files:
        rows: Iterable[dict[str, Any]] = read_rows(resolved.files, _text_column(resolved), resolved.labelled)
    else:
        rows = _load_hub(resolved, streaming=True)
    for row in rows:
        if row["text"].strip() and resolved.keeps(row["text"]):
            yield row["text"]


def _text_column(resolved: ResolvedSource) -> str | None:
    return resolved.key.text_column if resolved.key is not None else None


def _load_local(resolved: ResolvedSource) -> datasets.Dataset:
    files = resolved.files
    labelled = resolved.labelled
    if labelled is None:  # a plain file: its columns decide
        labelled = file_has_labels(files)
    features = datasets.Features({"text": datasets.Value("string")})
    if labelled:
        features["label"] = datasets.Value("int64")
    signature = file_signature(files)
    gen_kwargs = {
        "files": list(files),
        "text_column": _text_column(resolved),
        "labelled": labelled,
        "drop_empty": not labelled,
        "signature": signature,
    }
    if next(generate_rows(**gen_kwargs), None) is None:
        raise SeqlabUsageError(f"dataset {resolved.description} holds no texts; check the file or split")
    fingerprint = hashlib.sha256(json.dumps(gen_kwargs, sort_keys=True).encode()).hexdigest()[:24]
    try:
        return datasets.Dataset.from_generator(
            generate_rows, gen_kwargs=gen_kwargs, features=features, fingerprint=fingerprint
        )
    except datasets.exceptions.DatasetGenerationError as error:
        if isinstance(error.__cause__, SeqlabUsageError):
            raise error.__cause__ from None
        raise


def _load_hub(resolved: ResolvedSource, streaming: bool = False):
    """Load a key's Hub twin and normalise its columns; offline, say how to use local files instead."""
    key = resolved.key
    assert key is not None  # file paths always resolve to local files
    hub = key.hub
    try:
        dataset = datasets.load_dataset(hub.path, hub.name, split=hub.splits[resolved.split], streaming=streaming)
    except Exception as error:  # offline: ConnectionError; gated or renamed: DatasetNotFoundError, ...
        raise SeqlabUsageError(
            f"could not load dataset {key.key!r} from the Hugging Face Hub ({hub.path}): "
            f"{type(error).__name__}: {error}. Without network access set {DATA_DIR_ENV} to the folder "
            f"holding the seqlab datasets (with {key.local_dir}/ inside, layout in the data README)"
        ) from None
    if hub.text_column != "text":
        dataset = dataset.rename_column(hub.text_column, "text")
    labelled = resolved.labelled and hub.label_column is not None
    if labelled and hub.label_column != "label":
        dataset = dataset.rename_column(hub.label_column, "label")
    dataset = dataset.select_columns(["text", "label"] if labelled else ["text"])
    if hub.plain_text:
        # WikiText comes as one paragraph a row, tiny_shakespeare as one corpus a row: cut both into documents.
        dataset = dataset.map(_hub_documents, batched=True, remove_columns=["text"])
    elif not labelled:
        dataset = dataset.filter(lambda row: bool(row["text"].strip()))
    return dataset


def _hub_documents(batch: dict[str, list]) -> dict[str, list]:
    documents: list[str] = []
    for text in batch["text"]:
        documents.extend(d for d in split_documents(text.splitlines()) if d.strip())
    return {"text": documents}


def key_label_names(source: str) -> list[str] | None:
    """Class names of a data key's labels (for ``id2label``), or None for files and unlabelled keys."""
    name, _ = parse_source(source)
    key = KNOWN_KEYS.get(name)
    return list(key.label_names) if key is not None and key.label_names else None
