"""Checkpoints that survive a kill at any moment, and the training progress stored with them.

``accelerator.save_state`` writes the model (safetensors), optimizer, data sampler and the random
number generators of every process into ``checkpoints/.tmp-step-N``; the main process adds the
learning-rate schedule and ``progress.json`` (step, epoch, position in the epoch, tokens seen),
flushes every file to disk and renames the folder to ``checkpoints/step-N``. A rename is atomic, so
a folder named ``step-N`` is always complete and a kill mid-save leaves the previous checkpoint
usable. Folders leave the ``step-N`` namespace the same way (renamed to ``.trash-...`` before they
are deleted), so a kill while pruning old checkpoints never leaves a half-deleted ``step-N`` either.

Loading unpickles nothing: weights come from safetensors and every other file is read with
``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import SeqlabUsageError
from .lock import holds_files

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
PROGRESS_FILE = "progress.json"
MODEL_FILE = "model.safetensors"  # written by Accelerate's save_state with safe_serialization
OPTIMIZER_FILE = "optimizer.bin"
SCHEDULER_FILE = "lr_scheduler.bin"
RNG_FILE_PATTERN = "random_states_*.pkl"  # torch.save format despite the name; loaded with weights_only
LEGACY_SCHEDULER_FILE = "custom_checkpoint_0.pkl"  # checkpoints written before the scheduler had its own file
_STEP_FOLDER = re.compile(r"^step-(\d+)$")
_LEFTOVER_PREFIXES = (".tmp-step-", ".trash-", ".tmp-final-")  # .tmp-final-: see runtime.save_final_model


@dataclass
class TrainingProgress:
    """Where training stands: enough to continue exactly after a restart."""

    step: int = 0  # optimizer steps done (skipped non-finite steps included)
    epoch: int = 0  # current pass over the training data
    batches_in_epoch: int = 0  # micro-batches of this epoch already consumed, on each process
    tokens_seen: int = 0  # non-padding tokens trained on, all processes together
    examples_seen: int = 0  # sequences trained on, all processes together
    skipped_steps: int = 0  # steps whose loss or gradient was not finite (skip_nonfinite_batches)
    # running sums of the step losses (averaged over processes), so that a resumed run logs the same
    # windowed loss and reports the same whole-run train_loss as an uninterrupted one
    window_loss_sum: float = 0.0
    window_steps: int = 0
    run_loss_sum: float = 0.0
    run_steps: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_file(cls, path: Path) -> TrainingProgress:
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
    """The checkpoint folder ``--resume_from_checkpoint latest|PATH`` names, checked, or a usage error."""
    if resume_from == "latest":
        if output_dir is None:
            raise SeqlabUsageError("--resume_from_checkpoint latest needs --output_dir (the run to continue)")
        found = list_checkpoints(output_dir)
        if not found:
            raise SeqlabUsageError(
                f"--resume_from_checkpoint latest: no checkpoint in {checkpoints_dir(output_dir)}; run without "
                "--resume_from_checkpoint to start fresh, or point --output_dir at the run to continue"
            )
        return check_checkpoint(found[-1])
    path = Path(resume_from).expanduser()
    if not path.is_dir():
        raise SeqlabUsageError(
            f"--resume_from_checkpoint {resume_from!r}: no such folder; pass 'latest' or a "
            f"{CHECKPOINTS_DIR}/step-N folder of an earlier run"
        )
    if not (path / PROGRESS_FILE).is_file():
        inner = list_checkpoints(path)
        if inner:  # the run's folder was given: take its latest checkpoint
            return check_checkpoint(inner[-1])
        raise SeqlabUsageError(
            f"--resume_from_checkpoint {resume_from!r} holds no checkpoint (no {PROGRESS_FILE}); pass 'latest' "
            f"or a {CHECKPOINTS_DIR}/step-N folder written by seqlab"
        )
    return check_checkpoint(path)


def resolve_resume(resume_from: str | None, output_dir: str | Path | None) -> Path | None:
    """The checkpoint to continue from, or None to start at step 0.

    ``latest`` on a run that was killed before its first checkpoint (its folder is empty or holds
    the recipe, but no checkpoint and no final metrics) starts over: there is nothing to continue and
    nothing to lose, so a job that always passes ``--resume_from_checkpoint latest`` can simply be
    restarted. A finished run without checkpoints, or a folder that holds no seqlab run, is refused.
    """
    from .reporting import METRICS_FILE
    from .runtime import RECIPE_FILE

    if not resume_from:
        return None
    if resume_from == "latest" and output_dir is not None and not list_checkpoints(output_dir):
        run = Path(output_dir)
        started = (run / RECIPE_FILE).is_file() or (run.is_dir() and not holds_files(run))
        if started and not (run / METRICS_FILE).exists():
            logger.warning("%s holds no checkpoint yet (killed before the first save): starting at step 0", run)
            return None
    return find_checkpoint(resume_from, output_dir)


def is_fsdp_checkpoint(checkpoint: Path) -> bool:
    """Accelerate writes FSDP model state as ``pytorch_model_fsdp*`` (a file or a sharded folder)."""
    return any(checkpoint.glob("pytorch_model_fsdp*"))


def _is_torch_archive(path: Path) -> bool:
    """``torch.save`` writes a zip archive: a truncated file has no central directory at its end."""
    return path.is_file() and zipfile.is_zipfile(path)


def check_checkpoint(checkpoint: Path) -> Path:
    """Refuse a checkpoint folder with a missing, truncated or corrupted file, naming the file.

    Cheap: reads the safetensors header, the ends of the archives and the tiny random-state files;
    the optimizer state itself is read once, by the resume. FSDP checkpoints (sharded model and
    optimizer folders, read by Accelerate's FSDP loader) are checked for their progress and random
    states only.
    """
    from safetensors import SafetensorError, safe_open

    def refuse(name: str, problem: str) -> SeqlabUsageError:
        return SeqlabUsageError(
            f"checkpoint {str(checkpoint)!r}: {name} {problem}; resume from an earlier checkpoint by passing its "
            f"folder to --resume_from_checkpoint (the run's {CHECKPOINTS_DIR}/ folder lists them)"
        )

    try:
        TrainingProgress.from_file(checkpoint / PROGRESS_FILE)
    except (OSError, ValueError, TypeError) as error:
        raise refuse(PROGRESS_FILE, f"cannot be read ({type(error).__name__}: {error})") from None
    model_file = checkpoint / MODEL_FILE
    if not is_fsdp_checkpoint(checkpoint):
        if not model_file.is_file():
            raise refuse(MODEL_FILE, "is missing (seqlab checkpoints hold safetensors weights)")
        try:
            with safe_open(str(model_file), framework="pt") as handle:
                handle.keys()
        except (SafetensorError, OSError) as error:
            raise refuse(MODEL_FILE, f"is truncated or corrupted ({error})") from None
        if not _is_torch_archive(checkpoint / OPTIMIZER_FILE):
            raise refuse(OPTIMIZER_FILE, "is missing, truncated or not a torch archive")
    # the legacy name only when the checkpoint really has it: a missing file is reported by its current name
    scheduler = (
        LEGACY_SCHEDULER_FILE
        if (checkpoint / LEGACY_SCHEDULER_FILE).exists() and not (checkpoint / SCHEDULER_FILE).exists()
        else SCHEDULER_FILE
    )
    if not _is_torch_archive(checkpoint / scheduler):
        raise refuse(scheduler, "is missing, truncated or not a torch archive")
    rng_files = sorted(checkpoint.glob(RNG_FILE_PATTERN))
    if not rng_files:
        raise refuse("random_states_0.pkl", "is missing")
    # Every pickled file is unpickled safely here, before the run folder is touched, so that a refused one (a
    # payload that would run code) changes nothing; mmap keeps the optimizer's tensors on disk: only its pickle
    # (the part a payload lives in) is read now.
    pickled = [checkpoint / scheduler, *rng_files]
    if (checkpoint / OPTIMIZER_FILE).is_file():
        pickled.insert(0, checkpoint / OPTIMIZER_FILE)
    for file in pickled:
        try:
            safe_load(file, mmap=True)
        except Exception as error:  # noqa: BLE001 - any failure means the file cannot be trusted
            raise refuse(
                file.name, f"cannot be loaded safely ({type(error).__name__}: {_unpickling_reason(error)})"
            ) from None
    return checkpoint


def _unpickling_reason(error: BaseException) -> str:
    """What torch's weights_only loader refused (the global a payload would call), else the first line."""
    for line in str(error).splitlines():  # torch words it "Unsupported global: GLOBAL x" or "unsupported GLOBAL x ..."
        if "unsupported global" in line.lower():
            return line.strip().removeprefix("WeightsUnpickler error: ").split(". Please use")[0].rstrip(".")
    return first_line(error)


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error message (torch's and Accelerate's span many lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def check_checkpoint_fits(checkpoint: Path, model) -> None:
    """Refuse a checkpoint whose weights do not fit ``model`` (another family, size or vocabulary),
    before the run folder is touched. Reads the safetensors header only."""
    from safetensors import safe_open

    if not (checkpoint / MODEL_FILE).is_file():  # FSDP layout: Accelerate's loader checks the shapes
        return
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    with safe_open(str(checkpoint / MODEL_FILE), framework="pt") as handle:
        shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    for name in sorted(set(shapes) & set(expected)):
        if shapes[name] != expected[name]:
            raise SeqlabUsageError(
                f"checkpoint {str(checkpoint)!r} does not fit this model: its {name} has shape {list(shapes[name])}, "
                f"the model built from the recipe has {list(expected[name])}; resume with the recipe (model config, "
                "tokenizer) that wrote the checkpoint"
            )
    # tied copies are left out of checkpoints on purpose (drop_tied_copies); anything else missing would make
    # Accelerate's strict load fail only after the run folder was written
    extra = sorted(set(shapes) - set(expected))
    missing = sorted(set(expected) - set(shapes) - _tied_targets(model))
    if not extra and not missing:
        return
    what = (
        f"its {extra[0]} has no place in the model built from the recipe"
        if extra
        else f"it has no {missing[0]}, which the model built from the recipe needs"
    )
    body = f"{getattr(model, 'base_model_prefix', 'model')}."
    if not any(name.startswith(body) for name in extra + missing):  # only the heads differ
        hint = (
            "it comes from a run with another head (a language model's checkpoint cannot continue a fine-tuning "
            "run, nor the reverse); to fine-tune a pretrained model pass its folder as --model_name_or_path"
        )
    else:
        hint = "resume with the recipe (model config, tokenizer) that wrote the checkpoint"
    raise SeqlabUsageError(f"checkpoint {str(checkpoint)!r} does not fit this model: {what}; {hint}")


def safe_load(path: Path, mmap: bool = False):
    """``torch.load`` that only rebuilds tensors and plain containers (never runs pickled code).

    numpy arrays and dtypes are allowed too, as in Accelerate's own loader: the random states hold
    numpy's generator state (an array of numbers). ``mmap=True`` leaves the tensor data on disk.
    """
    import codecs

    import numpy as np
    import torch

    numpy_core = getattr(np, "_core", None) or np.core
    allowed = [numpy_core.multiarray._reconstruct, np.ndarray, np.dtype, codecs.encode]
    if hasattr(np, "dtypes"):  # numpy >= 1.25 pickles dtypes by their class
        allowed.append(np.dtypes.UInt32DType)
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def load_progress(checkpoint: Path) -> TrainingProgress:
    return TrainingProgress.from_file(checkpoint / PROGRESS_FILE)


def load_checkpoint(accelerator, checkpoint: Path, scheduler) -> TrainingProgress:
    """Restore model, optimizer, random generators (Accelerate) and the schedule; nothing is unpickled."""
    try:
        accelerator.load_state(str(checkpoint), load_kwargs={"weights_only": True})
        scheduler_file = checkpoint / SCHEDULER_FILE
        if not scheduler_file.exists():
            scheduler_file = checkpoint / LEGACY_SCHEDULER_FILE
        scheduler.load_state_dict(safe_load(scheduler_file))
    except SeqlabUsageError:
        raise
    except Exception as error:  # noqa: BLE001 - name the checkpoint whatever went wrong
        raise SeqlabUsageError(
            f"checkpoint {str(checkpoint)!r} could not be restored ({type(error).__name__}: {first_line(error)}); it "
            "may come from another model, optimizer setting or number of processes, or be damaged: resume with the "
            "recipe that wrote it, or from an earlier checkpoint"
        ) from None
    return load_progress(checkpoint)


def remove_leftovers(output_dir: str | Path) -> None:
    """Delete the staging and trash folders a killed run left behind (main process only)."""
    for folder in (Path(output_dir), checkpoints_dir(output_dir)):
        if not folder.is_dir():
            continue
        for child in folder.iterdir():
            if child.is_dir() and child.name.startswith(_LEFTOVER_PREFIXES):
                shutil.rmtree(child, ignore_errors=True)


def _discard(path: Path) -> None:
    """Take ``path`` out of the ``step-N`` namespace atomically, then delete it."""
    trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex[:8]}")
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def _sync_folder(folder: Path) -> None:
    """Flush every file of ``folder`` and the folder itself to disk before it is published by a rename."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _sync_directory(folder)


def _sync_directory(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small text file so that readers see the old or the new content, never a part."""
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(staging, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, path)


def drop_tied_copies(models, weights, output_dir) -> None:
    """``Accelerator.register_save_state_pre_hook`` hook: leave tied weights out of a checkpoint the way
    ``save_pretrained`` does.

    safetensors cannot store two names for one tensor, so a tied LM head (``lm_head.weight``, the
    embedding matrix) must go. Without this hook Accelerate drops it itself and warns on every save
    ("Removed shared tensor"); here only the names the model declares tied in ``_tied_weights_keys``
    go, and only while they really share storage, so an unexpected alias still warns. Loading re-ties
    them (safetensors' ``load_model`` fills a missing alias from the tensor it shares).
    """
    from collections import defaultdict

    from accelerate.utils import id_tensor_storage

    for model, state_dict in zip(models, weights):
        declared = _tied_targets(model)
        aliases = defaultdict(list)
        for name, tensor in state_dict.items():
            if hasattr(tensor, "untyped_storage"):
                aliases[id_tensor_storage(tensor)].append(name)
        for names in aliases.values():
            tied = [name for name in names if name in declared]
            if len(names) > 1 and len(tied) < len(names):  # the source (an undeclared name) stays
                for name in tied:
                    del state_dict[name]


def _tied_targets(model) -> set[str]:
    """State-dict names of the weights that transformers re-ties on load (the keys of every module's
    ``_tied_weights_keys`` dict), with the prefix of any wrapper (DDP's ``module.``, compile's ``_orig_mod.``)."""
    targets = set()
    for prefix, module in model.named_modules():
        for target in getattr(module, "_tied_weights_keys", None) or {}:
            targets.add(f"{prefix}.{target}" if prefix else target)
    return targets


def _is_write_failure(error: BaseException) -> bool:
    """A full disk or unwritable folder, as the writers of a checkpoint report it: ``OSError`` (ENOSPC, EROFS,
    ...), torch's zip writer (``RuntimeError: [enforce fail at inline_container.cc...]`` / ``PytorchStreamWriter
    failed writing``) or safetensors (``SafetensorError: ... IoError``)."""
    if isinstance(error, OSError):
        return True
    text = str(error)
    return any(sign in text for sign in ("inline_container", "PytorchStreamWriter", "IoError", "No space left"))


def checkpoint_write_error(error: BaseException, final: Path, output_dir: str | Path) -> SeqlabUsageError:
    """One line for a checkpoint that could not be written; the checkpoints already saved are untouched."""
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if isinstance(error, OSError) and error.errno is not None:
        reason = f"{os.strerror(error.errno)} (errno {error.errno})"
    saved = list_checkpoints(output_dir)
    kept = f"the previous checkpoint {saved[-1]} is intact" if saved else "no earlier checkpoint exists"
    return SeqlabUsageError(
        f"could not write checkpoint {final.name} in {final.parent} ({reason}); {kept}: free disk space (or make the "
        "folder writable) and continue with --resume_from_checkpoint latest"
    )


def save_checkpoint(
    accelerator, output_dir: str | Path, progress: TrainingProgress, total_limit: int | None, scheduler=None
) -> Path:
    """Save the full training state atomically into ``checkpoints/step-N`` (all processes call this)."""
    import torch

    folder = checkpoints_dir(output_dir)
    final = folder / f"step-{progress.step}"
    staging = folder / f".tmp-step-{progress.step}"
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        if staging.exists():  # left over by a run killed while saving
            shutil.rmtree(staging)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(staging), safe_serialization=True)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if scheduler is not None:
                torch.save(scheduler.state_dict(), staging / SCHEDULER_FILE)
            (staging / PROGRESS_FILE).write_text(progress.to_json(), encoding="utf-8")
            _sync_folder(staging)
    except Exception as error:  # noqa: BLE001 - torch, safetensors and the OS each report a failed write their own way
        if not _is_write_failure(error):
            raise
        shutil.rmtree(staging, ignore_errors=True)  # only the unpublished staging folder; step-N folders stay
        raise checkpoint_write_error(error, final, output_dir) from None
    if accelerator.is_main_process:
        if final.exists():  # the same step saved again after resuming from an earlier checkpoint
            _discard(final)
        staging.rename(final)
        _sync_directory(folder)
        if total_limit is not None and total_limit > 0:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                _discard(old)
    accelerator.wait_for_everyone()
    return final
