"""Reading local text files: plain text cut into documents, and TSV/CSV/JSON-lines tables.

Plain text is cut into *documents*: blocks of lines separated by blank lines, with blocks longer than
``MAX_DOCUMENT_CHARS`` split at line boundaries. A document is the unit that pretraining separates
with ``</s>`` and holds out for validation; a one-sentence-a-line corpus would otherwise put ``</s>``
after every sentence, and a whole book without blank lines would be a single document.

Tables yield ``{"text": str}`` or ``{"text": str, "label": int}``; a label that is not an integer is
an error naming the file and row.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import itertools
import json
import lzma
import math
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from ..errors import SeqlabUsageError

TEXT_COLUMNS = ("text", "sentence", "review", "content")
LABEL_COLUMNS = ("label", "labels", "sentiment")
TEXT_SUFFIXES = (".txt", ".tsv", ".csv", ".jsonl")
COMPRESSION_SUFFIXES = (".xz", ".gz", ".bz2")
MAX_DOCUMENT_CHARS = 2000

# Bumped whenever the rows a reader yields change, so cached Arrow files are rebuilt.
_READER_VERSION = "1"


def file_format(path: Path) -> tuple[str, str | None]:
    """Return (format suffix, compression suffix) of a file, e.g. ('.jsonl', '.xz')."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes.pop() if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES else None
    fmt = suffixes[-1] if suffixes else ""
    if fmt not in TEXT_SUFFIXES:
        raise SeqlabUsageError(
            f"cannot read {str(path)!r}: its format {fmt or '(no suffix)'!r} is not one of "
            f"{', '.join(TEXT_SUFFIXES)} (optionally compressed {'/'.join(COMPRESSION_SUFFIXES)}); "
            "rename or convert the file"
        )
    return fmt, compression


def _open_text(path: str) -> IO[str]:
    opener = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}.get(Path(path).suffix.lower(), open)
    return opener(path, "rt", encoding="utf-8", newline="")


def split_documents(lines: Iterable[str], max_chars: int = MAX_DOCUMENT_CHARS) -> Iterator[str]:
    """Group lines into documents: blank lines end a document, long ones split at line boundaries."""
    block: list[str] = []
    size = 0
    for line in lines:
        line = line.rstrip("\r\n")
        if not line.strip():
            if block:
                yield "\n".join(block)
            block, size = [], 0
            continue
        if block and size + len(line) > max_chars:
            yield "\n".join(block)
            block, size = [], 0
        block.append(line)
        size += len(line) + 1
    if block:
        yield "\n".join(block)


def _read_documents(files: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    for path in files:
        with _open_text(path) as handle:
            for document in split_documents(handle):
                yield {"text": document}


@contextmanager
def _open_table(path: str, fmt: str) -> Iterator[tuple[list[str], Iterator[dict[str, Any]]]]:
    """Open a table file and give (column names, records); the file closes when the block ends."""
    with _open_text(path) as handle:
        if fmt == ".jsonl":
            lines = (line for line in handle if line.strip())
            parsed = (_parse_json_line(path, line, row) for row, line in enumerate(lines, start=1))
            first = next(parsed, None)
            columns = list(first) if first is not None else []
            yield columns, itertools.chain([first] if first is not None else [], parsed)
            return
        # TSV corpora (GLUE SST) use no quoting: a sentence may start with a quote character.
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if fmt == ".tsv" \
            else csv.DictReader(handle)
        yield list(reader.fieldnames or []), iter(reader)


def _parse_json_line(path: str, line: str, row: int) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise SeqlabUsageError(f"{path} row {row}: not valid JSON ({error}); fix or remove the row") from None
    if not isinstance(record, dict):
        raise SeqlabUsageError(f"{path} row {row}: expected a JSON object per line, got {type(record).__name__}")
    return record


def _pick_column(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    return next((lowered[name] for name in candidates if name in lowered), None)


def _read_table_rows(path: str, fmt: str, text_column: str | None, labelled: bool | None) -> Iterator[dict[str, Any]]:
    with _open_table(path, fmt) as (columns, records):
        if columns:
            yield from _normalise_records(path, columns, records, text_column, labelled)


def _normalise_records(path: str, columns: list[str], records: Iterator[dict[str, Any]],
                       text_column: str | None, labelled: bool | None) -> Iterator[dict[str, Any]]:
    text_column = text_column or _pick_column(columns, TEXT_COLUMNS)
    if text_column not in columns:
        raise SeqlabUsageError(
            f"{path}: no text column; columns seen: {', '.join(columns)}; name the text column one of "
            f"{', '.join(TEXT_COLUMNS)}"
        )
    label_column = _pick_column(columns, LABEL_COLUMNS) if labelled is not False else None
    if labelled and label_column is None:
        raise SeqlabUsageError(
            f"{path}: no label column; columns seen: {', '.join(columns)}; name it one of {', '.join(LABEL_COLUMNS)}"
        )
    for row, record in enumerate(records, start=1):
        text = record.get(text_column)
        if not isinstance(text, str):
            raise SeqlabUsageError(
                f"{path} row {row}: column {text_column!r} holds {text!r}, not a text; fix or remove the row"
            )
        if label_column is None:
            yield {"text": text}
        else:
            yield {"text": text, "label": _parse_label(record.get(label_column), path, row, label_column)}


def _parse_label(value: Any, path: str, row: int, column: str) -> int:
    label: int | None = None
    if isinstance(value, bool):
        label = None
    elif isinstance(value, int):
        label = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        label = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.0*)?\s*", value):
        label = int(float(value))
    if label is None:
        raise SeqlabUsageError(
            f"{path} row {row}: label {value!r} in column {column!r} is not an integer class id; labels must "
            "be integers 0..num_labels-1 (map label names to ids, drop unlabelled rows)"
        )
    return label


def read_rows(files: tuple[str, ...], text_column: str | None = None, labelled: bool | None = None) -> Iterator[dict[str, Any]]:
    """Rows of local files as ``{"text"}`` or ``{"text", "label"}``.

    ``text_column`` fixes the text column of table files (else the first of ``TEXT_COLUMNS``);
    ``labelled`` True requires a label column, False ignores it, None takes it when present.
    """
    for path in files:
        fmt, _ = file_format(Path(path))
        if fmt == ".txt":
            yield from _read_documents((path,))
        else:
            yield from _read_table_rows(path, fmt, text_column, labelled)


def generate_rows(files: list[str], text_column: str | None, labelled: bool | None,
                  drop_empty: bool, signature: str) -> Iterator[dict[str, Any]]:
    """Generator for ``Dataset.from_generator`` (``signature`` only feeds the cache fingerprint)."""
    for row in read_rows(tuple(files), text_column, labelled):
        if drop_empty and not row["text"].strip():
            continue
        yield row


def file_signature(files: tuple[str, ...]) -> str:
    digest = hashlib.sha256(_READER_VERSION.encode())
    for path in files:
        stat = os.stat(path)
        digest.update(f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}|".encode())
    return digest.hexdigest()[:16]


def file_has_labels(files: tuple[str, ...]) -> bool:
    labelled = set()
    for path in files:
        fmt, _ = file_format(Path(path))
        if fmt == ".txt":
            labelled.add(False)
            continue
        with _open_table(path, fmt) as (columns, _):
            labelled.add(_pick_column(columns, LABEL_COLUMNS) is not None)
    if len(labelled) > 1:
        raise SeqlabUsageError(f"files {', '.join(files)} mix labelled and unlabelled texts; load them separately")
    return labelled.pop()
