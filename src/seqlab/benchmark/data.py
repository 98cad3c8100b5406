"""Data throughput: tokenizing and packing the pretraining corpus, in packed tokens per second.

seqlab's ``build_pretraining_dataset`` is compared with the recipe of transformers' ``run_clm.py``
example, which is what a user writes otherwise: ``map(tokenize, batched=True)`` then
``map(group_texts, batched=True)`` (concatenate every column, cut blocks, copy ``labels``). Both
read the same sources in the same shuffled order; with a token budget the reference takes the
documents that seqlab's first tokenizing round takes (``max_tokens x 4`` characters) and, like
seqlab, is credited with at most ``max_tokens`` packed tokens.

Converting the raw files to Arrow happens once per machine (cached by ``datasets``) and is done
before timing; ``datasets``' transform cache is switched off while timing, so that no repetition
reads a previous repetition's result.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from itertools import chain

import datasets
import numpy as np
import pyarrow.compute as pc

from ..data.pretraining import build_pretraining_dataset
from ..data.sources import load_text_dataset
from .report import DATA_TARGET_MIN_PROCS, DATA_TARGET_SECONDS, make_entry
from .settings import Settings
from .timing import interleaved_seconds, median_rate

VALIDATION_FRACTION = 0.02
# characters per token that seqlab's pipeline assumes when it picks the documents of a token budget
CHARS_PER_TOKEN_GUESS = 4
SEED = 0


@contextlib.contextmanager
def transform_cache_disabled():
    was_enabled = datasets.is_caching_enabled()
    datasets.disable_caching()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_caching()


def _documents(sources: tuple[str, ...]) -> datasets.Dataset:
    return datasets.concatenate_datasets([load_text_dataset(s).select_columns(["text"]) for s in sources])


def run_clm_pipeline(tokenizer, sources, block_size: int, max_tokens: int | None, num_proc: int, seed: int) -> int:
    """The ``run_clm.py`` recipe on the same documents; returns the number of packed tokens."""
    documents = _documents(sources)
    order = np.random.default_rng(seed).permutation(len(documents))
    if max_tokens is not None:
        chars = pc.utf8_length(documents.with_format("arrow")["text"]).to_numpy(zero_copy_only=False)
        budget = max_tokens * CHARS_PER_TOKEN_GUESS
        order = order[: int(np.searchsorted(np.cumsum(chars[order]), budget)) + 1]
    documents = documents.select(order)
    workers = num_proc if len(documents) >= 2 * num_proc else 1

    def tokenize_function(examples):
        # run_clm.py silences the "longer than model_max_length" warning the same way (documents get cut later)
        return tokenizer(examples["text"], verbose=False)

    def group_texts(examples):
        concatenated = {key: list(chain(*examples[key])) for key in examples}
        total = (len(concatenated["input_ids"]) // block_size) * block_size
        result = {key: [t[i : i + block_size] for i in range(0, total, block_size)] for key, t in concatenated.items()}
        result["labels"] = result["input_ids"].copy()
        return result

    tokenized = documents.map(tokenize_function, batched=True, num_proc=workers, remove_columns=["text"])
    grouped = tokenized.map(group_texts, batched=True, num_proc=workers)
    packed = len(grouped) * block_size
    # the same documents give seqlab's pipeline about as many tokens as this, of which it keeps max_tokens:
    # credit both with the tokens the caller asked for
    return packed if max_tokens is None else min(packed, max_tokens)


def seqlab_pipeline(tokenizer, sources, block_size: int, max_tokens: int | None, num_proc: int, seed: int) -> int:
    """seqlab's pretraining pipeline; returns the number of packed tokens (train and validation)."""
    splits = build_pretraining_dataset(
        tokenizer, list(sources), block_size, VALIDATION_FRACTION, max_tokens, num_proc, seed
    )
    return sum(len(split) for split in splits.values()) * block_size


def run_data_suite(settings: Settings, tokenizer, versions: dict) -> list[dict]:
    sources = settings.data_sources
    block = settings.shape.seq_len
    _documents(sources)  # the one-time conversion to Arrow, outside the timing
    entries = []
    for num_proc in settings.num_proc:
        produced: dict[str, int] = {}

        def runner(role: str, pipeline: Callable[..., int]) -> Callable[[], None]:
            def step() -> None:
                produced[role] = pipeline(tokenizer, sources, block, settings.data_max_tokens, num_proc, SEED)

            return step

        steps = {"seqlab": runner("seqlab", seqlab_pipeline), "reference": runner("reference", run_clm_pipeline)}
        with transform_cache_disabled():
            timings = interleaved_seconds(steps, settings.repeats, warmup=0, steps_per_repeat=1, device="cpu")
        sides = {}
        for role, model in (("seqlab", "build_pretraining_dataset"), ("reference", "run_clm.py tokenize+group_texts")):
            # wall clock only: with num_proc > 1 the work happens in worker processes
            rate, runs = median_rate(produced[role], timings.wall[role])
            sides[role] = {
                "model": model,
                "tokens_per_s": rate,
                "runs": runs,
                "peak_memory_bytes": None,
                "packed_tokens": produced[role],
                "median_seconds": produced[role] / rate,
            }
        name = f"data-tokenize-pack-procs{num_proc}"
        target, meets = None, None
        if settings.data_max_tokens is None and num_proc >= DATA_TARGET_MIN_PROCS:
            target = {"metric": "seconds", "at_most": DATA_TARGET_SECONDS}
            meets = sides["seqlab"]["median_seconds"] <= DATA_TARGET_SECONDS
        config = {
            "sources": list(sources),
            "max_tokens": settings.data_max_tokens,
            "block_size": block,
            "num_proc": num_proc,
            "tokenizer_vocab_size": len(tokenizer),
            "validation_fraction": VALIDATION_FRACTION,
        }
        device = f"cpu ({os.cpu_count()} cores, {num_proc} worker{'s' if num_proc > 1 else ''})"
        entry = make_entry(name, sides["seqlab"], sides["reference"], config, device, versions, target)
        entry["meets_target"] = meets
        entries.append(entry)
    return entries
