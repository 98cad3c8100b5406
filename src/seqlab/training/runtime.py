"""What pretraining and fine-tuning set up the same way: the Accelerator, model configs, output folder,
data loaders and the end of a run.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import SeqlabUsageError
from ..tokenizer import fit_to_model
from .args import TrainingArgs
from .checkpointing import drop_tied_copies, write_text_atomic
from .lock import holds_files
from .recipe import read_yaml, recipe_to_yaml, resolve_path

RECIPE_FILE = "recipe.yaml"


def resolve_mixed_precision(value: str) -> str:
    """``auto``: bf16 on a GPU that supports it, otherwise no mixed precision (CPU runs stay float32)."""
    if value == "fp16" and not torch.cuda.is_available():
        raise SeqlabUsageError("mixed_precision fp16 needs a CUDA GPU; use bf16 or no on CPU")
    if value != "auto":
        return value
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def check_tracker(report_to: str) -> None:
    if report_to == "none":
        return
    from accelerate.utils import is_tensorboard_available, is_wandb_available

    available = {"tensorboard": is_tensorboard_available, "wandb": is_wandb_available}[report_to]()
    if not available:
        raise SeqlabUsageError(
            f"report_to {report_to!r} needs the {report_to} package; pip install 'seqlab[{report_to}]' "
            "or pass --report_to none"
        )


def make_accelerator(args: TrainingArgs):
    """An Accelerator whose data order depends only on (seed, epoch) and whose trackers log to output_dir."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, TorchDynamoPlugin

    kwargs: dict[str, Any] = {}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        # Launched as several processes on a machine without GPUs (`accelerate launch --multi_gpu` or
        # torchrun): without cpu=True Accelerate would make each process a world of its own.
        kwargs["cpu"] = True
    if args.torch_compile:
        kwargs["dynamo_plugin"] = TorchDynamoPlugin(backend="inductor")
    accelerator = Accelerator(
        mixed_precision=resolve_mixed_precision(args.mixed_precision),
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(
            project_dir=str(args.output_dir), logging_dir=str(Path(args.output_dir) / "trackers")
        ),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        **kwargs,
    )
    accelerator.register_save_state_pre_hook(drop_tied_copies)  # checkpoints store tied weights once, quietly
    return accelerator


def release_accelerator(accelerator) -> None:
    """Forget the Accelerator's global state so a later in-process run may pick other settings
    (mixed precision, for one). The process group of a launched job stays."""
    from accelerate.state import AcceleratorState, GradientState

    accelerator.end_training()
    accelerator.free_memory()
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def family_name_of_config(config: Any) -> str:
    """The seqlab family name (``recurrent`` / ``decoder`` / ``encoder``) of a config; a usage error for any other
    model type. (``seqlab.models.family_of_config`` gives the ``Family`` record, or None.)"""
    from ..models import family_of_model_type

    family = family_of_model_type(config.model_type)
    if family is None:
        raise not_a_seqlab_model_type(config.model_type)
    return family.name


def not_a_seqlab_model_type(model_type: Any) -> SeqlabUsageError:
    from ..models import FAMILIES

    return SeqlabUsageError(
        f"model_type {model_type!r} is not a seqlab family; seqlab trains "
        f"{', '.join(family.model_type for family in FAMILIES.values())}"
    )


def check_config_overrides(config_class, overrides: Mapping[str, Any], source: str) -> None:
    import inspect

    valid = set(inspect.signature(config_class.__init__).parameters) - {"self", "kwargs"}
    valid |= set(config_class().to_dict())
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise SeqlabUsageError(
            f"unknown {config_class.__name__} key(s) {', '.join(map(repr, unknown))} in {source}; "
            f"valid keys: {', '.join(sorted(k for k in valid if not k.startswith('_')))}"
        )


def build_model_config(
    model_config: str | os.PathLike,
    overrides: Mapping[str, Any],
    tokenizer,
    args: TrainingArgs | None,
    **extra: Any,
):
    """A family config from a model YAML (``family:`` + config kwargs) or a model folder (config.json),
    with ``overrides`` applied and vocabulary size and special token ids taken from ``tokenizer``.

    Returns ``(family, config)``.
    """
    from ..models import FAMILIES
    from ..tokenizer import token_config_kwargs

    path = resolve_path(model_config, args)
    family, kwargs = _config_kwargs(path, model_config)
    config_class = FAMILIES[family].config_class
    check_config_overrides(config_class, overrides, "the recipe's `model` overrides")
    kwargs.update(overrides)
    kwargs.update(token_config_kwargs(tokenizer, include_mask=FAMILIES[family].uses_mask_token))
    if "vocab_size" in overrides:  # a deliberately larger (padded) vocabulary; checked against the tokenizer
        kwargs["vocab_size"] = overrides["vocab_size"]
    kwargs.update(extra)
    return family, _instantiate(config_class, kwargs, path)


def model_positions(
    model_config: str | os.PathLike, overrides: Mapping[str, Any] | None = None, args: TrainingArgs | None = None
) -> int:
    """``max_position_embeddings`` of the model a model YAML or folder (plus ``overrides``) describes: the
    ``model_max_length`` a tokenizer meant for that model should truncate at."""
    from ..models import FAMILIES

    path = resolve_path(model_config, args)
    family, kwargs = _config_kwargs(path, model_config)
    kwargs.update(overrides or {})
    return int(_instantiate(FAMILIES[family].config_class, kwargs, path).max_position_embeddings)


def _config_kwargs(path: Path, given: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """(family, config kwargs) of a model folder or model YAML, its keys checked against the family."""
    from ..models import FAMILIES

    if path.is_dir():
        base = load_folder_config(path, "model_config")
        family = family_name_of_config(base)
        kwargs = base.to_dict()
        for key in ("model_type", "transformers_version", "architectures", "auto_map", "dtype", "torch_dtype"):
            kwargs.pop(key, None)
    elif path.is_file():
        spec = read_yaml(path)
        family = spec.pop("family", None)
        if family not in FAMILIES:
            raise SeqlabUsageError(
                f"model YAML {str(path)!r} must name its `family`, one of {', '.join(FAMILIES)}; got {family!r}"
            )
        kwargs = spec
    else:
        raise SeqlabUsageError(
            f"model_config {str(given)!r} is neither a model YAML nor a model folder; "
            "pass e.g. configs/models/decoder-tiny.yaml"
        )
    check_config_overrides(FAMILIES[family].config_class, kwargs, f"model config {path}")
    return family, kwargs


def _instantiate(config_class, kwargs: dict[str, Any], path: Path):
    try:
        return config_class(**kwargs)
    except (TypeError, ValueError) as error:
        raise SeqlabUsageError(f"invalid model config from {path}: {error}") from None


def load_folder_config(path: Path, key: str):
    """``AutoConfig`` of a model folder, or a usage error naming the folder and what is wrong with it."""
    from transformers import AutoConfig

    config_file = path / "config.json"
    if not config_file.is_file():
        raise SeqlabUsageError(
            f"{key} {str(path)!r} is not a model folder (no config.json); pass the output_dir of a seqlab run"
            + (", or 'scratch' with --model_config" if key == "model_name_or_path" else " or a model YAML")
        )
    _check_model_type(config_file)
    try:
        return AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError, KeyError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SeqlabUsageError(
            f"{key} {str(path)!r}: config.json cannot be read as a seqlab model config ({reason}); restore the "
            "file from the run that wrote it"
        ) from None


def _check_model_type(config_file: Path) -> None:
    """Refuse a model_type seqlab does not define before AutoConfig sees it: for an unknown type beside an
    ``auto_map`` (every seqlab folder has one) transformers would blame "custom code" instead."""
    from ..models import family_of_model_type

    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # unreadable: AutoConfig's own error names the problem
    if not isinstance(data, dict):
        return
    model_type = data.get("model_type")
    if family_of_model_type(model_type) is None:
        raise SeqlabUsageError(f"{config_file}: {not_a_seqlab_model_type(model_type)}")


def check_weights_file(path: Path, key: str) -> Path:
    """The folder's (first) safetensors weights file, refused when missing, truncated or corrupted."""
    return weight_files(path, key)[0]


def weight_files(path: Path, key: str) -> list[Path]:
    """The folder's safetensors weights (one file, or the shards its index lists), refused when missing,
    truncated or corrupted (header checked).

    Only safetensors are accepted: loading them runs no code, unlike a pickled ``pytorch_model.bin``.
    """
    from safetensors import SafetensorError, safe_open

    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise SeqlabUsageError(f"{key} {str(path)!r}: {index.name} is corrupted ({error})") from None
        check_index_shards(shards, path / index.name, key)
        files = [path / shard for shard in shards]
    else:
        files = [path / "model.safetensors"]
    for file in files:
        if not file.is_file():
            hint = (
                " (a pickled pytorch_model.bin is not loaded: re-save the model with safetensors)"
                if (path / "pytorch_model.bin").exists()
                else ""
            )
            raise SeqlabUsageError(f"{key} {str(path)!r} has no {file.name}{hint}; pass a folder saved by seqlab")
        try:
            with safe_open(str(file), framework="pt") as handle:
                handle.keys()
        except (SafetensorError, OSError) as error:
            raise SeqlabUsageError(
                f"{key} {str(path)!r}: {file.name} is truncated or corrupted ({error}); copy it again from the "
                "run that wrote it"
            ) from None
    return files


def check_weights_fit_config(path: Path, model_class, config, key: str, what: str) -> None:
    """Refuse weights whose shapes differ from what ``config`` builds (a position table or layer of another size),
    naming the tensor and both shapes; transformers would raise a "look at the above report!" error whose report
    the quiet loading hides. The model is built on the meta device (no memory) and only safetensors headers are read.
    """
    import torch
    from safetensors import safe_open

    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in model_class(config).state_dict().items()}
    for file in weight_files(path, key):
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():
                shape = tuple(handle.get_slice(name).get_shape())
                if name in expected and expected[name] != shape:
                    raise SeqlabUsageError(
                        f"the weights in {str(path)!r} do not load into a {what} (size mismatch: "
                        f"{file.name} holds {name} of shape {list(shape)}, config.json implies {list(expected[name])}); "
                        "restore the config.json saved with these weights"
                    )


def check_index_shards(shards: list, index: Path, key: str) -> None:
    """The shard names of a ``model.safetensors.index.json``: at least one, each a safetensors file beside it."""
    if not shards:
        raise SeqlabUsageError(
            f"{key} {str(index.parent)!r}: {index.name} lists no weight files (its weight_map is empty); restore the "
            "folder from the run that wrote it, or delete the index if the folder holds a single model.safetensors"
        )
    for shard in shards:
        if not isinstance(shard, str) or not shard.endswith(".safetensors") or Path(shard).name != shard:
            raise SeqlabUsageError(
                f"{key} {str(index.parent)!r}: {index.name} points at {shard!r}, not a safetensors file beside it; "
                "seqlab loads only safetensors weights (a pickled .bin could run code): re-save the model with "
                "save_pretrained(safe_serialization=True)"
            )


def prepare_output_dir(output_dir: str | None, overwrite: bool, resuming: bool) -> Path:
    """Check the output folder can be used (nothing is written yet)."""
    if not output_dir:
        raise SeqlabUsageError("recipe key 'output_dir' is not set; pass --output_dir FOLDER")
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise SeqlabUsageError(f"output_dir {str(path)!r} is a file; pass a folder")
    if path.is_dir() and holds_files(path) and not (overwrite or resuming):
        raise SeqlabUsageError(
            f"output_dir {str(path)!r} already holds a run; pass --resume_from_checkpoint latest to continue it, "
            "--overwrite_output_dir true to replace it, or another --output_dir"
        )
    check_writable(path)
    return path


def check_writable(path: Path) -> None:
    """Refuse an output folder that cannot be written (read-only file system, no permission) before any data
    is loaded: the folder itself, or the nearest existing folder above it that it would be created in.

    A probe file is created and removed at once: permission bits alone miss read-only mounts and root."""
    import tempfile

    existing = path
    while not existing.is_dir() and existing != existing.parent:
        existing = existing.parent
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".seqlab-write-probe-"):
            pass
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else type(error).__name__
        where = "" if existing == path else f" (it would be created in {str(existing)!r})"
        raise SeqlabUsageError(
            f"output_dir {str(path)!r} cannot be written{where}: {reason}; pass an --output_dir on a writable disk"
        ) from None


def create_output_dir(accelerator, path: Path, overwrite: bool, resuming: bool, args: TrainingArgs) -> None:
    """Create (or empty, with overwrite) the output folder and store the resolved recipe in it (recipe.yaml)."""
    if accelerator.is_main_process:
        if overwrite and not resuming and path.is_dir():
            _empty_folder(path)
        path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path / RECIPE_FILE, recipe_to_yaml(args))
    accelerator.wait_for_everyone()


def _empty_folder(path: Path) -> None:
    """Delete everything in ``path`` but the lock file this run holds (deleting it would let another run take
    a second lock on a new file while this one runs)."""
    from .lock import LOCK_FILE

    for child in path.iterdir():
        if child.name == LOCK_FILE:
            continue
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def seeded_generator(seed: int) -> torch.Generator:
    """A private generator for DataLoader worker seeds: iterator creation must not touch the global
    random state that dropout and masking draw from."""
    return torch.Generator().manual_seed(seed)


def save_final_model(accelerator, model, tokenizer, output_dir: Path) -> None:
    """``save_pretrained`` the unwrapped model (full state dict, also under FSDP) and the tokenizer.

    Everything is written to a staging folder first and each file then replaces its old version
    with one atomic rename, so a kill never leaves a truncated ``model.safetensors`` behind.
    """
    state_dict = accelerator.get_state_dict(model)
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        staging = output_dir / f".tmp-final-{uuid.uuid4().hex[:8]}"
        try:
            unwrapped.save_pretrained(str(staging), state_dict=state_dict, safe_serialization=True)
            fit_to_model(tokenizer, unwrapped.config).save_pretrained(str(staging))
            files = sorted(p for p in staging.rglob("*") if p.is_file())
            for file in files:
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
            for file in files:
                target = output_dir / file.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(file, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    accelerator.wait_for_everyone()
