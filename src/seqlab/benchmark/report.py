"""Result entries, the targets of issue 6, and the JSON/Markdown forms of a benchmark run."""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

# Ratios seqlab / reference that issues 6 and 12 ask for, by (device, size) and entry name prefix.
TARGETS = {
    # issue 12: cached generation >= 5x uncached at 256 new tokens, also on CPU
    ("cpu", "tiny"): {
        "decoder-train": 1.0,
        "encoder-train": 1.0,
        "decoder-generate-cache": 5.0,
        "recurrent-generate-cache": 5.0,
    },
    ("cuda", "small"): {
        "decoder-train-compile": 1.3,
        "encoder-train": 1.5,
        "recurrent-train": 0.95,
        "decoder-generate-vs-gpt2": 1.0,
        "decoder-generate-cache": 5.0,
        "recurrent-generate-cache": 5.0,
    },
}
# Tokenizing and packing the whole shared corpus on a 16-core machine.
DATA_TARGET_SECONDS = 60.0
DATA_TARGET_MIN_PROCS = 16


def ratio_target(name: str, device: str, size: str) -> dict | None:
    for prefix, at_least in TARGETS.get((device, size), {}).items():
        if name.startswith(prefix):
            return {"metric": "ratio", "at_least": at_least}
    return None


def device_label(device: str) -> str:
    import torch

    if device == "cuda":
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''})"


def paired_ratio_quartiles(seqlab_runs: list[float], reference_runs: list[float]) -> list[float] | None:
    """Quartiles of seqlab/reference over repetitions timed back to back: the spread says how much
    of a ratio near 1 is noise."""
    if len(seqlab_runs) != len(reference_runs) or len(seqlab_runs) < 3:
        return None
    return statistics.quantiles([s / r for s, r in zip(seqlab_runs, reference_runs)], n=4, method="inclusive")


def make_entry(
    name: str,
    seqlab: dict,
    reference: dict,
    config: dict,
    device: str,
    versions: dict,
    target: dict | None = None,
    **extra,
) -> dict:
    """One comparison. ``seqlab``/``reference``: ``model``, ``tokens_per_s`` (wall-clock median),
    ``runs`` (every repetition's tokens/s), ``peak_memory_bytes`` (None where not measured), on CPU
    ``tokens_per_cpu_s``, and any other facts. ``ratio`` is seqlab over reference, wall clock."""
    ratio = seqlab["tokens_per_s"] / reference["tokens_per_s"]
    entry = {
        "name": name,
        "seqlab_model": seqlab["model"],
        "reference_model": reference["model"],
        "seqlab_tokens_per_s": seqlab["tokens_per_s"],
        "reference_tokens_per_s": reference["tokens_per_s"],
        "ratio": ratio,
        "cpu_time_ratio": None,
        "seqlab_peak_memory_bytes": seqlab.get("peak_memory_bytes"),
        "reference_peak_memory_bytes": reference.get("peak_memory_bytes"),
        "seqlab": seqlab,
        "reference": reference,
        "config": config,
        "device": device,
        "versions": versions,
        "target": target,
        "meets_target": None,
    }
    entry["paired_ratio_quartiles"] = paired_ratio_quartiles(seqlab.get("runs", []), reference.get("runs", []))
    if "tokens_per_cpu_s" in seqlab and "tokens_per_cpu_s" in reference:
        entry["cpu_time_ratio"] = seqlab["tokens_per_cpu_s"] / reference["tokens_per_cpu_s"]
    if target is not None and target["metric"] == "ratio":
        entry["meets_target"] = ratio >= target["at_least"]
    entry.update(extra)
    return entry


def make_document(settings, entries: list[dict], info: dict) -> dict:
    """The JSON of one run: command, settings, provenance and the entries."""
    return {
        "suite": settings.suite,
        "command": " ".join(["python", *sys.argv]) if sys.argv and sys.argv[0] else None,
        "settings": settings.as_dict(),
        "environment": {key: os.environ.get(key) for key in ("OMP_NUM_THREADS", "TOKENIZERS_PARALLELISM")},
        "provenance": info,
        "gpu_measured": settings.device == "cuda",
        "entries": entries,
    }


def write_json(document: dict, path: str | os.PathLike) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _format_rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.1f}"


def _format_bytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def markdown_table(document: dict) -> str:
    """The entries as a Markdown table: seqlab and reference tokens/s, ratio, target, peak memory."""
    lines = [
        "| entry | seqlab | tokens/s | reference | tokens/s | ratio | target | peak memory seqlab / reference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in document["entries"]:
        target = entry.get("target")
        if target is None:
            target_text = "-"
        else:
            bound = f">= {target['at_least']}x" if target["metric"] == "ratio" else f"<= {target['at_most']:.0f} s"
            verdict = {True: "met", False: "missed", None: "n/a"}[entry.get("meets_target")]
            target_text = f"{bound} ({verdict})"
        lines.append(
            f"| {entry['name']} | {entry['seqlab_model']} | {_format_rate(entry['seqlab_tokens_per_s'])} "
            f"| {entry['reference_model']} | {_format_rate(entry['reference_tokens_per_s'])} "
            f"| {entry['ratio']:.2f}x | {target_text} "
            f"| {_format_bytes(entry['seqlab_peak_memory_bytes'])} / {_format_bytes(entry['reference_peak_memory_bytes'])} |"
        )
    return "\n".join(lines)
