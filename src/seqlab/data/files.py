"""Reading local text files: plain text cut into documents, and TSV/CSV/JSON-lines tables.

Plain text is cut into *documents*: blocks of lines separated by blank lines, with blocks longer than
``MAX_DOCUMENT_CHARS`` split at line boundaries. A document is the unit that pretraining separates
with ``</s>`` and holds out for validation; a one-sentence-a-line corpus would otherwise put ``</s>``
after every sentence, and a whole book without blank lines would be a single document.

Tables yield ``{"text": str}`` or ``{"text": str, "label": int}``; a label that is not an integer is
an error naming the file and row.

Files must be UTF-8 (a leading byte-order mark is dropped) and no line may be longer than
``MAX_LINE_CHARS`` characters: a file that is not text, or one enormous line (a minified dump, a
binary file), is refused with its name and line number instead of filling the memory.
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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ..errors import SeqlabUsageError

TEXT_COLUMNS = ("text", "sentence", "review", "content")
LABEL_COLUMNS = ("label", "labels", "sentiment")
TEXT_SUFFIXES = (".txt", ".tsv", ".csv", ".jsonl")
COMPRESSION_SUFFIXES = (".xz", ".gz", ".bz2")
MAX_DOCUMENT_CHARS = 2000
MAX_LINE_CHARS = 1_000_000  # longer lines are refused: no corpus line or table row is this long
_UTF8_BOM = "\ufeff"

# Bumped whenever the rows a reader yields change, so cached Arrow files are rebuilt.
_READER_VERSION = "2"  # 2: byte-order mark dropped


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


@contextmanager
def _open_text(path: str) -> Iterator[Iterator[str]]:
    """The lines of a (possibly compressed) UTF-8 file, line endings kept, each checked as it is read."""
    opener = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}.get(Path(path).suffix.lower(), open)
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        yield _checked_lines(handle, path, opener)


def _checked_lines(handle: IO[str], path: str, opener) -> Iterator[str]:
    """Lines of at most ``MAX_LINE_CHARS`` characters (so memory stays bounded whatever the file holds)."""
    number = 0
    while True:
        try:
            line = handle.readline(MAX_LINE_CHARS + 1)
        except UnicodeDecodeError:
            raise _not_utf8(path, opener) from None
        except (OSError, EOFError, lzma.LZMAError) as error:  # a damaged .gz/.xz/.bz2 stream
            raise SeqlabUsageError(
                f"{path}: cannot be read after line {number} ({type(error).__name__}: {error}); the compressed "
                "file is damaged or truncated: copy or download it again"
            ) from None
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_CHARS:
            raise _too_long(path, number)
        if number == 1 and line.startswith(_UTF8_BOM):
            line = line[len(_UTF8_BOM) :]
        yield line


def _not_utf8(path: str, opener) -> SeqlabUsageError:
    """Find the first line that is not UTF-8 (the text reader decodes ahead, so it cannot say which)."""
    byte_limit = 4 * MAX_LINE_CHARS  # UTF-8 takes at most 4 bytes a character
    where = ""
    try:
        with opener(path, "rb") as handle:
            for number in itertools.count(1):
                raw = handle.readline(byte_limit)
                if not raw:
                    break
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    where = f" (line {number}: its byte {error.start + 1}, {raw[error.start]:#04x}, cannot be decoded)"
                    break
    except (OSError, EOFError, lzma.LZMAError):  # also damaged compression: the text read so far was not UTF-8
        pass
    return SeqlabUsageError(
        f"{path}: not UTF-8 text{where}; seqlab reads UTF-8 only: convert the file, e.g. "
        f"`iconv -f latin1 -t utf-8 {Path(path).name} > fixed{Path(path).suffix}`"
    )


def _too_long(path: str, number: int) -> SeqlabUsageError:
    return SeqlabUsageError(
        f"{path}: line {number} is longer than {MAX_LINE_CHARS:,} characters; this is usually not a text corpus "
        "(a binary file, a minified dump or a file without line breaks): break the text into lines or "
        "documents separated by blank lines"
    )


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
        with _open_text(path) as lines:
            for document in split_documents(lines):
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
        reader = (
            csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if fmt == ".tsv" else csv.DictReader(handle)
        )
        try:
            columns = list(reader.fieldnames or [])
        except csv.Error as error:
            raise _csv_error(path, reader, error) from None
        yield columns, _csv_records(path, reader)


def _csv_records(path: str, reader: csv.DictReader) -> Iterator[dict[str, Any]]:
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise _csv_error(path, reader, error) from None
        yield record


def _csv_error(path: str, reader: csv.DictReader, error: csv.Error) -> SeqlabUsageError:
    kind = "TSV" if reader.reader.dialect.delimiter == "\t" else "CSV"
    limit = csv.field_size_limit()
    hint = f"a field holds at most {limit:,} characters: " if "field larger" in str(error) else ""
    return SeqlabUsageError(
        f"{path}, after line {reader.line_num}: not a valid {kind} row ({error}); {hint}fix or remove the row"
    )


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


def _normalise_records(
    path: str, columns: list[str], records: Iterator[dict[str, Any]], text_column: str | None, labelled: bool | None
) -> Iterator[dict[str, Any]]:
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


def read_rows(
    files: tuple[str, ...], text_column: str | None = None, labelled: bool | None = None
) -> Iterator[dict[str, Any]]:
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


def generate_rows(
    files: list[str], text_column: str | None, labelled: bool | None, drop_empty: bool, signature: str
) -> Iterator[dict[str, Any]]:
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
