"""Recipes: a YAML file of training settings, overridable from the command line.

A recipe is a flat mapping of known keys (plus a few nested mappings such as ``model``). Every key
has a declared kind and default, so that ``--learning_rate 3e-4`` arrives as a float and a typo such
as ``--learnig_rate`` is refused with the list of valid keys instead of being silently ignored.

Command-line syntax: ``--key value`` or ``--key=value``; nested keys with a dot
(``--model.hidden_size 64``); a bare ``--flag`` sets a boolean key to true; ``--eval_file PATH``
may repeat (each one is appended to ``eval_files``).
"""

from __future__ import annotations

import difflib
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import SeqlabUsageError

# The three ways to say how long training lasts; at most one may be set.
BUDGET_KEYS = ("max_steps", "max_train_tokens", "num_train_epochs")
MIXED_PRECISION_CHOICES = ("auto", "no", "bf16", "fp16")
REPORT_TO_CHOICES = ("none", "tensorboard", "wandb")
SCHEDULER_CHOICES = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "warmup_stable_decay",
)
STRATEGY_CHOICES = ("full", "freeze_body", "ulmfit")


@dataclass(frozen=True)
class Field:
    """One recipe key: its kind (``int``, ``float``, ``bool``, ``str``, ``list``, ``dict``), default and help."""

    kind: str
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] | None = None


def _shared_fields(**defaults: Any) -> dict[str, Field]:
    """Keys of the training loop, common to pretraining and fine-tuning (defaults differ)."""
    fields = {
        "config": Field("str", None, "the recipe YAML this recipe came from (relative paths resolve against it)"),
        "output_dir": Field("str", None, "folder of the run: checkpoints, final model, metrics.json, train_log.jsonl"),
        "overwrite_output_dir": Field("bool", False, "replace an existing, non-empty output_dir"),
        "seed": Field("int", 42, "seed of model initialisation, data order, dropout and masking"),
        "per_device_train_batch_size": Field("int", 32, "sequences per process per micro-batch"),
        "per_device_eval_batch_size": Field("int", None, "evaluation batch size (unset: the training one)"),
        "gradient_accumulation_steps": Field("int", 1, "micro-batches per optimizer step"),
        "learning_rate": Field("float", 5e-4, "peak learning rate of AdamW"),
        "weight_decay": Field("float", 0.01, "AdamW weight decay of matrices (biases and norms are not decayed)"),
        "adam_beta1": Field("float", 0.9, "AdamW beta1"),
        "adam_beta2": Field("float", 0.999, "AdamW beta2"),
        "adam_epsilon": Field("float", 1e-8, "AdamW epsilon"),
        "lr_scheduler_type": Field("str", "cosine", "transformers.get_scheduler name", SCHEDULER_CHOICES),
        "warmup_ratio": Field("float", 0.0, "warmup as a fraction of the optimizer steps"),
        "warmup_steps": Field("int", 0, "warmup steps (overrides warmup_ratio when > 0)"),
        "max_steps": Field("int", None, "optimizer steps to train for"),
        "max_train_tokens": Field(
            "int", None, "token budget, turned into optimizer steps (compare families at equal tokens)"
        ),
        "num_train_epochs": Field(
            "float", None, "passes over the training data (unset: 1 when no other budget is given)"
        ),
        "max_grad_norm": Field("float", 1.0, "gradient clipping threshold (0 or null: no clipping)"),
        "mixed_precision": Field("str", "auto", "auto: bf16 on a GPU that has it, else no", MIXED_PRECISION_CHOICES),
        "logging_steps": Field("int", 10, "optimizer steps between train_log.jsonl records"),
        "eval_steps": Field("int", None, "optimizer steps between evaluations (always evaluated at the end)"),
        "max_eval_batches": Field(
            "int", None, "evaluate on the first N batches' worth of the validation split (null: all of it)"
        ),
        "save_steps": Field("int", None, "optimizer steps between checkpoints (null: no checkpoints)"),
        "save_total_limit": Field("int", 2, "checkpoints kept (the oldest are deleted)"),
        "resume_from_checkpoint": Field("str", None, "'latest' or a checkpoint folder to continue from"),
        "stop_after_steps": Field("int", None, "debug: stop (as if killed) after this step, schedule unchanged"),
        "debug_batch_log": Field(
            "int",
            0,
            "debug: each process writes the token ids of its first N batches and a digest of its final "
            "weights to output_dir/debug",
        ),
        "report_to": Field("str", "none", "experiment tracker through Accelerate", REPORT_TO_CHOICES),
        "run_name": Field("str", None, "tracker project/run name (unset: the output_dir name)"),
        "dataloader_num_workers": Field("int", 0, "DataLoader worker processes"),
        "torch_compile": Field("bool", False, "compile the model with torch.compile (GPU throughput)"),
        "save_model": Field("bool", True, "write the final model and tokenizer with save_pretrained"),
        "skip_nonfinite_batches": Field(
            "bool", False, "skip (and count) a step whose loss or gradient is inf/NaN instead of stopping the run"
        ),
    }
    for key, value in defaults.items():
        fields[key] = Field(fields[key].kind, value, fields[key].help, fields[key].choices)
    return fields


PRETRAIN_FIELDS: dict[str, Field] = {
    **_shared_fields(learning_rate=1e-3, adam_beta2=0.95, warmup_ratio=0.05, eval_steps=200, save_steps=500),
    "model_config": Field("str", None, "model YAML (family + config kwargs) or a folder with config.json"),
    "model": Field("dict", {}, "config overrides, e.g. --model.hidden_size 64"),
    "tokenizer_path": Field("str", None, "tokenizer folder (trained first when missing and tokenizer_train is set)"),
    "tokenizer_train": Field(
        "dict", None, "{sources, vocab_size, kind, max_texts, min_frequency}: train the tokenizer"
    ),
    "datasets": Field("list", None, "pretraining sources: data keys, key:split or files"),
    "max_seq_length": Field("int", 128, "tokens per packed block"),
    "max_corpus_tokens": Field("int", None, "cap on the tokens of the packed corpus"),
    "validation_fraction": Field("float", 0.01, "share of documents held out for validation"),
    "num_proc": Field("int", None, "processes for tokenization"),
    "mlm_probability": Field("float", 0.15, "masked-LM mask rate (encoder family)"),
}

TOKENIZER_TRAIN_KEYS = {
    "sources": "list",
    "vocab_size": "int",
    "kind": "str",
    "max_texts": "int",
    "min_frequency": "int",
}

FINETUNE_FIELDS: dict[str, Field] = {
    **_shared_fields(
        learning_rate=1e-3,
        lr_scheduler_type="linear",
        warmup_ratio=0.1,
        save_steps=None,
        save_total_limit=1,
        per_device_eval_batch_size=64,
    ),
    "model_name_or_path": Field("str", None, "pretrained LM folder, or 'scratch' for fresh weights"),
    "model_config": Field("str", None, "for scratch: model YAML or folder whose config to copy"),
    "model": Field("dict", {}, "config overrides, e.g. --model.classifier_dropout_prob 0.2"),
    "tokenizer_path": Field("str", None, "tokenizer folder (unset: the model folder)"),
    "dataset": Field("str", "sst2_sentence", "labelled data key or file"),
    "train_split": Field("str", "train", "split to fine-tune on"),
    "eval_split": Field(
        "str",
        "validation",
        "split of dataset to evaluate on, or a labelled file of held-out rows "
        "(a file dataset has no split of its own: training rows are never scored as validation)",
    ),
    "eval_files": Field("list", [], "extra labelled files scored with the final classifier (--eval_file, repeatable)"),
    "max_length": Field("int", 128, "truncate texts to this many tokens"),
    "num_labels": Field("int", None, "classes (unset: from the data)"),
    "num_train_examples": Field("int", None, "stratified subset of the training split chosen by seed (null: all)"),
    "dev_examples": Field(
        "int",
        None,
        "carve a stratified dev set of this size off the training split (fixed by "
        "dev_seed, never trained on) and score it as dev_*: select settings on it, not on eval_split",
    ),
    "dev_seed": Field("int", 0, "seed of the dev carve (not the run seed, so every run shares one dev set)"),
    "strategy": Field("str", "full", "full, freeze_body (linear probe) or ulmfit", STRATEGY_CHOICES),
    "ulmfit_lr_decay": Field("float", 2.6, "ULMFiT: each lower layer group trains at lr / decay^depth"),
    "ulmfit_cut_frac": Field("float", 0.1, "ULMFiT: fraction of steps the slanted triangular schedule rises"),
    "ulmfit_ratio": Field("float", 32.0, "ULMFiT: ratio of the peak to the lowest learning rate"),
    "ulmfit_unfreeze_steps": Field("int", None, "ULMFiT: steps between unfreezing layer groups (unset: one epoch)"),
}
FINETUNE_FIELDS["num_train_epochs"] = Field(
    "float", 3.0, "passes over the training data (when no other budget is given)"
)

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _kind_error(key: str, value: Any, kind: str) -> SeqlabUsageError:
    return SeqlabUsageError(f"recipe key {key!r} must be {_KIND_WORDS[kind]}, got {value!r}; fix the value")


_KIND_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "list": "a list",
    "dict": "a mapping",
}


def coerce(key: str, value: Any, kind: str) -> Any:
    """Convert a YAML or command-line value to the key's kind (``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, str) and kind not in ("str",) and value.strip().lower() in ("null", "none", "~"):
        return None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in _TRUE:
            return True
        if str(value).strip().lower() in _FALSE:
            return False
        raise _kind_error(key, value, kind)
    if kind == "int":
        if isinstance(value, bool):
            raise _kind_error(key, value, kind)
        if isinstance(value, int):
            return value
        try:
            number = float(str(value).replace("_", ""))
        except ValueError:
            raise _kind_error(key, value, kind) from None
        if not math.isfinite(number) or not number.is_integer():
            raise _kind_error(key, value, kind)
        return int(number)  # "1e6" is a valid token budget
    if kind == "float":
        if isinstance(value, bool):
            raise _kind_error(key, value, kind)
        try:
            return float(value)  # YAML reads 1e-3 (no dot) as a string
        except (TypeError, ValueError):
            raise _kind_error(key, value, kind) from None
    if kind == "str":
        if isinstance(value, bool):  # YAML 1.1 reads a bare `no` as False
            return "yes" if value else "no"
        if isinstance(value, (int, float)):
            return str(value)
        if not isinstance(value, str):
            raise _kind_error(key, value, kind)
        return value
    if kind == "list":
        if isinstance(value, str):
            parsed = yaml.safe_load(value) if value.strip().startswith("[") else value
            value = parsed if isinstance(parsed, list) else [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise _kind_error(key, value, kind)
        return value
    if kind == "dict":
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, Mapping):
            raise _kind_error(key, value, kind)
        return dict(value)
    raise AssertionError(f"unknown field kind {kind!r}")


def _unknown_key_error(key: str, fields: Mapping[str, Field], where: str) -> SeqlabUsageError:
    close = difflib.get_close_matches(key, list(fields), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return SeqlabUsageError(f"unknown recipe key {key!r} in {where}{hint}; valid keys: {', '.join(sorted(fields))}")


def _yaml_problem(error: Exception) -> str:
    """PyYAML's error in one line (its message quotes the file with a caret below): the problem and where."""
    problem, mark = getattr(error, "problem", None), getattr(error, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(error).split())


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file is a usage error naming the file."""
    file = Path(path)
    if not file.is_file():
        raise SeqlabUsageError(f"recipe file {str(file)!r} does not exist; check the --config path")
    try:
        content = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SeqlabUsageError(f"recipe file {str(file)!r} is not valid YAML: {_yaml_problem(error)}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise SeqlabUsageError(
            f"recipe file {str(file)!r} must hold a mapping of keys to values, not {type(content).__name__}"
        )
    return content


def _set_value(recipe: dict[str, Any], key: str, value: Any, fields: Mapping[str, Field], where: str) -> None:
    top, _, nested = key.partition(".")
    if top not in fields:
        raise _unknown_key_error(top, fields, where)
    field = fields[top]
    if nested:
        if field.kind != "dict":
            raise SeqlabUsageError(
                f"recipe key {top!r} is not a mapping, so {key!r} is not a valid key; use --{top} VALUE"
            )
        mapping = dict(recipe.get(top) or {})
        mapping[nested] = yaml.safe_load(value) if isinstance(value, str) else value
        recipe[top] = mapping
        return
    recipe[top] = coerce(top, value, field.kind)


def resolve_recipe(
    recipe: Mapping[str, Any] | None,
    fields: Mapping[str, Field],
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Fill defaults, load ``recipe['config']`` (a YAML file) underneath, apply ``overrides`` on top.

    Values in ``recipe`` beat the file's, ``overrides`` beat both. A layer that sets a budget key
    (``max_steps``, ``max_train_tokens``, ``num_train_epochs``) clears the budget keys of the layers
    below it, so ``--max_steps 10`` works with a recipe file that sets ``max_train_tokens``.
    """
    layers: list[tuple[str, Mapping[str, Any]]] = []
    given = dict(recipe or {})
    config_path = (overrides or {}).get("config") or given.get("config")
    if config_path:
        layers.append((f"recipe file {config_path}", read_yaml(config_path)))
    layers.append(("the recipe", given))
    if overrides:
        layers.append(("the command line", overrides))

    resolved: dict[str, Any] = {key: _copy_default(field.default) for key, field in fields.items()}
    for where, layer in layers:
        if any(layer.get(key) is not None for key in BUDGET_KEYS):
            for key in BUDGET_KEYS:
                resolved[key] = None
        for key, value in layer.items():
            if key == "eval_file":  # the command-line spelling of one eval_files entry
                key, value = "eval_files", list(resolved.get("eval_files") or []) + _as_list(value)
            _set_value(resolved, key, value, fields, where)
    if config_path:
        resolved["config"] = str(config_path)
    for key, field in fields.items():
        if field.choices and resolved[key] is not None and resolved[key] not in field.choices:
            raise SeqlabUsageError(f"recipe key {key!r} is {resolved[key]!r}; choose one of {', '.join(field.choices)}")
    return resolved


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _copy_default(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


def parse_overrides(
    argv: Sequence[str], fields: Mapping[str, Field], repeatable: Iterable[str] = ("eval_file",)
) -> dict[str, Any]:
    """Turn ``--key value`` pairs into a mapping (values still strings; ``resolve_recipe`` coerces them)."""
    repeatable = set(repeatable)
    overrides: dict[str, Any] = {}
    index = 0
    args = list(argv)
    while index < len(args):
        token = args[index]
        if not token.startswith("--") or token == "--":
            raise SeqlabUsageError(f"unexpected argument {token!r}; pass settings as --key value")
        key, has_value, value = token[2:].partition("=")
        key = key.replace("-", "_")
        top = key.partition(".")[0]
        if top not in fields and key not in repeatable:
            raise _unknown_key_error(key, fields, "the command line")
        if not has_value:
            following = args[index + 1] if index + 1 < len(args) else None
            is_flag = following is None or (following.startswith("--") and len(following) > 2)
            if is_flag:
                if top in fields and fields[top].kind == "bool" and key == top:
                    value = "true"
                else:
                    raise SeqlabUsageError(f"--{key} needs a value; pass --{key} VALUE")
            else:
                value = following
                index += 1
        if key in repeatable:
            overrides.setdefault(key, []).append(value)
        else:
            overrides[key] = value
        index += 1
    return overrides


def recipe_from_argv(
    argv: Sequence[str], fields: Mapping[str, Field], description: str | None = None
) -> dict[str, Any]:
    """The recipe a script runs: ``--config FILE`` under the other ``--key value`` overrides.

    ``-h``/``--help`` prints ``description`` (the script's docstring) and every recipe key with its
    kind, meaning and default, then exits.
    """
    if any(arg in ("-h", "--help") for arg in argv):
        print(help_text(fields, description))
        raise SystemExit(0)
    overrides = parse_overrides(argv, fields)
    return resolve_recipe(None, fields, overrides)


_METAVARS = {"int": "INT", "float": "FLOAT", "bool": "BOOL", "str": "STR", "list": "LIST", "dict": "VALUE"}


def help_text(fields: Mapping[str, Field], description: str | None = None) -> str:
    """``--help`` of a recipe-driven script, formatted by argparse as every other script's help is.

    The recipe is parsed by ``parse_overrides`` (nested ``--model.KEY`` keys, repeatable
    ``--eval_file``), so this parser only formats the schema; it never parses arguments.
    """
    import argparse

    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "seqlab"
    parser = argparse.ArgumentParser(
        prog=program,
        usage="%(prog)s --config RECIPE.yaml [--key value ...]",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    keys = parser.add_argument_group(
        "recipe keys",
        "Set in the YAML recipe or as --key value (the command line wins). BOOL: true/false, a bare --key "
        "means true; LIST: comma-separated or a YAML list; null unsets a key.",
    )
    for key, field in sorted(fields.items()):
        option = f"--{key}.KEY" if field.kind == "dict" else f"--{key}"
        keys.add_argument(option, metavar=_METAVARS[field.kind], help=_field_help(field))
    if "eval_files" in fields:
        keys.add_argument("--eval_file", metavar="PATH", help="one more eval_files entry; repeatable")
    return parser.format_help().rstrip()


def _field_help(field: Field) -> str:
    parts = [field.help]
    if field.choices:
        parts.append(f"one of: {', '.join(field.choices)}")
    parts.append(f"default: {_default_text(field.default)}")
    return "; ".join(part for part in parts if part).replace("%", "%%")  # argparse formats help with %


def _default_text(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()  # as YAML and the command line spell it
    if value in ({}, []):
        return "empty"
    return repr(value)


def resolve_path(value: str | os.PathLike, recipe: Mapping[str, Any]) -> Path:
    """Resolve a relative path in a recipe: against the working directory, else against the recipe file.

    A recipe in ``configs/pretrain/`` names ``configs/models/decoder-tiny.yaml`` relative to the
    repository root, so the recipe's folder and its parents are tried in turn.
    """
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path
    config = recipe.get("config")
    if config:
        for folder in Path(config).resolve().parents:
            candidate = folder / path
            if candidate.exists():
                return candidate
    return path


def check_positive(recipe: Mapping[str, Any], keys: Iterable[str], allow_zero: bool = False) -> None:
    """Refuse non-positive values (``None`` is allowed: it means "not set")."""
    for key in keys:
        value = recipe.get(key)
        if value is None:
            continue
        if value < 0 or (value == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise SeqlabUsageError(f"recipe key {key!r} must be {bound}, got {value!r}")


def check_budget(recipe: dict[str, Any]) -> None:
    """At most one of max_steps / max_train_tokens / num_train_epochs; none means one epoch."""
    given = [key for key in BUDGET_KEYS if recipe.get(key) is not None]
    if len(given) > 1:
        raise SeqlabUsageError(
            f"recipe sets {' and '.join(given)}; set only one of {', '.join(BUDGET_KEYS)} "
            "(a command-line override of one clears the recipe file's others)"
        )
    check_positive(recipe, BUDGET_KEYS)
    if not given:
        recipe["num_train_epochs"] = 1.0


def recipe_to_yaml(recipe: Mapping[str, Any]) -> str:
    """The resolved recipe as YAML, written next to a run's results for provenance."""
    return yaml.safe_dump(dict(recipe), sort_keys=True, default_flow_style=False)
