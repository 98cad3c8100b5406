"""One training session around the loop: resume, trackers, training, final evaluation and saving."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TrainingInterrupted
from .args import TrainingArgs
from .checkpointing import TrainingProgress, list_checkpoints, load_checkpoint, load_progress, remove_leftovers
from .health import check_finished_run
from .loop import LoopResult, LoopSettings, train
from .reporting import LOSS_CURVE, TrainLog, plot_loss_curve, write_metrics
from .runtime import save_final_model


@dataclass
class SessionResult:
    loop: LoopResult
    final_scores: dict[str, Any] | None  # None when the run stopped early


def _tracker_config(args: TrainingArgs) -> dict[str, Any]:
    """Trackers take flat scalars."""
    flat: dict[str, Any] = {}
    for key, value in args.to_dict().items():
        if isinstance(value, dict):
            for inner, inner_value in value.items():
                flat[f"{key}.{inner}"] = (
                    inner_value if isinstance(inner_value, (int, float, str, bool)) else str(inner_value)
                )
        elif isinstance(value, (int, float, str, bool)):
            flat[key] = value
        elif value is not None:
            flat[key] = str(value)
    return flat


def run_session(
    accelerator,
    args: TrainingArgs,
    *,
    model,
    optimizer,
    scheduler,
    train_dataloader,
    settings: LoopSettings,
    output_dir: Path,
    checkpoint: Path | None,
    evaluate_fn: Callable[[], dict[str, Any]] | None,
    final_evaluate_fn: Callable[[], dict[str, Any]] | None,
    save_model: Callable[[], None] | None,
    before_optimizer_step: Callable[[int], None] | None = None,
    batch_transform: Callable[[dict], dict] | None = None,
) -> SessionResult:
    """Train (continuing ``checkpoint`` when given), then evaluate and save unless stopped early.

    The schedule is checkpointed by seqlab itself rather than registered with Accelerate, whose
    registered objects are unpickled on load.
    """
    progress = TrainingProgress()
    if checkpoint is not None:
        progress = load_checkpoint(accelerator, checkpoint, scheduler)
    if accelerator.is_main_process:
        remove_leftovers(output_dir)  # staging folders of a run killed while saving
    # Records after the step training continues from belong to a killed attempt (all of them when
    # a run killed before its first checkpoint starts over).
    train_log = TrainLog(output_dir, accelerator.is_main_process, resume_step=progress.step)
    if args.report_to != "none":
        accelerator.init_trackers(args.run_name or output_dir.name, config=_tracker_config(args))

    try:
        loop = train(
            accelerator,
            model,
            optimizer,
            scheduler,
            train_dataloader,
            settings,
            progress,
            train_log,
            evaluate_fn=evaluate_fn,
            before_optimizer_step=before_optimizer_step,
            batch_transform=batch_transform,
        )
        if loop.stopped_early:
            return SessionResult(loop=loop, final_scores=None)
        scores = final_evaluate_fn() if final_evaluate_fn is not None else {}
        eval_record = {
            "step": loop.progress.step,
            **{f"eval_{k}": v for k, v in scores.items() if not isinstance(v, dict)},
        }
        if len(eval_record) > 1:
            train_log.write(eval_record)
            accelerator.log(
                {f"eval/{k[5:]}": v for k, v in eval_record.items() if k != "step"}, step=loop.progress.step
            )
        check_finished_run(loop.progress.step, loop.progress.skipped_steps, scores, settings.output_dir)
        if save_model is not None:
            save_model()  # file by file, each replaced atomically: an interrupted save leaves no torn file
        if accelerator.is_main_process:
            plot_loss_curve(train_log.records(), output_dir / LOSS_CURVE, title=output_dir.name)
    except KeyboardInterrupt:  # Ctrl-C: one line saying where it stopped instead of a traceback (errors.run_cli)
        _close_progress_bars()
        raise interrupted_at(progress.step, settings.max_steps, output_dir) from None
    return SessionResult(loop=loop, final_scores=scores)


def _close_progress_bars() -> None:
    """End the open progress bar's line, so that the interruption message starts a line of its own."""
    import tqdm

    for bar in list(getattr(tqdm.tqdm, "_instances", ())):
        bar.close()


def interrupted_at(step: int, max_steps: int, output_dir: Path) -> TrainingInterrupted:
    """Ctrl-C during training: where it stopped and what ``--resume_from_checkpoint latest`` will redo.

    ``progress.step`` counts finished steps; a checkpoint being written is a ``.tmp-step-N`` folder that
    never became ``step-N``, so the newest ``step-N`` is what a resume continues from.
    """
    saved = list_checkpoints(output_dir)
    if saved:
        last = load_progress(saved[-1]).step
        redo = f"steps {last + 1}-{step} will be redone" if step > last else "no finished step is lost"
        where = f"the last checkpoint is {saved[-1]} (step {last}), so {redo}"
    else:
        where = "no checkpoint was saved yet, so training starts over from step 0"
    return TrainingInterrupted(f"training stopped at step {step} of {max_steps} in {output_dir}; {where}")


def finish(accelerator, output_dir: Path, metrics: Mapping[str, Any]) -> None:
    """Write metrics.json (main process) and wait for every process."""
    if accelerator.is_main_process:
        write_metrics(output_dir, metrics)
    accelerator.wait_for_everyone()


def save_model_fn(accelerator, model, tokenizer, output_dir: Path, enabled: bool) -> Callable[[], None] | None:
    if not enabled:
        return None
    return lambda: save_final_model(accelerator, model, tokenizer, output_dir)
