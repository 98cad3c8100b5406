"""Export a trained seqlab model folder into exactly the files a Hub repository should hold.

The model is re-saved with `save_pretrained`, so the folder carries safetensors weights, `config.json` with
`auto_map`, and the family's configuration and modeling code (loadable with `trust_remote_code=True` where
seqlab is not installed). Only whitelisted files are kept: never checkpoints, optimizer state, logs or
secrets that may sit beside the weights in a training output folder.

Privacy: the JSON files keep only the keys their class defines (a token planted in config.json or
tokenizer_config.json is dropped, with one warning naming it), the card names data by key (`DataNames`), and
a last check refuses the export if any file still holds a local path the run's files name.
"""

import fnmatch
import inspect
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from transformers import AutoTokenizer, GenerationConfig, PreTrainedConfig, PreTrainedTokenizerFast

from ..errors import SeqlabUsageError
from ..files import publish_staged
from ..models import FAMILIES, family_of_config
from ..tokenizer import check_tokenizer_json_files, fit_to_model
from ..training.runtime import check_weights_file, check_weights_fit_config, load_folder_config
from .card import build_model_card, read_run_files

logger = logging.getLogger(__name__)

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
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

# config.json keys every transformers model may carry besides those of its config class
_STANDARD_CONFIG_KEYS = frozenset(
    {"auto_map", "architectures", "model_type", "transformers_version", "dtype", "torch_dtype", "id2label", "label2id"}
)
# tokenizer_config.json keys that transformers' tokenizer classes read or write themselves
# (PreTrainedTokenizerBase.__init__ and save_pretrained; TokenizersBackend adds the padding and truncation
# settings of a tokenizer.json that has them); the special tokens come on top
_TOKENIZER_KEYS = frozenset({
    "model_max_length", "padding_side", "truncation_side", "model_input_names", "clean_up_tokenization_spaces",
    "split_special_tokens", "chat_template", "response_template", "chat_control_tokens", "tokenizer_class",
    "auto_map", "processor_class", "added_tokens_decoder", "extra_special_tokens", "additional_special_tokens",
    "backend", "add_prefix_space", "add_bos_token", "add_eos_token", "verbose",
    "max_length", "stride", "truncation_strategy", "pad_token_type_id", "pad_to_multiple_of",
})  # fmt: skip
# transformers' own bookkeeping of loading from a local folder, not the user's: dropped without a warning
_LOADING_FLAGS = frozenset({"is_local", "local_files_only"})


def config_keys(config) -> frozenset[str]:
    """Keys config.json may publish: the family config's parameters and transformers' standard config keys."""
    family = type(config)
    parameters = set(inspect.signature(family.__init__).parameters) - {"self", "kwargs"}
    return frozenset(parameters | set(family().to_dict()) | set(PreTrainedConfig().to_dict()) | _STANDARD_CONFIG_KEYS)


def _special_token_keys() -> frozenset[str]:
    # the class attribute: an instance's list grows with every planted "*_token" key it was loaded with
    extra = {"additional_special_tokens", "extra_special_tokens"}
    return frozenset(PreTrainedTokenizerFast.SPECIAL_TOKENS_ATTRIBUTES) | extra


def _file_keys(config) -> dict[str, frozenset[str]]:
    """Exported JSON file -> the keys it may hold."""
    return {
        "config.json": config_keys(config),
        "generation_config.json": frozenset(GenerationConfig().to_dict()) | {"_from_model_config"},
        "tokenizer_config.json": _TOKENIZER_KEYS | _special_token_keys(),
        "special_tokens_map.json": _special_token_keys(),
    }


def _read_json_object(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SeqlabUsageError(f"{path} is not valid JSON ({error}): restore it from the run or delete it.") from None
    if not isinstance(data, dict):
        raise SeqlabUsageError(f"{path} holds a JSON {type(data).__name__}, not an object: restore it from the run.")
    return data


def _keep_known_keys(folder: Path, allowed: dict[str, frozenset[str]]) -> dict[str, list[str]]:
    """Rewrite each JSON file of `allowed` in `folder` with only its allowed keys; {file: keys dropped}."""
    dropped = {}
    for name, keys in allowed.items():
        path = folder / name
        if not path.is_file():
            continue
        data = _read_json_object(path)
        if set(data) - keys:
            kept = {key: value for key, value in data.items() if key in keys}
            path.write_text(json.dumps(kept, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        unknown = [key for key in data if key not in keys and key not in _LOADING_FLAGS]
        if unknown:
            dropped[name] = unknown
    return dropped


def _load_clean_tokenizer(model_dir: Path, scratch: Path, config):
    """The tokenizer, loaded from a copy of its files that holds only the keys a tokenizer defines.

    Cleaning before loading matters: transformers reads any unknown string key ending in "_token" (an
    "hf_token", say) as a special token, and the saved tokenizer would publish it again.
    """
    for name in _TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, scratch / name)
    tokenizer_files = {name: keys for name, keys in _file_keys(config).items() if name in _TOKENIZER_FILES}
    dropped = _keep_known_keys(scratch, tokenizer_files)
    return AutoTokenizer.from_pretrained(scratch), dropped


def _warn_dropped(dropped: dict[str, list[str]], config) -> None:
    if dropped:
        listed = "; ".join(f"{name}: {', '.join(keys)}" for name, keys in sorted(dropped.items()))
        logger.warning(
            "export: left out keys that the %s config and tokenizer do not define (not published): %s",
            config.model_type, listed,
        )  # fmt: skip


def is_whitelisted(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in EXPORT_WHITELIST)


def _model_class(config):
    family = family_of_config(config)
    if family is not None:
        by_name = {cls.__name__: cls for cls in family.auto_classes.values()}
        name = (config.architectures or [None])[0]
        if name not in by_name:
            raise SeqlabUsageError(
                f"config.json names architecture {name!r}, which is not a {config.model_type} head; "
                f"expected one of {sorted(by_name)}."
            )
        return by_name[name]
    raise SeqlabUsageError(
        f"config.json has model_type {config.model_type!r}, not a seqlab family "
        f"({', '.join(family.model_type for family in FAMILIES.values())})."
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
    check_weights_file(model_dir, "--model_dir")  # an index with no shards, or shards that are pickles
    check_tokenizer_json_files(model_dir)  # names a damaged file of the run folder, before anything is staged


def _path_like(value: str) -> bool:
    """A string that names a place on this machine rather than a key, a Hub id ("owner/name") or a URL."""
    if "://" in value or not re.search(r"[\\/]", value):
        return False
    absolute = value.startswith(("/", "~", "\\", "./", "../")) or re.match(r"[A-Za-z]:[\\/]", value)
    return bool(absolute) or value.count("/") > 1 or os.path.exists(value)


def _strings(tree) -> list[str]:
    if isinstance(tree, dict):
        return [s for key, value in tree.items() for s in (*_strings(key), *_strings(value))]
    if isinstance(tree, (list, tuple)):
        return [s for item in tree for s in _strings(item)]
    return [tree] if isinstance(tree, str) else []


def local_paths(model_dir: Path) -> set[str]:
    """The local paths a run folder names: its own, and every path-like string of its recipe and metrics."""
    metrics, recipe = read_run_files(model_dir)
    return paths_named_by([recipe, metrics]) | {str(model_dir.resolve()), str(model_dir.absolute())}


def paths_named_by(tree) -> set[str]:
    """Every path-like string in a JSON-like `tree`, as written and made absolute (never "/" alone)."""
    paths = set()
    for value in filter(_path_like, _strings(tree)):
        paths |= {value, os.path.abspath(os.path.expanduser(value))}
    return {p for p in paths if len(p) > 1}


def _path_pattern(local: str) -> re.Pattern:
    """`local` as written or JSON-escaped (backslashes), as a whole path or a folder of one: an output_dir of
    "/data" matches "/data" and "/data/x" but not the "/datasets" of a Hub link."""
    spellings = "|".join(re.escape(s) for s in dict.fromkeys([local, json.dumps(local)[1:-1]]))
    return re.compile(rf"(?<![\w.~-])(?:{spellings})(?![\w.~-])")


def find_local_path(folder: Path, paths: set[str]) -> tuple[str, str] | None:
    """(file relative to `folder`, local path) of the first file under `folder` that holds one of `paths`.

    Weights are skipped: save_pretrained writes their header from tensor names and a fixed format tag alone.
    """
    patterns = {local: _path_pattern(local) for local in sorted(paths)}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".safetensors":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for local, pattern in patterns.items():
            if pattern.search(text):
                return path.relative_to(folder).as_posix(), local
    return None


def _refuse_local_paths(folder: Path, paths: set[str]) -> None:
    """Fail closed: no exported file may hold a local path, whatever wrote it there."""
    found = find_local_path(folder, paths)
    if found:
        raise SeqlabUsageError(
            f"export refused: {found[0]} would publish the local path {found[1]!r} (named by the run's recipe "
            "or metrics); nothing was written. Remove it from your model's labels or config, or report it."
        )


def copy_clean_model_files(
    model_dir: Path, target: Path, extra_files: dict[str, frozenset[str]] | None = None
) -> dict[str, list[str]]:
    """Copy a model folder's loadable files into the new folder `target`, the export's way; {file: keys dropped}.

    Copied: the whitelisted files but the card (weights, config, modeling code, tokenizer) and the JSON files
    of `extra_files` (name -> the keys it may hold). config.json, generation_config.json and the tokenizer
    files keep only the keys the export keeps (`_file_keys`); the files are copied as they are otherwise.
    """
    config = load_folder_config(model_dir, "model folder")
    extra_files = extra_files or {}
    target.mkdir(parents=True)
    for path in sorted(model_dir.iterdir()):
        if path.is_file() and path.name != "README.md" and (is_whitelisted(path.name) or path.name in extra_files):
            shutil.copy2(path, target / path.name)
    return _keep_known_keys(target, {**_file_keys(config), **extra_files})


def export_for_hub(
    model_dir: str | Path,
    output_dir: str | Path,
    repo_id: str,
    card_overrides: dict | None = None,
    publish_file_names: bool = False,
) -> list[str]:
    """Write the upload folder for `model_dir` into `output_dir` (which must not exist or be empty).

    Returns the exported file names. The folder is assembled in a temporary directory and renamed at the
    end, so a failure leaves nothing half-written. No file names a local path: the card calls local data files
    "local file N" (their base names with `publish_file_names`), and JSON keys no seqlab or transformers class
    defines are left out with one warning.
    """
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    check_model_dir(model_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        raise SeqlabUsageError(f"{output_dir} exists and is not empty: choose a new folder for the export.")
    config = load_folder_config(model_dir, "--model_dir")  # one line for an unknown model_type or broken JSON
    model_class = _model_class(config)
    check_weights_fit_config(model_dir, model_class, config, "--model_dir", model_class.__name__)
    model = model_class.from_pretrained(model_dir)

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    with publish_staged(staging, output_dir):
        (staging / ".tokenizer").mkdir()
        tokenizer, dropped = _load_clean_tokenizer(model_dir, staging / ".tokenizer", config)
        model.save_pretrained(staging)
        fit_to_model(tokenizer, config).save_pretrained(staging)
        for name, keys in _keep_known_keys(staging, _file_keys(config)).items():
            dropped[name] = list(dict.fromkeys([*dropped.get(name, []), *keys]))
        card = build_model_card(model_dir, model, repo_id=repo_id, overrides=card_overrides,
                                publish_file_names=publish_file_names)  # fmt: skip
        (staging / "README.md").write_text(str(card), encoding="utf-8")
        for path in list(staging.iterdir()):
            if not is_whitelisted(path.name):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        _refuse_local_paths(staging, local_paths(model_dir))
        _warn_dropped(dropped, config)
    return sorted(p.name for p in output_dir.iterdir())
