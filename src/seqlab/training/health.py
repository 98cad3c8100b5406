"""Numerical health of a run: a non-finite loss or gradient never reaches the weights or a checkpoint.

Each optimizer step checks, before the update, that its loss and (without an fp16 gradient scaler,
which handles overflow itself) its gradient norm are finite on every process. A bad step stops the
run with ``NonFiniteLossError``, naming the step and the last good checkpoint, which is left as it
was; with ``skip_nonfinite_batches`` the step's update is dropped instead and counted. As a last
guard, a checkpoint is only written from finite weights.
"""

from __future__ import annotations

import math

import torch

from ..errors import SeqlabUsageError
from .checkpointing import list_checkpoints


class NonFiniteLossError(SeqlabUsageError):
    """Training met a loss, gradient or weight that is not a finite number and stopped before applying it."""


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's part of a sharded (FSDP2 DTensor) tensor; a plain tensor as it is."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def step_is_nonfinite(accelerator, step_loss: torch.Tensor, grad_norm) -> bool:
    """True when this step's loss (or gradient norm) is inf or NaN on any process (one synchronisation)."""
    bad = ~torch.isfinite(step_loss.detach().float())
    if grad_norm is not None and accelerator.scaler is None:
        norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        norm = norm if torch.is_tensor(norm) else torch.tensor(float(norm))
        bad = bad | ~torch.isfinite(norm.detach().float().to(bad.device))
    flag = bad.to(torch.float32).reshape(())
    if accelerator.num_processes > 1:
        flag = accelerator.reduce(flag, reduction="sum")
    return bool(flag.item() > 0)


def weights_are_finite(accelerator, model) -> bool:
    """True when every parameter of ``model`` is finite on every process."""
    checks = [torch.isfinite(_local(p.detach())).all() for p in model.parameters()]
    flag = (~torch.stack(checks).all()).to(torch.float32) if checks else torch.zeros((), device=accelerator.device)
    if accelerator.num_processes > 1:
        flag = accelerator.reduce(flag.to(accelerator.device), reduction="sum")
    return bool(flag.item() == 0)


def _number(value) -> str:
    number = float(value)
    return repr(number) if not math.isfinite(number) else f"{number:.6g}"


def last_good_checkpoint(output_dir: str | None) -> str:
    found = list_checkpoints(output_dir) if output_dir else []
    return f"the last good checkpoint, {found[-1]}, is untouched" if found else "no checkpoint had been written yet"


def nonfinite_step_error(step: int, loss, grad_norm, output_dir: str | None) -> NonFiniteLossError:
    norm = f", gradient norm {_number(grad_norm)}" if grad_norm is not None else ""
    return NonFiniteLossError(
        f"training stopped at step {step}: the loss is not a finite number (loss {_number(loss)}{norm}, on at "
        f"least one process); the step was not applied and {last_good_checkpoint(output_dir)}. Lower "
        "learning_rate, keep max_grad_norm > 0 or check the data, then continue with --resume_from_checkpoint "
        "latest; or set skip_nonfinite_batches true to skip such steps"
    )


def nonfinite_weights_error(step: int, output_dir: str | None) -> NonFiniteLossError:
    return NonFiniteLossError(
        f"training stopped at step {step}: the weights hold values that are not finite numbers, so no checkpoint "
        f"was written and {last_good_checkpoint(output_dir)}. Lower learning_rate or keep max_grad_norm > 0, "
        "then continue with --resume_from_checkpoint latest"
    )


# skip_nonfinite_batches is for a rare bad batch; beyond this share of the steps (and more than
# MAX_SKIPPED_ALWAYS_ALLOWED steps) the run failed, whatever its last loss says
MAX_SKIPPED_FRACTION = 0.10
MAX_SKIPPED_ALWAYS_ALLOWED = 2


def check_finished_run(step: int, skipped_steps: int, scores: dict, output_dir: str | None) -> None:
    """Refuse to report a finished run as a result when it mostly skipped its updates or its final evaluation
    is not finite (nothing is saved then: no model, no metrics.json)."""
    if skipped_steps > max(MAX_SKIPPED_ALWAYS_ALLOWED, MAX_SKIPPED_FRACTION * step):
        raise NonFiniteLossError(
            f"training skipped {skipped_steps} of {step} steps because their loss or gradient was not finite (more "
            f"than {MAX_SKIPPED_FRACTION:.0%} allowed with skip_nonfinite_batches), so the model is not a result and "
            f"was not saved; {last_good_checkpoint(output_dir)}. Lower learning_rate, keep max_grad_norm > 0 or "
            "check the data, then train again"
        )
    bad = {
        key: value
        for key, value in scores.items()
        if key == "loss" and isinstance(value, float) and not math.isfinite(value)
    }
    if bad:
        raise NonFiniteLossError(
            f"the final evaluation loss is {_number(bad['loss'])} after {step} steps ({skipped_steps} skipped as "
            "not finite), so the model is not a result and was not saved; "
            f"{last_good_checkpoint(output_dir)}. Lower learning_rate, keep max_grad_norm > 0 or check the data, "
            "then train again"
        )
