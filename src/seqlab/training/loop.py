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
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from accelerate import skip_first_batches

from .checkpointing import TrainingProgress, save_checkpoint
from .debug import DebugBatchLog, write_weights_digest
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


class _RunningStats:
    """What the loop accumulates: loss sums of the log window and of the run, token counts, time.

    The loss sums stay on the device as float64 tensors and the token counts as a device tensor, so
    that accumulating never makes the CPU wait for the GPU; they are read only when a record is
    logged, a checkpoint is saved or the run ends.
    """

    def __init__(self, accelerator, progress: TrainingProgress):
        self.accelerator = accelerator
        self.progress = progress
        device = accelerator.device
        # loss sums carried over from a checkpoint: a resumed run logs what an uninterrupted one would
        self.window_loss = torch.tensor(progress.window_loss_sum, dtype=torch.float64, device=device)
        self.window_steps = progress.window_steps
        self.run_loss = torch.tensor(progress.run_loss_sum, dtype=torch.float64, device=device)
        self.run_steps = progress.run_steps
        # tokens and sequences since the last synchronisation of the global counts
        self.local_counts = torch.zeros(2, dtype=torch.long, device=device)
        self.grad_norm = torch.zeros((), device=device)  # of the latest step, for the log
        self.window_start_tokens = self.session_start_tokens = progress.tokens_seen
        self.started = self.window_started = time.perf_counter()
        self.paused_seconds = 0.0

    def add_micro_batch(self, batch: dict[str, torch.Tensor]) -> None:
        self.local_counts[0] += _count_tokens(batch)
        self.local_counts[1] += batch["input_ids"].size(0)

    def add_grad_norm(self, norm) -> None:
        """Keep the clipped step's gradient norm (``None`` when Accelerate does not report one)."""
        if norm is not None:
            self.grad_norm = norm.detach() if torch.is_tensor(norm) else torch.tensor(float(norm))

    def add_step(self, step_loss: torch.Tensor) -> None:
        """Count an applied step's loss (a skipped step's loss is not finite and is left out)."""
        self.window_loss += step_loss.double()
        self.window_steps += 1
        self.run_loss += step_loss.double()
        self.run_steps += 1

    def sync_counts(self) -> None:
        """Add every process's tokens and sequences since the last call to ``progress``."""
        counts = self.accelerator.reduce(self.local_counts.clone(), reduction="sum").tolist()
        self.progress.tokens_seen += int(counts[0])
        self.progress.examples_seen += int(counts[1])
        self.local_counts.zero_()

    def end_window(self, epoch: float, lr: float) -> dict:
        """The train_log.jsonl record of the log window ending now; the next window starts."""
        self.sync_counts()
        # every process skips the same steps, so window_steps agrees and the reduction matches
        mean_loss = (
            self.accelerator.reduce(self.window_loss / self.window_steps, reduction="mean").item()
            if self.window_steps
            else float("nan")
        )
        now = time.perf_counter()
        window_tokens = self.progress.tokens_seen - self.window_start_tokens
        record = {
            "step": self.progress.step,
            "epoch": epoch,
            "loss": mean_loss,
            "lr": lr,
            "grad_norm": float(self.grad_norm),
            "tokens_per_second": window_tokens / max(now - self.window_started, 1e-9),
            "tokens_seen": self.progress.tokens_seen,
            "elapsed_seconds": now - self.started - self.paused_seconds,
        }
        self.window_loss.zero_()
        self.window_steps = 0
        self.window_started, self.window_start_tokens = now, self.progress.tokens_seen
        return record

    @contextmanager
    def paused(self):
        """Time spent inside (evaluation, checkpoints) counts neither as training time nor throughput."""
        pause_started = time.perf_counter()
        yield
        paused = time.perf_counter() - pause_started
        self.window_started += paused
        self.paused_seconds += paused

    def store_in_progress(self) -> None:
        """Put the counts and loss sums (means over processes) into ``progress`` for a checkpoint."""
        self.sync_counts()
        sums = self.accelerator.reduce(torch.stack([self.window_loss, self.run_loss]), reduction="mean").tolist()
        self.progress.window_loss_sum, self.progress.run_loss_sum = sums
        self.progress.window_steps, self.progress.run_steps = self.window_steps, self.run_steps

    def result(self, stopped_early: bool) -> LoopResult:
        seconds = time.perf_counter() - self.started - self.paused_seconds
        mean_run_loss = (
            self.accelerator.reduce(self.run_loss / max(self.run_steps, 1), reduction="mean").item()
            if self.run_steps
            else None
        )
        return LoopResult(
            progress=self.progress,
            stopped_early=stopped_early,
            train_loss=mean_run_loss,
            seconds=seconds,
            tokens_per_second=(self.progress.tokens_seen - self.session_start_tokens) / max(seconds, 1e-9),
        )


@dataclass
class _Loop:
    """One call of ``train``: what the epoch, step and after-step helpers share."""

    accelerator: object
    model: torch.nn.Module
    optimizer: object
    scheduler: object
    train_dataloader: object
    settings: LoopSettings
    progress: TrainingProgress
    train_log: TrainLog
    evaluate_fn: EvaluateFn | None
    before_optimizer_step: StepHook | None
    batch_transform: BatchTransform | None

    def __post_init__(self) -> None:
        from tqdm.auto import tqdm

        settings, process_index = self.settings, self.accelerator.process_index
        self.batches_per_epoch = len(self.train_dataloader)
        self.debug_log = DebugBatchLog(settings.output_dir, process_index, settings.debug_batch_log)
        self.bar = tqdm(
            total=settings.max_steps,
            initial=self.progress.step,
            desc="training",
            disable=not self.accelerator.is_local_main_process,
            dynamic_ncols=True,
        )
        self.stats = _RunningStats(self.accelerator, self.progress)
        self.stopped_early = False

    def run(self) -> LoopResult:
        self.model.train()
        while self.progress.step < self.settings.max_steps and not self.stopped_early:
            self.run_epoch()
        self.bar.close()
        self.stats.sync_counts()
        if self.settings.debug_batch_log and self.settings.output_dir:
            write_weights_digest(self.accelerator, self.model, self.settings.output_dir)
        return self.stats.result(self.stopped_early)

    def run_epoch(self) -> None:
        """Steps through the rest of the current epoch (or until the run ends or stops early)."""
        progress = self.progress
        self.train_dataloader.set_epoch(progress.epoch)
        loader = self.train_dataloader
        if progress.batches_in_epoch:
            loader = skip_first_batches(self.train_dataloader, progress.batches_in_epoch)
        batches: Iterator[dict[str, torch.Tensor]] = iter(loader)
        while progress.step < self.settings.max_steps:
            # the last step of an epoch takes the micro-batches that are left
            group_size = min(
                self.settings.gradient_accumulation_steps, self.batches_per_epoch - progress.batches_in_epoch
            )
            if group_size <= 0:
                return
            lr = self.optimizer_step(batches, group_size)
            self.after_step(lr)
            if self.stopped_early:
                return
            if progress.batches_in_epoch == 0:
                next(batches, None)  # let the exhausted loader finish its bookkeeping
                return  # run() starts the next epoch

    def optimizer_step(self, batches: Iterator[dict[str, torch.Tensor]], group_size: int) -> float:
        """Accumulate ``group_size`` micro-batches, clip, then apply the update or drop a non-finite one.

        Returns the learning rate the update used (read before the schedule steps).
        """
        step_loss = self.accumulate(batches, group_size)
        if self.before_optimizer_step is not None:
            self.before_optimizer_step(self.progress.step)
        max_norm = self.settings.max_grad_norm if self.settings.max_grad_norm else float("inf")
        norm = self.accelerator.clip_grad_norm_(self.model.parameters(), max_norm)
        self.stats.add_grad_norm(norm)
        lr = max(group["lr"] for group in self.optimizer.param_groups)
        skipped = step_is_nonfinite(self.accelerator, step_loss, norm)
        if skipped:
            self.drop_update(step_loss, norm)
        else:
            self.optimizer.step()
            if not self.accelerator.optimizer_step_was_skipped:  # fp16 overflow: keep the schedule aligned
                self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)

        # a dropped step counts and moves the data position like any other (only its loss is left out)
        progress = self.progress
        progress.step += 1
        progress.batches_in_epoch += group_size
        if progress.batches_in_epoch >= self.batches_per_epoch:
            progress.epoch += 1
            progress.batches_in_epoch = 0
        if not skipped:
            self.stats.add_step(step_loss)
        self.bar.update(1)
        return lr

    def accumulate(self, batches: Iterator[dict[str, torch.Tensor]], group_size: int) -> torch.Tensor:
        """Forward and backward ``group_size`` micro-batches; returns their mean loss (on the device)."""
        step_loss = torch.zeros((), dtype=torch.float32, device=self.accelerator.device)
        for micro in range(group_size):
            batch = next(batches)
            if micro == 0:
                self.debug_log.write(self.progress.step, batch)
            self.stats.add_micro_batch(batch)
            if self.batch_transform is not None:
                batch = self.batch_transform(batch)
            # gradients are synchronised across processes only on the last micro-batch of the step
            is_last = micro == group_size - 1
            context = self.accelerator.no_sync(self.model) if not is_last else nullcontext()
            with context:
                loss = self.model(**batch).loss
                self.accelerator.backward(loss / group_size)
            step_loss += loss.detach().float() / group_size
        return step_loss

    def drop_update(self, step_loss: torch.Tensor, norm) -> None:
        """A non-finite step: log it, drop the update, then stop the run or (if allowed) skip on."""
        settings, progress = self.settings, self.progress
        self.train_log.write(
            {
                "step": progress.step + 1,
                "nonfinite_loss": float(step_loss),
                "grad_norm": float(self.stats.grad_norm),
                "skipped": settings.skip_nonfinite_batches,
            }
        )
        self.optimizer.zero_grad(set_to_none=True)  # the update is dropped either way
        if not settings.skip_nonfinite_batches:
            self.bar.close()
            raise nonfinite_step_error(progress.step + 1, step_loss, norm, settings.output_dir)
        self.scheduler.step()  # the schedule follows the step count
        progress.skipped_steps += 1

    def after_step(self, lr: float) -> None:
        """The periodic actions after a step: log, evaluate, checkpoint, stop early."""
        settings, step = self.settings, self.progress.step
        is_last_step = step >= settings.max_steps
        if step % settings.logging_steps == 0 or is_last_step:
            self.log(lr)
        with self.stats.paused():  # evaluation and saving do not count as training time
            # the final evaluation, after the last step, is run_session's
            if (
                self.evaluate_fn is not None
                and settings.eval_steps
                and step % settings.eval_steps == 0
                and not is_last_step
            ):
                self.evaluate()
            if settings.save_steps and step % settings.save_steps == 0 and settings.output_dir:
                self.save_checkpoint()
        if settings.stop_after_steps is not None and step >= settings.stop_after_steps and not is_last_step:
            self.stopped_early = True

    def log(self, lr: float) -> None:
        progress = self.progress
        epoch = round(progress.epoch + progress.batches_in_epoch / self.batches_per_epoch, 4)
        record = self.stats.end_window(epoch, lr)
        if self.settings.skip_nonfinite_batches:
            record["skipped_nonfinite_steps"] = progress.skipped_steps
        self.train_log.write(record)
        self.accelerator.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=progress.step)
        self.bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")

    def evaluate(self) -> None:
        scores = self.evaluate_fn()
        self.train_log.write({"step": self.progress.step, **{f"eval_{k}": v for k, v in scores.items()}})
        self.accelerator.log({f"eval/{k}": v for k, v in scores.items()}, step=self.progress.step)

    def save_checkpoint(self) -> None:
        if not weights_are_finite(self.accelerator, self.model):  # never replace a good checkpoint by a bad one
            self.bar.close()
            raise nonfinite_weights_error(self.progress.step, self.settings.output_dir)
        self.stats.store_in_progress()
        settings = self.settings
        save_checkpoint(self.accelerator, settings.output_dir, self.progress, settings.save_total_limit, self.scheduler)


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
    return _Loop(
        accelerator,
        model,
        optimizer,
        scheduler,
        train_dataloader,
        settings,
        progress,
        train_log,
        evaluate_fn,
        before_optimizer_step,
        batch_transform,
    ).run()
