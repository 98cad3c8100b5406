"""Checkpoints that survive a kill at any moment, and the training progress stored with them.

``accelerator.save_state`` writes the model, optimizer, scheduler, gradient scaler, data sampler and
the random number generators of every process into ``checkpoints/.tmp-step-N``; the main process
adds ``progress.json`` (step, epoch, position in the epoch, tokens seen) and renames the folder to
``checkpoints/step-N``. A rename is atomic, so a folder named ``step-N`` is always complete and a
kill mid-save leaves the previous checkpoint usable. Only the last ``save_total_limit`` are kept.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import SeqlabUsageError

CHECKPOINTS_DIR = "checkpoints"
PROGRESS_FILE = "progress.json"
_STEP_FOLDER = re.compile(r"^step-(\d+)$")


@dataclass
class TrainingProgress:
    """Where training stands: enough to continue exactly after a restart."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # current pass over the training data
    batches_in_epoch: int = 0  # micro-batches of this epoch already consumed, on each process
    tokens_seen: int = 0  # non-padding tokens trained on, all processes together
    examples_seen: int = 0  # sequences trained on, all processes together

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_file(cls, path: Path) -> "TrainingProgress":
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def checkpoints_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / CHECKPOINTS_DIR


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    folder = checkpoints_dir(output_dir)
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _STEP_FOLDER.match(child.name)
        if match and child.is_dir() and (child / PROGRESS_FILE).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def find_checkpoint(resume_from: str, output_dir: str | Path | None) -> Path:
    """The checkpoint folder ``--resume_from_checkpoint latest|PATH`` names, or a usage error."""
    if resume_from == "latest":
        if output_dir is None:
            raise SeqlabUsageError("--resume_from_checkpoint latest needs --output_dir (the run to continue)")
        found = list_checkpoints(output_dir)
        if not found:
            raise SeqlabUsageError(
                f"--resume_from_checkpoint latest: no checkpoint in {checkpoints_dir(output_dir)}; run without "
                "--resume_from_checkpoint to start fresh, or point --output_dir at the run to continue"
            )
        return found[-1]
    path = Path(resume_from).expanduser()
    if not path.is_dir():
        raise SeqlabUsageError(
            f"--resume_from_checkpoint {resume_from!r}: no such folder; pass 'latest' or a "
            f"{CHECKPOINTS_DIR}/step-N folder of an earlier run"
        )
    if not (path / PROGRESS_FILE).is_file():
        inner = list_checkpoints(path)
        if inner:  # the run's folder was given: take its latest checkpoint
            return inner[-1]
        raise SeqlabUsageError(
            f"--resume_from_checkpoint {resume_from!r} holds no checkpoint (no {PROGRESS_FILE}); pass 'latest' "
            f"or a {CHECKPOINTS_DIR}/step-N folder written by seqlab"
        )
    return path


def load_progress(checkpoint: Path) -> TrainingProgress:
    return TrainingProgress.from_file(checkpoint / PROGRESS_FILE)


def save_checkpoint(accelerator, output_dir: str | Path, progress: TrainingProgress, total_limit: int | None) -> Path:
    """Save the full training state atomically into ``checkpoints/step-N`` (all processes call this)."""
    folder = checkpoints_dir(output_dir)
    final = folder / f"step-{progress.step}"
    staging = folder / f".tmp-step-{progress.step}"
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        if staging.exists():  # left over by a run killed while saving
            shutil.rmtree(staging)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (staging / PROGRESS_FILE).write_text(progress.to_json(), encoding="utf-8")
        if final.exists():  # the same step saved again after a resume
            shutil.rmtree(final)
        staging.rename(final)
        if total_limit is not None and total_limit > 0:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final
