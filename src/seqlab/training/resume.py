"""A resumed run continues the run its checkpoint belongs to, under that run's settings.

A checkpoint's optimizer state, schedule and data position were made by the recipe recorded in
its run's ``recipe.yaml``: continuing it with another learning rate, batch size or budget would
train something that neither recipe describes, while ``recipe.yaml`` (and a model card built from
it) claimed the new value. So a resume refuses changed settings, except the few that only decide
how often the run logs, evaluates or saves and where it reports: they cannot change the weights,
are applied, and ``recipe.yaml`` records them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import SeqlabUsageError
from .args import TrainingArgs

logger = logging.getLogger(__name__)

# Bookkeeping that cannot change the trained weights: applied on resume.
SAFE_TO_CHANGE = (
    "logging_steps",
    "eval_steps",
    "save_steps",
    "save_total_limit",
    "save_model",
    "report_to",
    "run_name",
    "dataloader_num_workers",
)
# How this invocation was started, not what the run is.
NOT_SETTINGS = ("resume_from_checkpoint", "overwrite_output_dir", "output_dir", "config")


def recorded_recipe(checkpoint: Path) -> tuple[Path, dict[str, Any] | None]:
    """``(path, recipe)`` of the run folder ``checkpoints/step-N`` belongs to (recipe None when unreadable)."""
    from .runtime import RECIPE_FILE

    path = checkpoint.parent.parent / RECIPE_FILE
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return path, None
    return path, recipe if isinstance(recipe, dict) else None


def changed_settings(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (recorded, current)}`` for every key both recipes set to different values."""
    return {
        key: (recorded[key], current[key])
        for key in sorted(set(recorded) & set(current))
        if key not in NOT_SETTINGS and recorded[key] != current[key]
    }


def check_resume_settings(args: TrainingArgs, checkpoint: Path | None) -> None:
    """Refuse a resume whose settings differ from the recorded run's, naming them; warn about safe changes."""
    if checkpoint is None:
        return
    path, recorded = recorded_recipe(checkpoint)
    if recorded is None:  # a checkpoint copied without its run folder: nothing to compare with
        logger.warning("%s is missing or unreadable: resuming without checking that the settings are unchanged", path)
        return
    changed = changed_settings(recorded, args.to_dict())
    unsafe = {key: values for key, values in changed.items() if key not in SAFE_TO_CHANGE}
    if unsafe:
        listed = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in unsafe.items())
        raise SeqlabUsageError(
            f"--resume_from_checkpoint: {path} records other settings than this run's ({listed}); a resumed run "
            "continues its checkpoint's optimizer, schedule and data position, so it keeps its settings (only "
            f"{', '.join(SAFE_TO_CHANGE)} may change): drop those overrides, or start a new run in another --output_dir"
        )
    if changed:
        logger.warning(
            "resuming with changed bookkeeping settings (recorded in recipe.yaml): %s",
            ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changed.items()),
        )
