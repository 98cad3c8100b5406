"""Run one benchmark suite and write its result file."""

from __future__ import annotations

import os

import torch

from ..errors import SeqlabUsageError
from ..provenance import provenance
from .inputs import benchmark_tokenizer
from .report import make_document, write_json
from .settings import Settings


def _check_device(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        raise SeqlabUsageError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")


def run_benchmark(settings: Settings, json_path: str | os.PathLike | None = None) -> dict:
    """Measure ``settings.suite`` and return the result document (also written to ``json_path``)."""
    from .data import run_data_suite
    from .generate import run_generate_suite
    from .train import run_train_suite

    _check_device(settings.device)
    info = provenance()
    tokenizer = benchmark_tokenizer(settings.tokenizer_path, settings.shape.vocab_size)
    suite = {"train": run_train_suite, "generate": run_generate_suite, "data": run_data_suite}[settings.suite]
    entries = suite(settings, tokenizer, info["versions"])
    document = make_document(settings, entries, info)
    if json_path is not None:
        write_json(document, json_path)
    return document
