"""Property tests (hypothesis) of the data pipeline and the tokenizer.

- Packing neither drops nor duplicates tokens beyond the documented remainder: each split loses
  fewer than ``max_seq_length`` tokens at its end, and every piece between two ``</s>`` is one whole
  document, used once.
- Stratified subsets are balanced (each class within one example of its proportional share when
  every share is at least one example; at least one per class when there is room), deterministic,
  and their class counts do not depend on the seed.
- The byte-level tokenizer round-trips arbitrary Unicode text, special-token strings included,
  and a saved and reloaded tokenizer gives the same ids. (``tests/test_tokenizer.py`` already checks
  the round trip of short texts without special-token strings.)
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from seqlab.data import build_pretraining_dataset, stratified_subset
from seqlab.data.pretraining import _pack
from seqlab.errors import SeqlabUsageError
from seqlab.tokenizer import SPECIAL_TOKENS

FIXTURES_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


# ----------------------------------------------------------------------------------------------
# Packing
# ----------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(tokens=st.lists(st.integers(0, 511), max_size=400), block=st.integers(1, 40))
def test_pack_keeps_a_prefix_in_order_and_drops_less_than_a_block(tokens, block):
    packed = _pack(np.asarray(tokens, dtype=np.int32), block)
    rows = packed["input_ids"]
    assert all(len(row) == block for row in rows)
    kept = [token for row in rows for token in row]
    assert kept == tokens[: len(kept)]  # nothing reordered, duplicated or skipped
    assert 0 <= len(tokens) - len(kept) < block  # the documented remainder


documents = st.lists(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=60).filter(
        lambda t: t.strip() and not any(s in t for s in SPECIAL_TOKENS)
    ),
    min_size=3,
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURES_OK)
@given(
    texts=documents,
    block=st.integers(2, 16),
    fraction=st.sampled_from([0.0, 0.1, 0.3]),
    seed=st.integers(0, 3),
    budget=st.one_of(st.none(), st.integers(16, 400)),
)
def test_packing_loses_only_the_remainder_and_keeps_documents_whole(tokenizer, texts, block, fraction, seed, budget):
    eos = tokenizer.eos_token_id
    doc_tokens = [tuple(tokenizer(t, add_special_tokens=False)["input_ids"]) + (eos,) for t in texts]
    total = sum(map(len, doc_tokens))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "corpus.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        try:
            built = build_pretraining_dataset(
                tokenizer, [str(path)], max_seq_length=block, validation_fraction=fraction, max_tokens=budget, seed=seed
            )
        except SeqlabUsageError as error:
            assert any(
                reason in str(error)
                for reason in (
                    "too few for a training block",
                    "not one block fits",
                    "validation is held out by whole documents",
                )
            )
            assume(False)
    available = min(total, budget) if budget is not None else total
    splits = [built["train"]] + ([built["validation"]] if fraction > 0 else [])
    assert fraction > 0 or len(built["validation"]) == 0
    kept = []
    whole_pieces: Counter = Counter()
    for split in splits:
        stream = [token for row in split["input_ids"] for token in row]
        assert all(len(row) == block for row in split["input_ids"])
        kept += stream
        ends = [i for i, token in enumerate(stream) if token == eos]
        starts = [0] + [i + 1 for i in ends[:-1]]
        whole_pieces.update(tuple(stream[a : b + 1]) for a, b in zip(starts, ends))
    assert Counter(kept) - Counter(token for doc in doc_tokens for token in doc) == Counter()  # nothing duplicated
    assert 0 <= available - len(kept) < len(splits) * block  # only each split's remainder is dropped
    if budget is None:
        assert whole_pieces - Counter(doc_tokens) == Counter()  # every piece is one whole document, used once


# ----------------------------------------------------------------------------------------------
# Stratified subsets
# ----------------------------------------------------------------------------------------------


@st.composite
def labelled_sets(draw):
    classes = draw(st.integers(1, 6))
    labels = draw(st.lists(st.integers(0, classes - 1), min_size=1, max_size=200))
    wanted = draw(st.integers(1, len(labels)))
    return labels, wanted


@settings(max_examples=150, deadline=None)
@given(case=labelled_sets(), seed=st.integers(0, 2**16))
def test_stratified_subsets_are_balanced_deterministic_and_seed_independent_in_counts(case, seed):
    labels, wanted = case
    dataset = datasets.Dataset.from_dict({"text": [str(i) for i in range(len(labels))], "label": labels})
    subset = stratified_subset(dataset, wanted, seed=seed)
    rows = [int(text) for text in subset["text"]]
    assert len(rows) == wanted and rows == sorted(set(rows))  # original order, no row twice
    assert [labels[i] for i in rows] == subset["label"]
    assert stratified_subset(dataset, wanted, seed=seed)["text"] == subset["text"]  # deterministic

    counts, picked = Counter(labels), Counter(subset["label"])
    shares = {c: wanted * n / len(labels) for c, n in counts.items()}
    for label, count in counts.items():
        assert picked[label] <= count
        assert picked[label] <= max(1, math.ceil(shares[label]))  # never more than its share (or the one)
        if wanted >= len(counts):
            assert picked[label] >= 1  # every class is represented when there is room
    if all(share >= 1 for share in shares.values()):
        assert all(abs(picked[label] - shares[label]) < 1 for label in counts)
    other = stratified_subset(dataset, wanted, seed=seed + 1)
    assert Counter(other["label"]) == picked  # the seed picks the examples, never the balance


# ----------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------

any_text = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=300),
    st.lists(
        st.one_of(
            st.sampled_from(SPECIAL_TOKENS + [" ", "\n", "\t", "\r\n", "\u200b", "\ufeff"]),
            st.text(st.characters(codec="utf-8"), max_size=8),
        ),
        max_size=30,
    ).map("".join),
)


@pytest.fixture(scope="module")
def reloaded(tokenizer):
    from seqlab.tokenizer import load_tokenizer

    return load_tokenizer(tokenizer.saved_folder)


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURES_OK)
@given(text=any_text)
def test_tokenizer_round_trips_any_unicode_text(tokenizer, reloaded, text):
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    # Special-token strings in the text become those tokens and decode back to the same characters.
    assert tokenizer.decode(ids[1:], skip_special_tokens=False) == text
    if not any(s in text for s in SPECIAL_TOKENS):
        assert tokenizer.unk_token_id not in ids and tokenizer.decode(ids, skip_special_tokens=True) == text
    assert reloaded(text)["input_ids"] == ids


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES_OK)
@given(texts=st.lists(st.text(st.characters(codec="utf-8"), max_size=60), min_size=1, max_size=6))
def test_batched_encoding_equals_one_text_at_a_time(tokenizer, texts):
    batch = tokenizer(texts)["input_ids"]
    assert batch == [tokenizer(text)["input_ids"] for text in texts]
