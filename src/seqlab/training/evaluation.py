"""Evaluation of language models and classifiers, exact across processes.

Each process scores its shard and returns per-example sums (loss, counted tokens, correct
predictions); ``accelerator.gather_for_metrics`` collects them and drops the examples that the
sharding duplicated to even out the last batch, so two processes report what one would.

Each loader is read to its end (cap a split by selecting fewer rows, see ``cap_for_evaluation``):
Accelerate only trims the duplicated examples when a loader finishes. Evaluation runs under
``torch.random.fork_rng``: it never moves the training random state, so
evaluating more or less often leaves the training run (dropout, masking) unchanged, and a resumed
run continues bit-identically.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def cap_for_evaluation(dataset, max_batches: int | None, batch_size: int, num_processes: int):
    """``max_batches`` batches' worth of rows for every process (``None``: the whole split).

    The rows are a random sample drawn with a fixed seed, in their original order: files are often
    sorted (by label, by source), so the first rows would be a biased sample, and every run must
    score the same rows to be comparable.
    """
    size = None if max_batches is None else max_batches * batch_size * num_processes
    if size is None or size >= len(dataset):
        return dataset
    rows = np.sort(np.random.default_rng(0).permutation(len(dataset))[:size])
    return dataset.select(rows.tolist())


@contextmanager
def evaluation_mode(model: torch.nn.Module, device: torch.device) -> Iterator[None]:
    """``model.eval()``, no gradients, and a private copy of the random state; restored on exit."""
    was_training = model.training
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    model.eval()
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 50 else float("inf")


def evaluate_causal_lm(accelerator, model, dataloader) -> dict[str, float]:
    """Mean next-token cross entropy over all predicted tokens, and its perplexity exp(loss)."""
    total_loss = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    total_tokens = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    with evaluation_mode(model, accelerator.device):
        for batch in dataloader:
            labels = batch["labels"]
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            logits = model(**inputs).logits
            shifted_logits = logits[:, :-1].float()
            targets = labels[:, 1:]
            losses = F.cross_entropy(
                shifted_logits.reshape(-1, shifted_logits.size(-1)),
                targets.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="none",
            ).view_as(targets)
            per_example_loss = losses.sum(dim=1)
            per_example_tokens = (targets != IGNORE_INDEX).sum(dim=1)
            per_example_loss, per_example_tokens = accelerator.gather_for_metrics(
                (per_example_loss, per_example_tokens)
            )
            total_loss += per_example_loss.double().sum()
            total_tokens += per_example_tokens.double().sum()
    loss = (total_loss / total_tokens.clamp(min=1)).item()
    return {"loss": loss, "perplexity": _perplexity(loss), "tokens": int(total_tokens.item())}


def evaluate_masked_lm(accelerator, model, dataloader) -> dict[str, float]:
    """Cross entropy and accuracy of the masked-LM predictions, over the chosen (masked) tokens.

    The masks come from the dataloader's collator; give it a generator seeded afresh before each
    evaluation so every evaluation scores the same masks.
    """
    total_loss = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    total_tokens = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    total_correct = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    with evaluation_mode(model, accelerator.device):
        for batch in dataloader:
            labels = batch["labels"]
            logits = model(**batch).logits
            chosen = labels != IGNORE_INDEX
            if logits.dim() == 3:  # a head that scores every position
                logits = logits[chosen]
            targets = labels[chosen]
            losses = F.cross_entropy(logits.float(), targets, reduction="none")
            correct = (logits.argmax(dim=-1) == targets).to(losses.dtype)
            rows = chosen.nonzero()[:, 0]  # which example each masked token belongs to
            size = labels.size(0)
            per_example_loss = torch.zeros(size, device=losses.device).index_add_(0, rows, losses)
            per_example_correct = torch.zeros(size, device=losses.device).index_add_(0, rows, correct)
            per_example_tokens = chosen.sum(dim=1)
            gathered = accelerator.gather_for_metrics((per_example_loss, per_example_correct, per_example_tokens))
            total_loss += gathered[0].double().sum()
            total_correct += gathered[1].double().sum()
            total_tokens += gathered[2].double().sum()
    tokens = total_tokens.clamp(min=1)
    loss = (total_loss / tokens).item()
    return {
        "loss": loss,
        "perplexity": _perplexity(loss),
        "accuracy": (total_correct / tokens).item(),
        "tokens": int(total_tokens.item()),
    }


def predict_classes(accelerator, model, dataloader):
    """Predicted classes, reference labels and per-example losses of a whole split (all processes)."""
    predictions, references, losses = [], [], []
    with evaluation_mode(model, accelerator.device):
        for batch in dataloader:
            labels = batch["labels"]
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            logits = model(**inputs).logits.float()
            loss = F.cross_entropy(logits, labels, reduction="none")
            gathered = accelerator.gather_for_metrics((logits.argmax(dim=-1), labels, loss))
            predictions.append(gathered[0].cpu())
            references.append(gathered[1].cpu())
            losses.append(gathered[2].cpu())
    return torch.cat(predictions), torch.cat(references), torch.cat(losses)


def evaluate_classification(accelerator, model, dataloader, num_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 through ``evaluate`` (seqlab's shipped metric modules), and the mean loss."""
    from ..metrics import classification_metrics

    predictions, references, losses = predict_classes(accelerator, model, dataloader)
    scores = classification_metrics(predictions.tolist(), references.tolist(), num_labels=num_labels)
    return {**scores, "loss": losses.double().mean().item(), "examples": int(references.numel())}
