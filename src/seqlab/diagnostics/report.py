"""What every diagnostic writes beside its numbers: provenance, JSON, Markdown tables, plots.

A result without the command, machine, versions and date that produced it cannot be checked, so
each JSON file and summary carries them.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import SeqlabUsageError
from ..provenance import cpu_name, git_commit

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def resolve_device(name: str) -> torch.device:
    """`cpu` or `cuda`; asking for a GPU that is not there is the user's to fix."""
    if name not in ("cpu", "cuda"):
        raise SeqlabUsageError(f"--device must be 'cpu' or 'cuda', got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise SeqlabUsageError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as a user would retype it, with the thread settings that shaped the timings."""
    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0].endswith(".py"):
        argv[0] = os.path.relpath(argv[0]) if os.path.isabs(argv[0]) else argv[0]
    env = [f"{key}={os.environ[key]}" for key in _THREAD_VARIABLES if key in os.environ]
    return " ".join(env + ["python", shlex.join(argv)])


def provenance(device: torch.device, command: str, seconds: float) -> dict[str, Any]:
    import transformers

    from .. import __version__

    machine = {
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
    return {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "seqlab": __version__,
        },
        "git_commit": git_commit(),
        "wall_seconds": round(seconds, 1),
    }


def machine_line(prov: dict[str, Any]) -> str:
    m = prov["machine"]
    where = m.get("gpu") or f"{m['cpu_count']}-core CPU ({m['cpu']}), {m['torch_threads']} torch thread(s)"
    return f"{where}; {m['platform']}"


def provenance_markdown(prov: dict[str, Any]) -> str:
    v = prov["versions"]
    lines = [
        "## Provenance",
        "",
        f"- Command: `{prov['command']}`",
        f"- Machine: {machine_line(prov)}",
        f"- Versions: python {v['python']}, torch {v['torch']}, transformers {v['transformers']}, seqlab {v['seqlab']}",
        f"- Date: {prov['date']}; wall time {prov['wall_seconds']} s",
    ]
    if prov.get("git_commit"):
        lines.append(f"- Code: commit {prov['git_commit']} plus the working tree at run time")
    return "\n".join(lines) + "\n"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def scientific(value: float) -> str:
    return f"{value:.1e}" if value != 0 else "0"


def finite_or_none(value: Any) -> Any:
    """NaN and infinity become null, so the JSON stays standard (a diverged run reports no number)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def write_outputs(output_dir: Path, stem: str, payload: dict[str, Any], summary: str, figure) -> dict[str, Path]:
    """Write `<stem>.json`, `<stem>.png` and `summary.md` into `output_dir`; returns their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": output_dir / f"{stem}.json",
        "png": output_dir / f"{stem}.png",
        "summary": output_dir / "summary.md",
    }
    paths["json"].write_text(json.dumps(finite_or_none(payload), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    figure.savefig(paths["png"], dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    paths["summary"].write_text(summary, encoding="utf-8")
    return paths


def pyplot():
    """matplotlib's pyplot on the file-only backend (no display on servers and CI)."""
    try:
        import matplotlib
    except ImportError:
        raise SeqlabUsageError(
            "the diagnostics draw their plots with matplotlib, which is not installed: pip install 'seqlab[plots]'"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
