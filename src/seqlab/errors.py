"""Usage errors and the one way every seqlab command line reports them.

A usage error is a mistake the user can fix (a bad data key, a missing file, a column that is not
there, a config that does not fit the tokenizer). Its message names the problem and the fix, so a
command line prints it as one line instead of a traceback.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from typing import Any

INTERRUPTED_STATUS = 130  # 128 + SIGINT, what shells report for a job stopped with Ctrl-C


class SeqlabUsageError(ValueError):
    """A mistake in how seqlab was called; the message says what is wrong and how to fix it."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during training; the message says where training stopped and what is saved.

    ``resumable`` is True when ``--resume_from_checkpoint latest`` continues the run (from its last
    checkpoint, or from step 0 when it had none yet): the command line adds the exact command.
    """

    def __init__(self, message: str, resumable: bool = True):
        super().__init__(message)
        self.resumable = resumable


def run_cli(main_fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run a command-line ``main_fn`` and exit: usage errors become ``error: <message>`` and exit 1.

    ``SeqlabUsageError`` and ``FileNotFoundError`` are the user's to fix, so they are printed to
    stderr without a traceback. Ctrl-C prints one ``interrupted: ...`` line (where training stopped
    and the command that continues it) and exits with status 130. Any other exception is a bug and
    propagates with its traceback. An integer returned by ``main_fn`` is the exit status (``None`` means 0).
    """
    try:
        status = main_fn(*args, **kwargs)
    except (SeqlabUsageError, FileNotFoundError) as error:
        print(f"error: {_describe(error)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as interrupt:
        if int(os.environ.get("RANK", "0")) == 0:  # one line, not one per process
            print(f"interrupted: {_describe_interrupt(interrupt)}", file=sys.stderr)
        sys.exit(INTERRUPTED_STATUS)
    sys.exit(status if isinstance(status, int) else 0)


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _describe_interrupt(interrupt: KeyboardInterrupt) -> str:
    if not isinstance(interrupt, TrainingInterrupted):
        return "stopped before training began; nothing to continue: run the same command again"
    message = _describe(interrupt)
    if interrupt.resumable:
        message += f"; continue with: {resume_command(sys.argv)}"
    return message


def resume_command(argv: list[str]) -> str:
    """The command line that continues this run: the same arguments plus ``--resume_from_checkpoint latest``."""
    args = list(argv[1:])
    for index, arg in enumerate(args):  # an earlier resume flag is replaced, not repeated
        if arg == "--resume_from_checkpoint" and index + 1 < len(args):
            del args[index : index + 2]
            break
        if arg.startswith("--resume_from_checkpoint="):
            del args[index]
            break
    launcher = "accelerate launch" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "python"
    return shlex.join([*launcher.split(), argv[0], *args, "--resume_from_checkpoint", "latest"])
