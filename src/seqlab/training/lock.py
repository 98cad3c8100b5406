"""One run at a time per output folder: an advisory ``flock`` on ``output_dir/.seqlab.lock``.

Two runs writing one folder (two ``--resume_from_checkpoint latest`` jobs, say) would interleave
their logs and checkpoints and both exit 0. The lock is a ``flock`` rather than a pid file because
the kernel drops it when its process dies, however it dies (``kill -9`` included): a stale lock
cannot exist. The file stays in the folder (unlinking a lock file while another process opens it
would let two runs hold two different locks); it holds the holder's pid, host and start time for
the refusal message. Only the main process locks; the others learn the outcome by a reduction.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from ..errors import SeqlabUsageError

LOCK_FILE = ".seqlab.lock"


class OutputDirLock:
    """Holds the lock of one output folder from ``acquire`` until ``release`` (or the process's end)."""

    def __init__(self, output_dir: str | Path, accelerator=None):
        self.path = Path(output_dir) / LOCK_FILE
        self.accelerator = accelerator
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self, create: bool = False) -> None:
        """Take the lock, or raise a usage error naming the run that holds it.

        Without ``create`` only an existing lock file is locked (no lock file: no run holds the folder),
        so that a run refused later by another check leaves the folder exactly as it was. ``create``
        (just before the run's first write) makes the folder and the file as needed and records this
        process in it.
        """
        refusal = None
        if self._is_main():
            if not self.held:
                refusal = self._try_lock(create)
            if create and self.held:
                self._record_holder()
        if self._refused_anywhere(refusal is not None):
            self.release()
            raise SeqlabUsageError(
                refusal
                or f"output_dir {str(self.path.parent)!r} is in use by another run (see the main process's message)"
            )

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> OutputDirLock:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def _is_main(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    def _refused_anywhere(self, refused: bool) -> bool:
        if self.accelerator is None or self.accelerator.num_processes == 1:
            return refused
        import torch

        flag = torch.tensor(float(refused), device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def _record_holder(self) -> None:
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, json.dumps(_holder_record()).encode() + b"\n", 0)
        except OSError as error:  # opened read-only: the folder cannot be written
            self.release()
            raise SeqlabUsageError(
                f"output_dir {str(self.path.parent)!r} is not writable ({error.strerror}); "
                "make it writable or pass another --output_dir"
            ) from None

    def _try_lock(self, create: bool) -> str | None:
        """None when the lock is now ours (or there is no lock file to take yet), else the refusal message."""
        import fcntl

        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            return None
        except OSError as error:  # read-only folder or file system
            if create:
                raise SeqlabUsageError(
                    f"output_dir {str(self.path.parent)!r} is not writable ({error.strerror}); "
                    "make it writable or pass another --output_dir"
                ) from None
            fd = os.open(self.path, os.O_RDONLY)  # flock needs no write access: still detect a running holder
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            os.close(fd)
            return (
                f"output_dir {str(self.path.parent)!r} is in use by another run ({holder}); wait for it to finish or "
                "stop it, or pass another --output_dir (the lock is released when that process ends, even if killed)"
            )
        self.fd = fd
        return None


def _holder_record() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
    }


def _describe_holder(fd: int) -> str:
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        record = {}
    if not isinstance(record, dict) or "pid" not in record:
        return "its pid is not recorded yet"
    return f"pid {record['pid']} on host {record.get('host', '?')}, started {record.get('started', '?')}"


def holds_files(folder: Path) -> bool:
    """Whether ``folder`` holds anything besides its lock file (a run killed just after locking left only that)."""
    return any(child.name != LOCK_FILE for child in Path(folder).iterdir())
