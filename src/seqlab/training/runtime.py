"""What pretraining and fine-tuning set up the same way: the Accelerator, model configs, output folder,
data loaders and the end of a run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import SeqlabUsageError
from .recipe import read_yaml, recipe_to_yaml, resolve_path

OBJECTIVES = {"recurrent": "causal", "decoder": "causal", "encoder": "masked"}
LM_AUTO_NAMES = {"causal": "AutoModelForCausalLM", "masked": "AutoModelForMaskedLM"}
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


def make_accelerator(recipe: Mapping[str, Any]):
    """An Accelerator whose data order depends only on (seed, epoch) and whose trackers log to output_dir."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, TorchDynamoPlugin

    kwargs: dict[str, Any] = {}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        # Launched as several processes on a machine without GPUs (`accelerate launch --multi_gpu` or
        # torchrun): without cpu=True Accelerate would make each process a world of its own.
        kwargs["cpu"] = True
    if recipe.get("torch_compile"):
        kwargs["dynamo_plugin"] = TorchDynamoPlugin(backend="inductor")
    return Accelerator(
        mixed_precision=resolve_mixed_precision(recipe["mixed_precision"]),
        log_with=None if recipe["report_to"] == "none" else recipe["report_to"],
        project_config=ProjectConfiguration(
            project_dir=str(recipe["output_dir"]), logging_dir=str(Path(recipe["output_dir"]) / "trackers")
        ),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=recipe["seed"]),
        **kwargs,
    )


def release_accelerator(accelerator) -> None:
    """Forget the Accelerator's global state so a later in-process run may pick other settings
    (mixed precision, for one). The process group of a launched job stays."""
    from accelerate.state import AcceleratorState, GradientState

    accelerator.end_training()
    accelerator.free_memory()
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def family_of_config(config: Any) -> str:
    """``recurrent`` / ``decoder`` / ``encoder`` from a config's ``model_type``."""
    from ..models import FAMILIES

    for family, (config_class, _) in FAMILIES.items():
        if config.model_type == config_class.model_type:
            return family
    raise SeqlabUsageError(
        f"model_type {config.model_type!r} is not a seqlab family; seqlab trains "
        f"{', '.join(config_class.model_type for config_class, _ in FAMILIES.values())}"
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
    recipe: Mapping[str, Any],
    **extra: Any,
):
    """A family config from a model YAML (``family:`` + config kwargs) or a model folder (config.json),
    with ``overrides`` applied and vocabulary size and special token ids taken from ``tokenizer``.

    Returns ``(family, config)``.
    """
    from transformers import AutoConfig

    from ..models import FAMILIES
    from ..tokenizer import token_config_kwargs

    path = resolve_path(model_config, recipe)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise SeqlabUsageError(f"model folder {str(path)!r} has no config.json; pass a model YAML or a saved model folder")
        base = AutoConfig.from_pretrained(str(path))
        family = family_of_config(base)
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
            f"model_config {str(model_config)!r} is neither a model YAML nor a model folder; "
            "pass e.g. configs/models/decoder-tiny.yaml"
        )
    config_class = FAMILIES[family][0]
    check_config_overrides(config_class, kwargs, f"model config {path}")
    check_config_overrides(config_class, overrides, "the recipe's `model` overrides")
    kwargs.update(overrides)
    kwargs.update(token_config_kwargs(tokenizer, include_mask=family == "encoder"))
    if "vocab_size" in overrides:  # a deliberately larger (padded) vocabulary; checked against the tokenizer
        kwargs["vocab_size"] = overrides["vocab_size"]
    kwargs.update(extra)
    try:
        config = config_class(**kwargs)
    except (TypeError, ValueError) as error:
        raise SeqlabUsageError(f"invalid model config from {path}: {error}") from None
    return family, config


def prepare_output_dir(output_dir: str | None, overwrite: bool, resuming: bool) -> Path:
    """Check the output folder can be used (nothing is written yet)."""
    if not output_dir:
        raise SeqlabUsageError("recipe key 'output_dir' is not set; pass --output_dir FOLDER")
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise SeqlabUsageError(f"output_dir {str(path)!r} is a file; pass a folder")
    if path.is_dir() and any(path.iterdir()) and not (overwrite or resuming):
        raise SeqlabUsageError(
            f"output_dir {str(path)!r} already holds a run; pass --resume_from_checkpoint latest to continue it, "
            "--overwrite_output_dir true to replace it, or another --output_dir"
        )
    return path


def create_output_dir(accelerator, path: Path, overwrite: bool, resuming: bool, recipe: Mapping[str, Any]) -> None:
    """Create (or empty, with overwrite) the output folder and store the resolved recipe in it."""
    if accelerator.is_main_process:
        if overwrite and not resuming and path.is_dir():
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / RECIPE_FILE).write_text(recipe_to_yaml(recipe), encoding="utf-8")
    accelerator.wait_for_everyone()


def seeded_generator(seed: int) -> torch.Generator:
    """A private generator for DataLoader worker seeds: iterator creation must not touch the global
    random state that dropout and masking draw from."""
    return torch.Generator().manual_seed(seed)


def save_final_model(accelerator, model, tokenizer, output_dir: Path) -> None:
    """``save_pretrained`` the unwrapped model (full state dict, also under FSDP) and the tokenizer."""
    state_dict = accelerator.get_state_dict(model)
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        unwrapped.save_pretrained(str(output_dir), state_dict=state_dict, safe_serialization=True)
        tokenizer.save_pretrained(str(output_dir))
    accelerator.wait_for_everyone()
