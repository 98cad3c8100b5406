"""Collators: turn lists of examples into padded tensors for the two pretraining objectives and for
classification.

- Causal language modelling (decoder, recurrent): predict each next token; the model shifts the
  labels, so ``labels`` is a copy of ``input_ids`` (``-100`` at padding).
- Masked language modelling (encoder): hide ``mask_rate`` of the tokens and predict them from both
  sides. Of the chosen tokens 80% become ``<mask>``, 10% a random ordinary token and 10% stay, so the
  encoder cannot rely on seeing ``<mask>``; special tokens (``<s>``, ``</s>``, padding) are never chosen.
- Classification: dynamic padding to the longest example of the batch, on the right.

The two language-modelling collators leave ``attention_mask`` out when no row was padded (packed blocks
of equal length, the pretraining case): the models then take their unmasked fast path (SDPA's causal or
flash kernel, also under ``torch.compile``; one recurrent kernel call over the batch) and no step has
to inspect an all-ones mask on the GPU. Ragged rows get the mask as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

IGNORE_INDEX = -100  # positions the loss skips


def pad_sequences(sequences: Sequence[Any], pad_token_id: int, pad_to_multiple_of: int | None = None):
    """Right-pad lists or 1-D tensors of ids into ``(input_ids, attention_mask)`` long tensors."""
    rows = [torch.as_tensor(seq, dtype=torch.long) for seq in sequences]
    longest = max((len(row) for row in rows), default=0)
    if pad_to_multiple_of:
        longest = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = torch.full((len(rows), longest), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = row
        attention_mask[i, : len(row)] = 1
    return input_ids, attention_mask


def pad_blocks(sequences: Sequence[Any], pad_token_id: int) -> dict[str, torch.Tensor]:
    """``input_ids`` of right-padded blocks, plus ``attention_mask`` only when some row was padded."""
    input_ids, attention_mask = pad_sequences(sequences, pad_token_id)
    if bool(attention_mask.all()):
        return {"input_ids": input_ids}
    return {"input_ids": input_ids, "attention_mask": attention_mask}


class CausalLMCollator:
    """Batch packed blocks for next-token prediction: ``input_ids``, ``labels`` (and ``attention_mask``).

    Blocks of equal length are stacked as they are, without an ``attention_mask``; ragged ones are
    right-padded with ``pad_token_id``, their padding gets label ``-100`` and the batch an ``attention_mask``.
    """

    def __init__(self, pad_token_id: int = 0):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad_blocks([f["input_ids"] for f in features], self.pad_token_id)
        labels = batch["input_ids"].clone()
        if "attention_mask" in batch:
            labels[batch["attention_mask"] == 0] = IGNORE_INDEX
        return {**batch, "labels": labels}


class MaskedLMCollator:
    """Batch blocks for masked language modelling (BERT's 80/10/10 corruption).

    ``labels`` hold the original id where a token was chosen and ``-100`` elsewhere. Pass ``seed``
    (or a ``torch.Generator``) for reproducible masks; the generator advances with every batch. With
    neither, torch's global random state is used, which ``DataLoader`` seeds differently in each
    worker; a seeded collator copied into several workers repeats one random stream in each.
    """

    def __init__(
        self,
        tokenizer: Any,
        mask_rate: float = 0.15,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ):
        if not 0 < mask_rate < 1:
            raise ValueError(f"mask_rate must be between 0 and 1 (exclusive), got {mask_rate}")
        if tokenizer.mask_token_id is None:
            raise ValueError("the tokenizer has no mask_token (<mask>); use a tokenizer from seqlab.tokenizer")
        self.mask_rate = mask_rate
        self.mask_token_id = tokenizer.mask_token_id
        self.pad_token_id = tokenizer.pad_token_id
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        vocab = torch.arange(len(tokenizer))
        self.ordinary_ids = vocab[~torch.isin(vocab, self.special_ids)]  # random replacements come from here
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        self.generator = generator

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad_blocks([f["input_ids"] for f in features], self.pad_token_id)
        batch["input_ids"], labels = self.mask_tokens(batch["input_ids"])
        return {**batch, "labels": labels}

    def mask_tokens(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (corrupted input_ids, labels) for a batch of ids; ``input_ids`` is not modified."""
        maskable = ~torch.isin(input_ids, self.special_ids)
        draws = torch.rand(input_ids.shape, generator=self.generator)
        chosen = (draws < self.mask_rate) & maskable
        labels = input_ids.masked_fill(~chosen, IGNORE_INDEX)

        action = torch.rand(input_ids.shape, generator=self.generator)
        to_mask = chosen & (action < 0.8)
        to_random = chosen & (action >= 0.8) & (action < 0.9)
        corrupted = input_ids.masked_fill(to_mask, self.mask_token_id)
        picks = torch.randint(len(self.ordinary_ids), input_ids.shape, generator=self.generator)
        corrupted = torch.where(to_random, self.ordinary_ids[picks], corrupted)
        return corrupted, labels


class ClassificationCollator:
    """Pad tokenized examples to the longest in the batch (right padding) and stack their labels."""

    def __init__(self, pad_token_id: int = 0, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = pad_sequences(
            [f["input_ids"] for f in features], self.pad_token_id, self.pad_to_multiple_of
        )
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        label_key = "labels" if "labels" in features[0] else "label" if "label" in features[0] else None
        if label_key is not None:
            batch["labels"] = torch.tensor([int(f[label_key]) for f in features], dtype=torch.long)
        return batch
