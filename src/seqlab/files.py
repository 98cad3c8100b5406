"""Folders published whole: written under a temporary sibling name, then renamed into place."""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def publish_staged(staging: Path, output_dir: Path, replace: bool = False) -> Iterator[Path]:
    """Fill ``staging`` inside the ``with`` block; then rename it to ``output_dir``, or delete it on any failure.

    ``staging`` is a sibling of ``output_dir`` (one file system, so the rename is atomic): a failure, an
    interrupt included, leaves nothing half-written. An existing ``output_dir`` is removed just before the
    rename: with ``replace`` whatever is there (a folder and its contents, or a file), otherwise only an
    empty folder (``rmdir`` raises on anything else).
    """
    try:
        yield staging
        if replace and output_dir.is_dir():
            shutil.rmtree(output_dir)
        elif replace and output_dir.exists():
            output_dir.unlink()
        elif output_dir.exists():
            output_dir.rmdir()
        staging.rename(output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
