"""Language-model pretraining data: documents tokenized, separated by ``</s>``, packed into blocks.

Recipe (deterministic for a given seed):

1. Load every source (``"key"`` or ``"key:split"``; evaluation splits are refused) and keep only
   the text: labels of labelled sources are ignored.
2. Shuffle the documents with ``seed``. With ``max_tokens``, keep documents from the front of that
   order until the budget is reached (the last one is cut to fit), so small runs sample every source.
3. Tokenize with a batched ``map`` (``add_special_tokens=False``, cached by ``datasets``), appending
   ``</s>`` after each document.
4. Hold out validation at document level, before packing: the first shuffled documents, until they
   hold ``validation_fraction`` of the tokens (at least one block).
5. Concatenate each split's documents and cut the stream into blocks of ``max_seq_length``; the last
   ``< max_seq_length`` tokens of each split are dropped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SeqlabUsageError
from .sources import load_text_dataset, refuse_evaluation_splits

logger = logging.getLogger(__name__)

DEFAULT_PRETRAINING_SOURCES = ("general_english", "imdb:unsup", "imdb:train")
# A generous first guess of characters per token, used only to decide how much text to tokenize
# before counting; too low a guess costs one more round, never a wrong result.
_CHARS_PER_TOKEN_GUESS = 4


def build_pretraining_dataset(
    tokenizer: Any,
    sources: str | Iterable[str],
    max_seq_length: int,
    validation_fraction: float = 0.02,
    max_tokens: int | None = None,
    num_proc: int = 1,
    seed: int = 0,
) -> datasets.DatasetDict:
    """Build ``DatasetDict(train, validation)`` of rows ``{"input_ids": [max_seq_length ints]}``."""
    sources = [sources] if isinstance(sources, str) else list(sources)
    _check_arguments(tokenizer, sources, max_seq_length, validation_fraction, max_tokens, num_proc)
    refuse_evaluation_splits(sources)

    documents = datasets.concatenate_datasets(
        [load_text_dataset(source).select_columns(["text"]) for source in sources]
    )
    order = np.random.default_rng(seed).permutation(len(documents))
    tokens, lengths = _tokenize_in_order(documents, order, tokenizer, max_tokens, num_proc)
    if max_tokens is not None and tokens.size > max_tokens:
        kept_documents = int(np.searchsorted(np.cumsum(lengths), max_tokens)) + 1
        lengths = lengths[:kept_documents].copy()
        lengths[-1] -= int(lengths.sum()) - max_tokens
        tokens = tokens[:max_tokens]

    validation_documents = _validation_document_count(lengths, validation_fraction, max_seq_length)
    validation_tokens = int(lengths[:validation_documents].sum())
    validation = _pack(tokens[:validation_tokens], max_seq_length)
    train = _pack(tokens[validation_tokens:], max_seq_length)
    if len(train) == 0 and validation_documents >= len(lengths) and tokens.size >= 2 * max_seq_length:
        # enough tokens, too few documents: validation is held out by whole documents (a document never
        # straddles the splits), and it took them all
        raise SeqlabUsageError(
            f"the pretraining corpus holds {tokens.size} tokens but only {len(lengths)} document(s) (text files "
            f"are cut at blank lines, and long passages at line breaks); validation is held out by whole documents, "
            f"so it took all of them and left nothing to train on; break the text into lines or paragraphs, add "
            f"sources, or pass --validation_fraction 0 to train without a validation split"
        )
    if len(train) == 0 or (validation_fraction > 0 and len(validation) == 0):
        raise SeqlabUsageError(
            f"the pretraining corpus holds {tokens.size} tokens, too few for a training block and a validation "
            f"block of max_seq_length={max_seq_length}; raise max_tokens, add sources or lower max_seq_length"
        )
    logger.info(
        "pretraining corpus: %d documents, %d tokens; train %d blocks, validation %d blocks (%d documents) "
        "of %d tokens",
        len(lengths),
        tokens.size,
        len(train),
        len(validation),
        validation_documents,
        max_seq_length,
    )
    return datasets.DatasetDict({"train": train, "validation": validation})


def _check_arguments(tokenizer, sources, max_seq_length, validation_fraction, max_tokens, num_proc) -> None:
    if not sources:
        raise SeqlabUsageError(
            f"no pretraining sources given; pass data keys or files, e.g. {list(DEFAULT_PRETRAINING_SOURCES)}"
        )
    if max_seq_length < 2:
        raise SeqlabUsageError(f"max_seq_length must be at least 2 tokens, got {max_seq_length}")
    if not 0 <= validation_fraction < 1:
        raise SeqlabUsageError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    if max_tokens is not None and max_tokens < max_seq_length:
        raise SeqlabUsageError(
            f"max_tokens={max_tokens} is below max_seq_length={max_seq_length}: not one block fits; raise max_tokens"
        )
    if num_proc < 1:
        raise SeqlabUsageError(f"num_proc must be at least 1, got {num_proc}")
    if tokenizer.eos_token_id is None:
        raise SeqlabUsageError("the tokenizer has no eos_token (</s>) to separate documents; use seqlab.tokenizer")


def _tokenize_documents(batch: dict[str, list], tokenizer: Any) -> dict[str, list]:
    encoded = tokenizer(batch["text"], add_special_tokens=False, return_attention_mask=False, verbose=False)
    eos = tokenizer.eos_token_id
    return {"input_ids": [ids + [eos] for ids in encoded["input_ids"]]}


def _tokenize_in_order(
    documents: datasets.Dataset, order: np.ndarray, tokenizer: Any, max_tokens: int | None, num_proc: int
) -> tuple[np.ndarray, np.ndarray]:
    """Tokenize documents in ``order``; with a budget, only as many as needed. Returns (tokens, lengths)."""
    if max_tokens is None:
        cumulative_chars = None
        stop = len(order)
    else:
        chars = pc.utf8_length(documents.with_format("arrow")["text"]).to_numpy(zero_copy_only=False)
        cumulative_chars = np.cumsum(chars[order])
        char_budget = max_tokens * _CHARS_PER_TOKEN_GUESS
        stop = int(np.searchsorted(cumulative_chars, char_budget)) + 1
    token_parts, length_parts = [], []
    start, total = 0, 0
    while start < len(order):
        stop = min(max(stop, start + 1), len(order))
        part = documents.select(order[start:stop]).map(
            _tokenize_documents,
            batched=True,
            num_proc=num_proc if stop - start >= 2 * num_proc else 1,
            remove_columns=["text"],
            fn_kwargs={"tokenizer": tokenizer},
            features=datasets.Features({"input_ids": datasets.List(datasets.Value("int32"))}),
            desc="Tokenizing documents",
        )
        for chunk in part.data.column("input_ids").chunks:
            token_parts.append(chunk.flatten().to_numpy())
            length_parts.append(pc.list_value_length(chunk).to_numpy())
            total += len(token_parts[-1])
        start = stop
        if max_tokens is None or total >= max_tokens:
            break
        # Fewer tokens than the budget: tokenize as much text again as has been tokenized so far.
        stop = int(np.searchsorted(cumulative_chars, 2 * cumulative_chars[start - 1])) + 1
    tokens = np.concatenate(token_parts) if token_parts else np.zeros(0, dtype=np.int32)
    lengths = np.concatenate(length_parts) if length_parts else np.zeros(0, dtype=np.int64)
    return tokens, lengths.astype(np.int64)


def _validation_document_count(lengths: np.ndarray, fraction: float, block: int) -> int:
    """How many leading documents form the validation split: ``fraction`` of the tokens, >= one block."""
    if fraction == 0:
        return 0
    target = max(math.ceil(fraction * int(lengths.sum())), block)
    return int(np.searchsorted(np.cumsum(lengths), target)) + 1


def _pack(tokens: np.ndarray, block: int) -> datasets.Dataset:
    blocks = tokens.size // block
    flat = pa.array(tokens[: blocks * block], type=pa.int32())
    return datasets.Dataset(pa.table({"input_ids": pa.FixedSizeListArray.from_arrays(flat, block)}))
