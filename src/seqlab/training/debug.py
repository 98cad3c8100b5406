"""Debug instrumentation of the training loop, read by the multi-process tests (``debug_batch_log``).

Neither helper changes training: they only write files under ``output_dir/debug``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch


def write_weights_digest(accelerator, model, output_dir: str | Path) -> Path:
    """Debug: each process writes a SHA-256 of its model weights (processes must end up identical)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(accelerator.unwrap_model(model).state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    path = Path(output_dir) / "debug" / f"weights-rank{accelerator.process_index}.sha256"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(digest.hexdigest() + "\n", encoding="utf-8")
    return path


class DebugBatchLog:
    """Records the token ids each process trained on first (the multi-process test reads them)."""

    def __init__(self, output_dir: str | None, process_index: int, limit: int):
        self.limit = limit
        self.path = Path(output_dir) / "debug" / f"batches-rank{process_index}.jsonl" if output_dir else None
        self.written = 0

    def write(self, step: int, batch: dict[str, torch.Tensor]) -> None:
        if self.path is None or self.written >= self.limit:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, "input_ids": batch["input_ids"].tolist()}) + "\n")
        self.written += 1
