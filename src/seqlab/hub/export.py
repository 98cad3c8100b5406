"""Export a trained seqlab model folder into exactly the files a Hub repository should hold.

The model is re-saved with `save_pretrained`, so the folder carries safetensors weights, `config.json` with
`auto_map`, and the family's configuration and modeling code (loadable with `trust_remote_code=True` where
seqlab is not installed). Only whitelisted files are kept: never checkpoints, optimizer state, logs or
secrets that may sit beside the weights in a training output folder.
"""

import fnmatch
import json
import shutil
import tempfile
from pathlib import Path

from transformers import AutoConfig, AutoTokenizer

from ..errors import SeqlabUsageError
from ..models import FAMILIES
from ..tokenizer import fit_to_model
from .card import build_model_card

EXPORT_WHITELIST = (
    "README.md",
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*-of-*.safetensors",
    "configuration_*.py",
    "modeling_*.py",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


def _drop_local_loading_flags(path: Path) -> None:
    """Loading from a local folder leaves is_local/local_files_only in tokenizer_config.json: not for the Hub."""
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        for key in ("is_local", "local_files_only"):
            data.pop(key, None)
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def is_whitelisted(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in EXPORT_WHITELIST)


def _model_class(config):
    for config_class, heads in FAMILIES.values():
        if isinstance(config, config_class):
            by_name = {cls.__name__: cls for cls in heads.values()}
            name = (config.architectures or [None])[0]
            if name not in by_name:
                raise SeqlabUsageError(
                    f"config.json names architecture {name!r}, which is not a {config.model_type} head; "
                    f"expected one of {sorted(by_name)}."
                )
            return by_name[name]
    raise SeqlabUsageError(
        f"config.json has model_type {config.model_type!r}, not a seqlab family "
        f"({', '.join(c.model_type for c, _ in FAMILIES.values())})."
    )


def check_model_dir(model_dir: Path) -> None:
    if not model_dir.is_dir():
        raise SeqlabUsageError(f"--model_dir {model_dir} does not exist: pass the output_dir of a finished run.")
    missing = []
    if not (model_dir / "config.json").is_file():
        missing.append("config.json")
    if not any((model_dir / name).is_file() for name in _WEIGHT_FILES):
        missing.append("model.safetensors")
    if not (model_dir / "tokenizer.json").is_file():
        missing.append("tokenizer.json")
    if missing:
        raise SeqlabUsageError(
            f"{model_dir} is not a saved model: {', '.join(missing)} missing. Pass the folder a training run "
            "wrote with save_pretrained (its output_dir), not a checkpoints/step-N folder."
        )


def export_for_hub(
    model_dir: str | Path,
    output_dir: str | Path,
    repo_id: str,
    card_overrides: dict | None = None,
) -> list[str]:
    """Write the upload folder for `model_dir` into `output_dir` (which must not exist or be empty).

    Returns the exported file names. The folder is assembled in a temporary directory and renamed at the
    end, so a failure leaves nothing half-written.
    """
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    check_model_dir(model_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        raise SeqlabUsageError(f"{output_dir} exists and is not empty: choose a new folder for the export.")
    config = AutoConfig.from_pretrained(model_dir)
    model_class = _model_class(config)
    model = model_class.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        model.save_pretrained(staging)
        fit_to_model(tokenizer, config).save_pretrained(staging)
        _drop_local_loading_flags(staging / "tokenizer_config.json")
        card = build_model_card(model_dir, model, repo_id=repo_id, overrides=card_overrides)
        (staging / "README.md").write_text(str(card), encoding="utf-8")
        for path in list(staging.iterdir()):
            if not is_whitelisted(path.name):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        if output_dir.exists():
            output_dir.rmdir()
        staging.rename(output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(p.name for p in output_dir.iterdir())
