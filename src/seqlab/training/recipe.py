"""Recipes: a YAML file of training settings under a mapping of settings under command-line overrides.

A recipe sets keys of a typed arguments class (``PretrainingArgs`` or ``FinetuningArgs``, see
``args.py``). ``resolve_args`` layers defaults < the YAML file named by ``config`` < a given mapping <
overrides (the command line, see ``cli.py``), converts each value to its key's kind (``"1e6"`` is a
valid integer, ``null`` unsets, a YAML ``no`` is the string "no", ``a,b`` is a list) and refuses an
unknown key with the valid ones, so a typo such as ``learnig_rate`` is never silently ignored.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..errors import SeqlabUsageError
from .args import BUDGET_KEYS, RecipeKey, TrainingArgs, check_choices, recipe_keys

Args = TypeVar("Args", bound=TrainingArgs)

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


def unknown_key_error(key: str, keys: Mapping[str, Any], where: str) -> SeqlabUsageError:
    close = difflib.get_close_matches(key, list(keys), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return SeqlabUsageError(f"unknown recipe key {key!r} in {where}{hint}; valid keys: {', '.join(sorted(keys))}")


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


# Keys that left the recipe (now test hooks, see test_hooks.py) with the inert value every recipe.yaml written
# before 2026-12-07 records: such a file still works as --config; any other value is refused, never ignored.
RETIRED_KEYS = {"stop_after_steps": None, "debug_batch_log": 0}


def _retired(key: str, value: Any, where: str) -> bool:
    """True for a retired key holding its inert value (to skip); a usage error for any other value."""
    if key not in RETIRED_KEYS:
        return False
    if value in (None, "null", "None", "~") or value == RETIRED_KEYS[key]:
        return True
    from .test_hooks import ENVIRONMENT

    raise SeqlabUsageError(
        f"{key!r} in {where} is no longer a recipe key (it is a test hook); remove it, or set the environment "
        f"variable {ENVIRONMENT[key]}={value}"
    )


def _set_value(values: dict[str, Any], key: str, value: Any, keys: Mapping[str, RecipeKey], where: str) -> None:
    top, _, nested = key.partition(".")
    if top not in keys:
        if not nested and _retired(top, value, where):
            return
        raise unknown_key_error(top, keys, where)
    if nested:
        if keys[top].kind != "dict":
            raise SeqlabUsageError(
                f"recipe key {top!r} is not a mapping, so {key!r} is not a valid key; use --{top} VALUE"
            )
        mapping = dict(values.get(top) or {})
        mapping[nested] = yaml.safe_load(value) if isinstance(value, str) else value
        values[top] = mapping
        return
    values[top] = coerce(top, value, keys[top].kind)


def resolve_args(
    cls: type[Args], recipe: Mapping[str, Any] | TrainingArgs | None = None, overrides: Mapping[str, Any] | None = None
) -> Args:
    """``cls`` filled from defaults, the YAML file ``config`` names, ``recipe`` and ``overrides``, in that order.

    Values in ``recipe`` beat the file's, ``overrides`` beat both. A layer that sets a budget key
    (``max_steps``, ``max_train_tokens``, ``num_train_epochs``) clears the budget keys of the layers
    below it, so ``--max_steps 10`` works with a recipe file that sets ``max_train_tokens``. A
    ``recipe`` that is already resolved arguments is not read again: its ``config`` file is not reloaded.
    """
    keys = recipe_keys(cls)
    resolved = recipe is not None and not isinstance(recipe, Mapping)
    given = recipe.to_dict() if resolved else dict(recipe or {})
    config_path = (overrides or {}).get("config") or (None if resolved else given.get("config"))
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config_path:
        layers.append((f"recipe file {config_path}", read_yaml(config_path)))
    layers.append(("the recipe", given))
    if overrides:
        layers.append(("the command line", overrides))

    values: dict[str, Any] = {key: spec.default for key, spec in keys.items()}
    for where, layer in layers:
        if any(layer.get(key) is not None for key in BUDGET_KEYS):
            for key in BUDGET_KEYS:
                values[key] = None
        for key, value in layer.items():
            if key == "eval_file":  # the command-line spelling of one eval_files entry
                key, value = "eval_files", list(values.get("eval_files") or []) + _as_list(value)
            _set_value(values, key, value, keys, where)
    if config_path:
        values["config"] = str(config_path)
    check_choices(values, keys)
    return cls(**values)


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def resolve_path(value: str | os.PathLike, recipe: TrainingArgs | Mapping[str, Any] | None) -> Path:
    """Resolve a relative path in a recipe: against the working directory, else against the recipe file.

    A recipe in ``configs/pretrain/`` names ``configs/models/decoder-tiny.yaml`` relative to the
    repository root, so the recipe's folder and its parents are tried in turn.
    """
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path
    config = recipe.get("config") if isinstance(recipe, Mapping) else getattr(recipe, "config", None)
    if config:
        for folder in Path(config).resolve().parents:
            candidate = folder / path
            if candidate.exists():
                return candidate
    return path


def recipe_to_yaml(args: TrainingArgs | Mapping[str, Any]) -> str:
    """The resolved recipe as YAML, written next to a run's results for provenance."""
    values = dict(args) if isinstance(args, Mapping) else args.to_dict()
    return yaml.safe_dump(values, sort_keys=True, default_flow_style=False)
