"""The one set-up path of a training run; pretraining and fine-tuning differ only in the ``Job`` they build.

Every run goes through the same phases, whichever model it trains:

1. Refusals before anything is written: the checkpoint to resume, the output folder and its lock;
   then the task builds its ``Job`` (tokenizer, data, model), refusing what does not fit.
2. Data loaders, optimizer, Accelerate, optimizer steps from the budget, learning-rate schedule.
3. Resume checks, the output folder with ``recipe.yaml``, the training session (``session.py``, the
   loop in ``loop.py``), ``metrics.json``.

How seqlab trains is changed here; what a task trains on is built in ``pretraining.py`` and
``finetuning.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .args import TrainingArgs, check_bounds, check_budget
from .checkpointing import check_checkpoint_fits, resolve_resume
from .lock import OutputDirLock
from .loop import BatchTransform, LoopResult, LoopSettings, StepHook, steps_per_epoch
from .optim import create_optimizer, create_scheduler, warmup_steps_for
from .resume import check_resume_settings
from .runtime import (
    check_tracker,
    create_output_dir,
    make_accelerator,
    prepare_output_dir,
    release_accelerator,
    resolve_mixed_precision,
    seeded_generator,
)
from .session import finish, run_session, save_model_fn
from .test_hooks import with_test_hooks

MAIN_EVAL = ""  # key of the evaluation split among Job.eval_sets (a file name is never empty)


@dataclass
class Prepared:
    """A job's model, optimizer and data loaders as Accelerate prepared them, with the schedule."""

    accelerator: Any
    model: Any
    optimizer: Any
    scheduler: Any
    train_dataloader: Any
    eval_loaders: dict[str, Any]
    max_steps: int
    before_optimizer_step: StepHook | None = None


Scores = dict[str, Any]


@dataclass
class Job:
    """What a task hands the shared set-up: the model, its data and what differs in training and reporting."""

    model: Any
    tokenizer: Any
    train_set: Any
    collator: Callable[[list], dict]
    evaluate: Callable[[Prepared], Scores]  # during training and at the end
    eval_sets: dict[str, Any] = field(default_factory=dict)  # name -> dataset; MAIN_EVAL: the evaluation split
    eval_collator: Callable[[list], dict] | None = None  # unset: collator
    final_evaluate: Callable[[Prepared], Scores] | None = None  # unset: evaluate
    drop_last: bool = False  # pretraining: every step sees the same number of tokens
    batch_transform: BatchTransform | None = None  # on the CPU batch, before the step (masked-LM masking)
    tokens_per_sequence: int | None = None  # turns a max_train_tokens budget into steps
    layer_lr_decay: float | None = None  # discriminative learning rates (ULMFiT)
    schedule: Callable[[Any, int, int], tuple[Any, StepHook | None]] | None = None  # unset: lr_scheduler_type
    wrap_save: Callable[[Callable[[], None] | None, Any], Callable[[], None] | None] | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # metrics.json keys known before training
    report: Callable[[LoopResult], dict[str, Any]] | None = None  # task metrics of the finished loop
    scores_to_metrics: Callable[[Scores], dict[str, Any]] | None = None  # unset: eval_<key>


def run_training(
    args: TrainingArgs,
    validate: Callable[[Any], None],
    build_job: Callable[[Any, Any], Job],
) -> dict[str, Any]:
    """Check ``args`` (``validate``: the task's checks), then train the job ``build_job(accelerator, args)``
    builds; returns the metrics also written to metrics.json."""
    validate(args)
    check_budget(args)
    check_bounds(args)
    check_tracker(args.report_to)
    resolve_mixed_precision(args.mixed_precision)
    accelerator = make_accelerator(args)
    try:
        with OutputDirLock(args.output_dir, accelerator) as lock:
            return _run(accelerator, args, build_job, lock)
    finally:
        release_accelerator(accelerator)


def _run(accelerator, args: TrainingArgs, build_job: Callable[[Any, Any], Job], lock: OutputDirLock) -> dict:
    # 1. Everything that can refuse the run, before anything is written to output_dir.
    checkpoint = resolve_resume(args.resume_from_checkpoint, args.output_dir)
    resuming = bool(args.resume_from_checkpoint)  # also a run killed before its first checkpoint
    output_dir = prepare_output_dir(args.output_dir, args.overwrite_output_dir, resuming)
    lock.acquire()  # an existing folder: refuse at once if another run is using it
    job = build_job(accelerator, args)

    # 2. Data loaders, optimizer and schedule.
    run = prepare(accelerator, args, job)

    # 3. Train.
    if checkpoint is not None:
        check_checkpoint_fits(checkpoint, accelerator.unwrap_model(run.model))
    check_resume_settings(args, checkpoint)
    lock.acquire(create=True)
    create_output_dir(accelerator, output_dir, args.overwrite_output_dir, resuming, args)
    settings = with_test_hooks(LoopSettings.from_recipe(args, run.max_steps, output_dir))
    save = save_model_fn(accelerator, run.model, job.tokenizer, output_dir, args.save_model)
    final_evaluate = job.final_evaluate or job.evaluate
    session = run_session(
        accelerator,
        args,
        model=run.model,
        optimizer=run.optimizer,
        scheduler=run.scheduler,
        train_dataloader=run.train_dataloader,
        settings=settings,
        output_dir=output_dir,
        checkpoint=checkpoint,
        evaluate_fn=lambda: job.evaluate(run),
        final_evaluate_fn=lambda: final_evaluate(run),
        save_model=job.wrap_save(save, accelerator.unwrap_model(run.model).config) if job.wrap_save else save,
        before_optimizer_step=run.before_optimizer_step,
        batch_transform=job.batch_transform,
    )
    metrics = {**job.facts, **run_metrics(run, session.loop), **(job.report(session.loop) if job.report else {})}
    if session.final_scores is None:
        metrics["stopped_at_step"] = session.loop.progress.step
        return metrics
    scores = dict(session.final_scores)
    metrics.update(
        job.scores_to_metrics(scores) if job.scores_to_metrics else {f"eval_{k}": v for k, v in scores.items()}
    )
    finish(accelerator, output_dir, metrics)
    return metrics


def prepare(accelerator, args: TrainingArgs, job: Job) -> Prepared:
    """Data loaders, optimizer, Accelerate, the number of optimizer steps and the learning-rate schedule."""
    from torch.utils.data import DataLoader

    train_dataloader = DataLoader(
        job.train_set,
        batch_size=args.per_device_train_batch_size,
        shuffle=True,
        drop_last=job.drop_last,
        collate_fn=job.collator,
        generator=seeded_generator(args.seed),
        num_workers=args.dataloader_num_workers,
    )
    eval_loaders = {
        name: DataLoader(
            dataset,
            batch_size=eval_batch_size(args),
            shuffle=False,
            collate_fn=job.eval_collator or job.collator,
            num_workers=args.dataloader_num_workers,
        )
        for name, dataset in job.eval_sets.items()
    }
    optimizer = create_optimizer(
        job.model,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        layer_lr_decay=job.layer_lr_decay,
        device=accelerator.device,
    )
    model, optimizer = accelerator.prepare(job.model, optimizer)
    # Masked-LM batches stay on the CPU until masked (the masker works on CPU tensors).
    train_dataloader = accelerator.prepare_data_loader(train_dataloader, device_placement=job.batch_transform is None)
    eval_loaders = {name: accelerator.prepare_data_loader(loader) for name, loader in eval_loaders.items()}
    max_steps = budget_to_steps(args, len(train_dataloader), accelerator.num_processes, job.tokens_per_sequence)
    epoch_steps = steps_per_epoch(len(train_dataloader), args.gradient_accumulation_steps)
    if job.schedule is not None:
        scheduler, before_step = job.schedule(optimizer, max_steps, epoch_steps)
    else:
        warmup = warmup_steps_for(max_steps, args.warmup_steps, args.warmup_ratio)
        scheduler = create_scheduler(
            args.lr_scheduler_type, optimizer.optimizer, num_training_steps=max_steps, num_warmup_steps=warmup
        )
        before_step = None
    return Prepared(accelerator, model, optimizer, scheduler, train_dataloader, eval_loaders, max_steps, before_step)


def eval_batch_size(args: TrainingArgs) -> int:
    return args.per_device_eval_batch_size or args.per_device_train_batch_size


def budget_to_steps(
    args: TrainingArgs, batches_per_epoch: int, num_processes: int, tokens_per_sequence: int | None = None
) -> int:
    """Optimizer steps from max_steps, a token budget (``tokens_per_sequence`` per sequence) or a number of epochs."""
    if args.max_steps:
        return int(args.max_steps)
    if args.max_train_tokens and tokens_per_sequence:
        tokens_per_step = (
            args.per_device_train_batch_size * args.gradient_accumulation_steps * num_processes * tokens_per_sequence
        )
        return max(1, math.ceil(args.max_train_tokens / tokens_per_step))
    epochs = float(args.num_train_epochs or 1.0)
    return max(1, math.ceil(epochs * steps_per_epoch(batches_per_epoch, args.gradient_accumulation_steps)))


def seeded_model(seed: int, build: Callable[[], Any]):
    """``build()`` under ``seed``: the same initial weights on every process; dropout and masking then differ
    between processes."""
    from accelerate.utils import set_seed

    set_seed(seed)
    model = build()
    set_seed(seed, device_specific=True)
    return model


def run_metrics(run: Prepared, loop: LoopResult) -> dict[str, Any]:
    """metrics.json keys of every run: how far it trained, how long, on what."""
    import torch

    accelerator = run.accelerator
    return {
        "step": loop.progress.step,
        "max_steps": run.max_steps,
        "epoch": loop.progress.epoch + loop.progress.batches_in_epoch / max(len(run.train_dataloader), 1),
        "train_loss": loop.train_loss,
        "skipped_nonfinite_steps": loop.progress.skipped_steps,
        "train_seconds": loop.seconds,
        "num_parameters": sum(p.numel() for p in accelerator.unwrap_model(run.model).parameters()),
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "device": str(accelerator.device) if accelerator.device.type != "cuda" else torch.cuda.get_device_name(),
    }
