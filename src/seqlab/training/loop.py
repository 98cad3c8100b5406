"""The one training loop of seqlab, shared by pretraining and fine-tuning.

An optimizer step takes ``gradient_accumulation_steps`` micro-batches (gradients synchronised
across processes only on the last), clips the gradient norm, steps AdamW and the schedule. Steps,
not micro-batches, are counted. The data order of epoch ``e`` depends only on ``(seed, e)``
(Accelerate's seedable sampler), so a checkpoint's ``(epoch, batches_in_epoch)`` is enough for
``skip_first_batches`` to continue exactly where the run stopped; the random generators come back
from the checkpoint, and the DataLoader draws its worker seeds from a private generator so that
re-creating an iterator mid-epoch does not shift the dropout or masking streams.

A step whose loss or gradient is not finite is never applied: the run stops (the last checkpoint
stays as it was) or, with ``skip_nonfinite_batches``, the step's update is dropped and counted in
``progress.skipped_steps``; the schedule and the data position advance as for any other step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import skip_first_batches

from .checkpointing import TrainingProgress, save_checkpoint
from .health import nonfinite_step_error, nonfinite_weights_error, step_is_nonfinite, weights_are_finite
from .reporting import TrainLog

EvaluateFn = Callable[[], dict[str, float]]
StepHook = Callable[[int], None]
BatchTransform = Callable[[dict], dict]


@dataclass
class LoopSettings:
    max_steps: int
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = 1.0
    logging_steps: int = 10
    eval_steps: int | None = None
    save_steps: int | None = None
    save_total_limit: int | None = 2
    stop_after_steps: int | None = None
    output_dir: str | None = None
    debug_batch_log: int = 0
    skip_nonfinite_batches: bool = False

    @classmethod
    def from_recipe(cls, recipe, max_steps: int, output_dir) -> LoopSettings:
        """The loop's settings as resolved training arguments give them (the test hooks: see test_hooks)."""
        hooks = ("stop_after_steps", "debug_batch_log")  # not recipe keys: set by test_hooks.with_test_hooks
        keys = [f for f in cls.__dataclass_fields__ if f not in ("max_steps", "output_dir", *hooks)]
        return cls(max_steps=max_steps, output_dir=str(output_dir), **{key: getattr(recipe, key) for key in keys})


@dataclass
class LoopResult:
    progress: TrainingProgress
    stopped_early: bool
    train_loss: float | None  # mean training loss over the whole run, across resumes
    seconds: float  # training time of this session, evaluations and checkpoints excluded
    tokens_per_second: float


def steps_per_epoch(batches_per_epoch: int, gradient_accumulation_steps: int) -> int:
    """Optimizer steps in one pass; the last step of an epoch may take fewer micro-batches."""
    return math.ceil(batches_per_epoch / gradient_accumulation_steps)


def _count_tokens(batch: dict[str, torch.Tensor]) -> torch.Tensor | int:
    """Non-padding tokens of a batch (a device tensor: no synchronisation)."""
    mask = batch.get("attention_mask")
    return mask.sum().to(torch.long) if mask is not None else batch["input_ids"].numel()


def write_weights_digest(accelerator, model, output_dir: str | Path) -> Path:
    """Debug: each process writes a SHA-256 of its model weights (processes must end up identical)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(accelerator.unwrap_model(model).state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    path = Path(output_dir) / "debug" / f"weights-rank{accelerator.process_index}.sha256"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(digest.hexdigest() + "\n", encoding="utf-8")
    return path


class _DebugBatchLog:
    """Records the token ids each process trained on first (the multi-process test reads them)."""

    def __init__(self, output_dir: str | None, process_index: int, limit: int):
        self.limit = limit
        self.path = Path(output_dir) / "debug" / f"batches-rank{process_index}.jsonl" if output_dir else None
        self.written = 0

    def write(self, step: int, batch: dict[str, torch.Tensor]) -> None:
        if self.path is None or self.written >= self.limit:
            return
        import json

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, "input_ids": batch["input_ids"].tolist()}) + "\n")
        self.written += 1


def train(
    accelerator,
    model: torch.nn.Module,
    optimizer,
    scheduler,
    train_dataloader,
    settings: LoopSettings,
    progress: TrainingProgress,
    train_log: TrainLog,
    evaluate_fn: EvaluateFn | None = None,
    before_optimizer_step: StepHook | None = None,
    batch_transform: BatchTransform | None = None,
) -> LoopResult:
    """Train until ``settings.max_steps`` optimizer steps are done (or ``stop_after_steps``).

    ``batch_transform`` runs on each micro-batch just before its forward pass. Random corruption
    (masked-LM masking) belongs there rather than in the collator: the data loader collates one
    batch ahead, so random draws made in the collator would sit on the wrong side of a checkpoint.
    """
    from tqdm.auto import tqdm

    accumulation = settings.gradient_accumulation_steps
    batches_per_epoch = len(train_dataloader)
    debug_log = _DebugBatchLog(settings.output_dir, accelerator.process_index, settings.debug_batch_log)
    bar = tqdm(
        total=settings.max_steps,
        initial=progress.step,
        desc="training",
        disable=not accelerator.is_local_main_process,
        dynamic_ncols=True,
    )
    device = accelerator.device
    # loss sums carried over from a checkpoint: a resumed run logs what an uninterrupted one would
    window_loss = torch.tensor(progress.window_loss_sum, dtype=torch.float64, device=device)
    window_steps = progress.window_steps
    run_loss = torch.tensor(progress.run_loss_sum, dtype=torch.float64, device=device)
    run_steps = progress.run_steps
    # tokens and sequences since the last synchronisation of the global counts; kept on the device
    # so that counting never makes the CPU wait for the GPU
    local_counts = torch.zeros(2, dtype=torch.long, device=device)
    window_start_tokens = progress.tokens_seen
    started = window_started = time.perf_counter()
    session_start_tokens = progress.tokens_seen
    grad_norm = torch.zeros((), device=device)
    paused_seconds = 0.0
    stopped_early = False
    model.train()

    def sync_counts() -> None:
        counts = accelerator.reduce(local_counts.clone(), reduction="sum").tolist()
        progress.tokens_seen += int(counts[0])
        progress.examples_seen += int(counts[1])
        local_counts.zero_()

    while progress.step < settings.max_steps and not stopped_early:
        train_dataloader.set_epoch(progress.epoch)
        loader = train_dataloader
        if progress.batches_in_epoch:
            loader = skip_first_batches(train_dataloader, progress.batches_in_epoch)
        batches: Iterator[dict[str, torch.Tensor]] = iter(loader)
        while progress.step < settings.max_steps:
            group_size = min(accumulation, batches_per_epoch - progress.batches_in_epoch)
            if group_size <= 0:
                break
            step_loss = torch.zeros((), dtype=torch.float32, device=device)
            for micro in range(group_size):
                batch = next(batches)
                if micro == 0:
                    debug_log.write(progress.step, batch)
                local_counts[0] += _count_tokens(batch)
                local_counts[1] += batch["input_ids"].size(0)
                if batch_transform is not None:
                    batch = batch_transform(batch)
                is_last = micro == group_size - 1
                context = accelerator.no_sync(model) if not is_last else nullcontext()
                with context:
                    loss = model(**batch).loss
                    accelerator.backward(loss / group_size)
                step_loss += loss.detach().float() / group_size
            if before_optimizer_step is not None:
                before_optimizer_step(progress.step)
            max_norm = settings.max_grad_norm if settings.max_grad_norm else float("inf")
            norm = accelerator.clip_grad_norm_(model.parameters(), max_norm)
            if norm is not None:
                grad_norm = norm.detach() if torch.is_tensor(norm) else torch.tensor(float(norm))
            step_lr = max(group["lr"] for group in optimizer.param_groups)  # the rate this update uses
            skipped = step_is_nonfinite(accelerator, step_loss, norm)
            if skipped:
                train_log.write(
                    {
                        "step": progress.step + 1,
                        "nonfinite_loss": float(step_loss),
                        "grad_norm": float(grad_norm),
                        "skipped": settings.skip_nonfinite_batches,
                    }
                )
                optimizer.zero_grad(set_to_none=True)  # the update is dropped either way
                if not settings.skip_nonfinite_batches:
                    bar.close()
                    raise nonfinite_step_error(progress.step + 1, step_loss, norm, settings.output_dir)
                scheduler.step()  # the schedule follows the step count
                progress.skipped_steps += 1
            else:
                optimizer.step()
                if not accelerator.optimizer_step_was_skipped:  # fp16 overflow: keep the schedule aligned
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)

            progress.step += 1
            progress.batches_in_epoch += group_size
            if progress.batches_in_epoch >= batches_per_epoch:
                progress.epoch += 1
                progress.batches_in_epoch = 0
            if not skipped:
                window_loss += step_loss.double()
                window_steps += 1
                run_loss += step_loss.double()
                run_steps += 1
            bar.update(1)

            is_last_step = progress.step >= settings.max_steps
            if progress.step % settings.logging_steps == 0 or is_last_step:
                sync_counts()
                # every process skips the same steps, so window_steps agrees and the reduction matches
                mean_loss = (
                    accelerator.reduce(window_loss / window_steps, reduction="mean").item()
                    if window_steps
                    else float("nan")
                )
                now = time.perf_counter()
                tokens_per_second = (progress.tokens_seen - window_start_tokens) / max(now - window_started, 1e-9)
                record = {
                    "step": progress.step,
                    "epoch": round(progress.epoch + progress.batches_in_epoch / batches_per_epoch, 4),
                    "loss": mean_loss,
                    "lr": step_lr,
                    "grad_norm": float(grad_norm),
                    "tokens_per_second": tokens_per_second,
                    "tokens_seen": progress.tokens_seen,
                    "elapsed_seconds": now - started - paused_seconds,
                }
                if settings.skip_nonfinite_batches:
                    record["skipped_nonfinite_steps"] = progress.skipped_steps
                train_log.write(record)
                accelerator.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=progress.step)
                bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{record['lr']:.2e}")
                window_loss.zero_()
                window_steps = 0
                window_started, window_start_tokens = now, progress.tokens_seen

            pause_started = time.perf_counter()  # evaluation and saving do not count as training time
            if (
                evaluate_fn is not None
                and settings.eval_steps
                and progress.step % settings.eval_steps == 0
                and not is_last_step
            ):
                scores = evaluate_fn()
                record = {"step": progress.step, **{f"eval_{k}": v for k, v in scores.items()}}
                train_log.write(record)
                accelerator.log({f"eval/{k}": v for k, v in scores.items()}, step=progress.step)

            if settings.save_steps and progress.step % settings.save_steps == 0 and settings.output_dir:
                if not weights_are_finite(accelerator, model):  # never replace a good checkpoint by a bad one
                    bar.close()
                    raise nonfinite_weights_error(progress.step, settings.output_dir)
                sync_counts()
                sums = accelerator.reduce(torch.stack([window_loss, run_loss]), reduction="mean").tolist()
                progress.window_loss_sum, progress.run_loss_sum = sums
                progress.window_steps, progress.run_steps = window_steps, run_steps
                save_checkpoint(accelerator, settings.output_dir, progress, settings.save_total_limit, scheduler)
            paused = time.perf_counter() - pause_started
            window_started += paused
            paused_seconds += paused

            if (
                settings.stop_after_steps is not None
                and progress.step >= settings.stop_after_steps
                and not is_last_step
            ):
                stopped_early = True
                break
            if progress.batches_in_epoch == 0:
                next(batches, None)  # let the exhausted loader finish its bookkeeping
                break  # the outer loop starts the next epoch
    bar.close()
    sync_counts()
    if settings.debug_batch_log and settings.output_dir:
        write_weights_digest(accelerator, model, settings.output_dir)
    seconds = time.perf_counter() - started - paused_seconds
    mean_run_loss = accelerator.reduce(run_loss / max(run_steps, 1), reduction="mean").item() if run_steps else None
    return LoopResult(
        progress=progress,
        stopped_early=stopped_early,
        train_loss=mean_run_loss,
        seconds=seconds,
        tokens_per_second=(progress.tokens_seen - session_start_tokens) / max(seconds, 1e-9),
    )
