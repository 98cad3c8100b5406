"""Timing that cancels machine noise: candidates measured in one process, repetitions interleaved.

On a shared machine the speed drifts by tens of percent within a minute. Timing seqlab for a
minute and then the reference for a minute would compare two different machines; alternating
repetitions (A B, B A, A B, ...) exposes both to the same drift, and the median of the repetitions
discards the odd repetition hit by a burst.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@dataclass
class Timings:
    """Seconds per step of every candidate: wall clock, and this process's CPU time.

    On a CPU shared with other work the wall clock also counts the time the process waited for a
    core; the CPU time does not, so on CPU (one thread) it is the steadier measure of the cost.
    """

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]


def interleaved_seconds(
    steps: dict[str, Callable[[], None]], repeats: int, warmup: int, steps_per_repeat: int, device: str
) -> Timings:
    """Time every candidate ``repeats`` times.

    Warm-up steps (compilation, allocator growth, lazy initialisation) run first, for every
    candidate, and are not timed. Then each repetition times ``steps_per_repeat`` steps of every
    candidate, in forward order on even repetitions and reverse order on odd ones.
    """
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            steps[name]()
    synchronize(device)
    timings = Timings(wall={name: [] for name in names}, cpu={name: [] for name in names})
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
            gc.collect()
            synchronize(device)
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(steps_per_repeat):
                steps[name]()
            synchronize(device)
            timings.wall[name].append((time.perf_counter() - wall_start) / steps_per_repeat)
            timings.cpu[name].append((time.process_time() - cpu_start) / steps_per_repeat)
    return timings


def median_rate(amount: float, seconds: Iterable[float]) -> tuple[float, list[float]]:
    """(median of ``amount / s``, every rate): tokens per second from seconds per step."""
    rates = [amount / s for s in seconds]
    return statistics.median(rates), rates


def rates(amount: float, timings: Timings, name: str, device: str) -> dict:
    """Tokens/s of one candidate: the wall-clock median and every repetition; on CPU also the
    median per CPU-second of this process."""
    rate, runs = median_rate(amount, timings.wall[name])
    found = {"tokens_per_s": rate, "runs": runs}
    if device == "cpu":
        found["tokens_per_cpu_s"] = median_rate(amount, [max(s, 1e-9) for s in timings.cpu[name]])[0]
    return found


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (tied weights count once)."""
    seen: dict[int, int] = {}
    for tensor in tensors:
        if isinstance(tensor, torch.Tensor) and tensor.numel() > 0:
            storage = tensor.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def resident_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> int:
    """Parameters, buffers and optimizer state: memory a model holds between steps."""
    tensors = [*model.parameters(), *model.buffers()]
    if optimizer is not None:
        for state in optimizer.state.values():
            tensors.extend(value for value in state.values() if isinstance(value, torch.Tensor))
    return tensor_bytes(tensors)


def peak_step_bytes(step: Callable[[], None], device: str, resident: int) -> int:
    """Peak memory of one step: ``resident`` plus the most memory the step held above its start.

    On CUDA the transient part comes from ``torch.cuda.max_memory_allocated`` (reset before the step,
    minus what was allocated at its start, so that other models in the process do not count). On
    CPU it is read from ``torch.profiler``'s memory records at the granularity of top-level operators
    (forward ops and autograd nodes), which is where activations and gradients appear and vanish.
    """
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return resident + max(torch.cuda.max_memory_allocated() - before, 0)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        step()
    top_level = [event for event in profiler.events() if event.cpu_parent is None]
    current = peak = 0
    for event in sorted(top_level, key=lambda event: event.time_range.start):
        current += event.cpu_memory_usage
        peak = max(peak, current)
    return resident + peak


def top_operators(step: Callable[[], None], device: str, steps: int = 3, top: int = 15) -> list[dict]:
    """The operators that take the most time in ``steps`` steps, per step (``torch.profiler``): on
    CUDA by GPU time, on CPU by CPU time. Where a ratio misses its target, this says where time goes."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as profiler:
        for _ in range(steps):
            step()
        synchronize(device)
    key = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    averages = sorted(profiler.key_averages(), key=lambda average: getattr(average, key), reverse=True)
    return [
        {
            "operator": average.key,
            "self_ms_per_step": getattr(average, key) / 1e3 / steps,
            "calls_per_step": average.count / steps,
        }
        for average in averages[:top]
    ]
