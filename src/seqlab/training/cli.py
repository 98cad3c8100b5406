"""The command line of the training scripts: ``--config FILE`` and ``--key value`` overrides of a recipe.

``transformers.HfArgumentParser`` turns the fields of an arguments class (``args.py``) into options,
so ``--help`` lists every recipe key with its kind, meaning and default. Values are kept as the
strings typed and converted by the recipe reader (``recipe.resolve_args``), exactly as YAML values
are: one conversion for both, with the same errors. Syntax: ``--key value`` or ``--key=value``;
nested keys with a dot (``--model.hidden_size 64``); a bare ``--flag`` sets a boolean key to true;
``--eval_file PATH`` may repeat (each one is appended to ``eval_files``). Every mistake is one
``SeqlabUsageError`` line (an unknown key names the closest valid one and lists them all).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from transformers import HfArgumentParser

from ..errors import SeqlabUsageError
from .args import RecipeKey, TrainingArgs, recipe_keys
from .recipe import RETIRED_KEYS, Args, resolve_args, unknown_key_error

_METAVARS = {"int": "INT", "float": "FLOAT", "bool": "BOOL", "str": "STR", "list": "LIST", "dict": "VALUE"}
KEYS_HELP = (
    "recipe keys: set in the YAML recipe or as --key value (the command line wins). BOOL: true/false, a bare "
    "--key means true; LIST: comma-separated or a YAML list; VALUE: a YAML mapping, or one entry as --key.KEY "
    "VALUE; null unsets a key."
)
_EVAL_FILE_HELP = "one more eval_files entry; repeatable"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--key KIND`` per option: one spelling (the ``--key-name`` alias works but is not listed) and no brackets
    around the optional value of a boolean flag."""

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        if action.nargs == argparse.OPTIONAL:
            return self._metavar_formatter(action, default_metavar)(1)[0]
        return super()._format_args(action, default_metavar)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        nested = ".KEY" if action.metavar == _METAVARS["dict"] else ""  # a mapping: one entry per --key.KEY VALUE
        return f"{action.option_strings[0]}{nested} {self._format_args(action, action.dest.upper())}"


class RecipeParser(HfArgumentParser):
    """``HfArgumentParser`` of one arguments class whose options keep the typed strings (see the module doc)."""

    def __init__(self, args_class: type[TrainingArgs], description: str | None = None):
        self.keys = recipe_keys(args_class)
        program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "seqlab"
        super().__init__(
            args_class,
            prog=program,
            usage="%(prog)s --config RECIPE.yaml [--key value ...]",
            description=description,
            epilog=KEYS_HELP,
            formatter_class=_HelpFormatter,
            allow_abbrev=False,  # --max_step is a typo, not max_steps
        )
        if "eval_files" in self.keys:
            super().add_argument(
                "--eval_file", action="append", metavar="PATH", default=argparse.SUPPRESS, help=_EVAL_FILE_HELP
            )

    def add_argument(self, *names: str, **kwargs: Any):
        """Each option HfArgumentParser derives from a field, adapted: no ``--no_KEY`` complement, the value kept as
        typed (converted with the YAML values), no default (only the keys given are returned), seqlab's help."""
        key = names[0][2:]
        if kwargs.get("action") == "store_false":  # the --no_KEY complement of a boolean key
            return None
        if key not in self.keys:  # -h/--help
            return super().add_argument(*names, **kwargs)
        spec = self.keys[key]
        bool_flag = {"nargs": argparse.OPTIONAL, "const": "true"} if spec.kind == "bool" else {}
        return super().add_argument(
            *names,
            dest=key,
            default=argparse.SUPPRESS,
            metavar=_METAVARS[spec.kind],
            help=key_help(spec),
            **bool_flag,
        )

    def error(self, message: str):
        """argparse's errors as one usage-error line (argparse would print the usage and exit with status 2)."""
        missing = re.match(r"argument (--[\w.-]+).*: expected one argument", message)
        if missing:
            option = missing.group(1)
            raise SeqlabUsageError(f"{option} needs a value; pass {option} VALUE")
        raise SeqlabUsageError(message)

    def parse_overrides(self, argv: Sequence[str]) -> dict[str, Any]:
        """``{key: value as typed}`` of the given options (``model.hidden_size`` for nested keys, ``eval_file``:
        a list)."""
        namespace, rest = self.parse_known_args(_attach_values(argv))
        overrides = vars(namespace)
        for token in rest:
            if not token.startswith("--") or token == "--":
                raise SeqlabUsageError(f"unexpected argument {token!r}; pass settings as --key value")
            key, has_value, value = token[2:].partition("=")
            key = key.replace("-", "_")
            retired = key in RETIRED_KEYS  # resolve_args refuses it with the hook's environment variable
            if not retired and ("." not in key or key.partition(".")[0] not in self.keys):
                raise unknown_key_error(key, self.keys, "the command line")
            if not has_value:
                raise SeqlabUsageError(f"--{key} needs a value; pass --{key} VALUE")
            overrides[key] = value  # a nested key (resolve_args checks that its top key is a mapping) or retired one
        return overrides


def _attach_values(argv: Sequence[str]) -> list[str]:
    """``--key value`` as ``--key=value``: the token after an option is always its value (``--learning_rate -1e-3``,
    ``--model.hidden_size 64``), as seqlab has always read it, never another option."""
    tokens, index = [], 0
    argv = list(argv)
    while index < len(argv):
        token = argv[index]
        following = argv[index + 1] if index + 1 < len(argv) else None
        takes_value = token.startswith("--") and len(token) > 2 and "=" not in token
        if takes_value and following is not None and not (following.startswith("--") and len(following) > 2):
            tokens.append(f"{token}={following}")
            index += 2
            continue
        tokens.append(token)
        index += 1
    return tokens


def key_help(spec: RecipeKey) -> str:
    """A key's line of ``--help``: meaning; choices; default."""
    parts = [spec.help]
    if spec.choices:
        parts.append(f"one of: {', '.join(spec.choices)}")
    parts.append(f"default: {_default_text(spec.default)}")
    return "; ".join(part for part in parts if part).replace("%", "%%")  # argparse formats help with %


def _default_text(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()  # as YAML and the command line spell it
    if value in ({}, []):
        return "empty"
    return repr(value)


def args_from_argv(cls: type[Args], argv: Sequence[str], description: str | None = None) -> Args:
    """The arguments a script runs with: ``--config FILE`` under the other ``--key value`` overrides.

    ``-h``/``--help`` prints ``description`` (the script's docstring) and every recipe key with its
    kind, meaning and default, then exits.
    """
    parser = RecipeParser(cls, description)
    if any(arg in ("-h", "--help") for arg in argv):
        parser.print_help()
        raise SystemExit(0)
    return resolve_args(cls, None, parser.parse_overrides(argv))
