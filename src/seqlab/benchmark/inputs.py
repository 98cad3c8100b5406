"""Inputs of the training and generation benchmarks: a seqlab tokenizer and blocks of real text.

The token ids are real (tinyshakespeare through the shared tokenizer), not random, so the masked
language-modelling batches see the same special tokens and 15% masking as in pretraining.
"""

from __future__ import annotations

import torch

from ..data.collators import MaskedLMCollator
from ..data.sources import iter_texts
from ..tokenizer import load_tokenizer, train_tokenizer

TEXT_SOURCE = "tinyshakespeare"
MASK_RATE = 0.15


def benchmark_tokenizer(path: str | None, vocab_size: int):
    """The tokenizer at ``path``, or a byte-level BPE of ``vocab_size`` trained on tinyshakespeare
    (about a second; the model vocabulary is ``vocab_size`` even if the text yields fewer merges)."""
    if path:
        return load_tokenizer(path)
    return train_tokenizer(iter_texts(TEXT_SOURCE), vocab_size=vocab_size, kind="bpe")


def token_blocks(tokenizer, num_blocks: int, block_len: int) -> torch.Tensor:
    """``(num_blocks, block_len)`` ids of consecutive tinyshakespeare documents separated by ``</s>``,
    as the pretraining pipeline packs them. The text is reused from the start if it runs out."""
    needed = num_blocks * block_len
    stream: list[int] = []
    while len(stream) < needed:
        before = len(stream)
        for text in iter_texts(TEXT_SOURCE):
            stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
            stream.append(tokenizer.eos_token_id)
            if len(stream) >= needed:
                break
        if len(stream) == before:
            raise ValueError(f"the benchmark text source {TEXT_SOURCE!r} produced no tokens")
    return torch.tensor(stream[:needed], dtype=torch.long).view(num_blocks, block_len)


def causal_lm_batches(blocks: torch.Tensor, batch_size: int) -> list[dict[str, torch.Tensor]]:
    """Next-token batches: ``labels`` are the ids (the models shift them); nothing is padded."""
    return [
        {"input_ids": chunk, "labels": chunk.clone()}
        for chunk in blocks.split(batch_size)
        if chunk.shape[0] == batch_size
    ]


def masked_lm_batches(blocks: torch.Tensor, batch_size: int, tokenizer, seed: int = 0) -> list[dict]:
    """BERT-style batches from seqlab's ``MaskedLMCollator`` (15% of the tokens chosen, 80/10/10).
    Every model of a comparison gets the very same batches."""
    collator = MaskedLMCollator(tokenizer, mask_rate=MASK_RATE, seed=seed)
    batches = []
    for chunk in blocks.split(batch_size):
        if chunk.shape[0] == batch_size:
            batches.append(collator([{"input_ids": row} for row in chunk]))  # no padding: no attention_mask
    return batches


def to_device(batches: list[dict[str, torch.Tensor]], device: str) -> list[dict[str, torch.Tensor]]:
    return [{key: value.to(device) for key, value in batch.items()} for batch in batches]
