"""Usage errors and the one way every seqlab command line reports them.

A usage error is a mistake the user can fix (a bad data key, a missing file, a column that is not
there, a config that does not fit the tokenizer). Its message names the problem and the fix, so a
command line prints it as one line instead of a traceback.
"""

from __future__ import annotations

import sys
from typing import Any, Callable


class SeqlabUsageError(ValueError):
    """A mistake in how seqlab was called; the message says what is wrong and how to fix it."""


def run_cli(main_fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run a command-line ``main_fn`` and exit: usage errors become ``error: <message>`` and exit 1.

    ``SeqlabUsageError`` and ``FileNotFoundError`` are the user's to fix, so they are printed to
    stderr without a traceback. Any other exception is a bug and propagates with its traceback.
    An integer returned by ``main_fn`` is the exit status (``None`` means 0).
    """
    try:
        status = main_fn(*args, **kwargs)
    except (SeqlabUsageError, FileNotFoundError) as error:
        print(f"error: {_describe(error)}", file=sys.stderr)
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
