"""Benchmarks of seqlab against the implementations a user would otherwise pick.

Three suites, each measuring seqlab and its reference in one process with interleaved repetitions
(so that the ratio, not the absolute number, is what a noisy machine still gets right):

- ``train``: tokens/s of a training step; decoder vs GPT-2, encoder vs BERT masked LM, LSTM vs a
  plain ``nn.LSTM`` language model; eager and ``torch.compile``.
- ``generate``: decoded tokens/s with and without the cache; decoder vs GPT-2 ``generate``.
- ``data``: tokenize + pack throughput of the pretraining pipeline vs the ``run_clm.py`` recipe.

``python scripts/benchmark.py --suite train --device cpu --size tiny --json OUT`` runs one suite.
"""

from .runner import run_benchmark
from .settings import DEVICES, FAMILIES, SIZES, SUITES, Settings, resolve_settings

__all__ = ["run_benchmark", "resolve_settings", "Settings", "SUITES", "SIZES", "DEVICES", "FAMILIES"]
