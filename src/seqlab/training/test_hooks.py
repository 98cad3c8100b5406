"""Test-only hooks of the training loop: no recipe keys, so ``recipe.yaml`` never records them.

``stop_after_steps=N`` stops a run after step N as if it were killed (the schedule is unchanged, no
model is saved); ``debug_batch_log=N`` makes each process write the token ids of its first N batches
and a digest of its final weights to ``output_dir/debug``. The kill/resume and multi-process tests
set them in-process with ``with debug_hooks(stop_after_steps=4): run_pretraining(...)``, or for a
launched process with the environment variables ``SEQLAB_DEBUG_STOP_AFTER_STEPS`` and
``SEQLAB_DEBUG_BATCH_LOG`` (the in-process setting wins).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import SeqlabUsageError
from .loop import LoopSettings

ENVIRONMENT = {"stop_after_steps": "SEQLAB_DEBUG_STOP_AFTER_STEPS", "debug_batch_log": "SEQLAB_DEBUG_BATCH_LOG"}
_MINIMUM = {"stop_after_steps": 1, "debug_batch_log": 0}
_active: dict[str, int] = {}


@contextmanager
def debug_hooks(*, stop_after_steps: int | None = None, debug_batch_log: int | None = None) -> Iterator[None]:
    """Runs started inside the block use these hooks (``None``: as the environment says)."""
    given = {"stop_after_steps": stop_after_steps, "debug_batch_log": debug_batch_log}
    saved = dict(_active)
    _active.update({name: value for name, value in given.items() if value is not None})
    try:
        yield
    finally:
        _active.clear()
        _active.update(saved)


def _hook(name: str) -> int | None:
    if name in _active:
        return _active[name]
    value = os.environ.get(ENVIRONMENT[name], "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < _MINIMUM[name]:
        raise SeqlabUsageError(
            f"environment variable {ENVIRONMENT[name]}={value!r} must be an integer >= {_MINIMUM[name]}; unset it"
        )
    return int(value)


def with_test_hooks(settings: LoopSettings) -> LoopSettings:
    """``settings`` with the hooks in force (unchanged when none is set)."""
    return dataclasses.replace(
        settings, stop_after_steps=_hook("stop_after_steps"), debug_batch_log=_hook("debug_batch_log") or 0
    )
