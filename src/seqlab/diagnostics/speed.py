"""Parallelism: forward + backward wall time against sequence length, recurrence against attention.

The seeds say a recurrent network must process its inputs one step after another, while a
Transformer handles the whole sequence at once. Here that becomes a timing: one training step
(forward, next-token loss, backward) on random tokens, for sequence lengths from short to long, with
every family matched to the same number of non-embedding parameters. A recurrence runs L dependent
steps per layer, so its time grows linearly in L whatever the hardware; attention's work grows as
L^2 but runs as a few large matrix products, which parallel hardware absorbs.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from .config import DiagnosticsConfig
from .models import MODEL_PRESETS, build_model, count_parameters, matched_hidden_size
from .report import markdown_table, plural, provenance, provenance_markdown, pyplot, write_outputs

# The fastest of the timed runs is the least disturbed by other processes on a shared machine, so the
# findings, fit and plot use it; medians are reported beside it.
HEADLINE = "total_min"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training_step(model, ids: torch.Tensor, repeats: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Median seconds of forward (with the loss) and of backward, and the total's median and minimum."""
    model.train()
    forward, backward = [], []
    for run in range(warmup + repeats):
        model.zero_grad(set_to_none=True)
        _synchronize(device)
        started = time.perf_counter()
        loss = model(ids, labels=ids, use_cache=False).loss
        _synchronize(device)
        middle = time.perf_counter()
        loss.backward()
        _synchronize(device)
        finished = time.perf_counter()
        if run >= warmup:
            forward.append(middle - started)
            backward.append(finished - middle)
    total = [f + b for f, b in zip(forward, backward)]
    return {
        "forward_median": statistics.median(forward),
        "backward_median": statistics.median(backward),
        "total_median": statistics.median(total),
        "total_min": min(total),
    }


def loglog_slope(lengths: list[int], seconds: list[float]) -> float:
    """Least-squares exponent a in time ~ length^a."""
    xs = [math.log(n) for n in lengths]
    ys = [math.log(s) for s in seconds]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return float("nan")
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread


def run_speed_vs_length(
    config: DiagnosticsConfig, output_dir: str | Path, device: torch.device, command: str
) -> dict[str, Any]:
    """Time every model at every length; writes speed_vs_length.json, .png and summary.md."""
    started = time.perf_counter()
    speed = config.speed_vs_length
    max_length = max(speed.lengths)
    generator = torch.Generator().manual_seed(config.seed)
    inputs = {
        length: torch.randint(0, speed.vocab_size, (speed.batch_size, length), generator=generator).to(device)
        for length in speed.lengths
    }
    results = {}
    for name in speed.models:
        hidden_size = matched_hidden_size(name, speed.target_parameters, speed.vocab_size, speed.shape, max_length)
        model = build_model(name, speed.vocab_size, hidden_size, speed.shape, max_length, config.seed).to(device)
        timings = [time_training_step(model, inputs[n], speed.repeats, speed.warmup, device) for n in speed.lengths]
        fastest = [t[HEADLINE] for t in timings]
        results[name] = {
            "label": MODEL_PRESETS[name].label,
            "family": MODEL_PRESETS[name].family,
            "hidden_size": hidden_size,
            "parameters": count_parameters(model),
            "seconds": {key: [round(t[key], 6) for t in timings] for key in timings[0]},
            "tokens_per_second": [round(speed.batch_size * n / s) for n, s in zip(speed.lengths, fastest)],
            "loglog_slope": round(loglog_slope(speed.lengths, fastest), 3),
        }
        del model
    payload = {
        "diagnostic": "speed_vs_length",
        "description": "wall time of one forward + backward (next-token loss) against sequence length",
        "lengths": speed.lengths,
        "batch_size": speed.batch_size,
        "device": str(device),
        "config": config.to_dict()["speed_vs_length"] | {"seed": config.seed},
        "models": results,
    }
    payload["provenance"] = provenance(device, command, time.perf_counter() - started)
    write_outputs(Path(output_dir), "speed_vs_length", payload, speed_summary(payload), plot_speed(payload))
    return payload


def speed_findings(payload: dict[str, Any]) -> list[str]:
    lengths = payload["lengths"]
    models = payload["models"]
    lines = []
    for entry in models.values():
        seconds = entry["seconds"][HEADLINE]
        lines.append(
            f"**{entry['label']}**: {seconds[0] * 1000:.1f} ms at L = {lengths[0]}, {seconds[-1] * 1000:.1f} ms at "
            f"L = {lengths[-1]} (x{seconds[-1] / seconds[0]:.1f} for x{lengths[-1] / lengths[0]:.0f} the length; "
            f"fitted time ~ L^{entry['loglog_slope']:.2f})."
        )
    decoder = models.get("decoder")
    recurrent = {name: e for name, e in models.items() if e["family"] == "recurrent"}
    if decoder and recurrent:
        for index in (0, len(lengths) - 1):
            ratios = ", ".join(
                f"{e['label']} {e['seconds'][HEADLINE][index] / decoder['seconds'][HEADLINE][index]:.2f}x"
                for e in recurrent.values()
            )
            lines.append(f"At L = {lengths[index]}, recurrent time relative to the decoder: {ratios}.")
        faster = [
            e["label"] for e in recurrent.values() if e["seconds"][HEADLINE][-1] < decoder["seconds"][HEADLINE][-1]
        ]
        if faster:
            lines.append(
                f"The claim that the Transformer trains faster does not hold here at L = {lengths[-1]} against: "
                + ", ".join(faster)
                + "."
            )
        else:
            lines.append(f"The decoder is the fastest model at L = {lengths[-1]}, as the seeds claim.")
    return lines


def speed_summary(payload: dict[str, Any]) -> str:
    lengths = payload["lengths"]
    config = payload["config"]
    on_gpu = payload["device"].startswith("cuda")
    rows = [
        [entry["label"], entry["hidden_size"], f"{entry['parameters']['non_embedding']:,}"]
        + [f"{s * 1000:.1f}" for s in entry["seconds"][HEADLINE]]
        + [f"{entry['loglog_slope']:.2f}"]
        for entry in payload["models"].values()
    ]
    medians = [
        [entry["label"]]
        + [
            f"{t * 1000:.1f} ({f * 1000:.1f} + {b * 1000:.1f})"
            for t, f, b in zip(
                entry["seconds"]["total_median"],
                entry["seconds"]["forward_median"],
                entry["seconds"]["backward_median"],
            )
        ]
        for entry in payload["models"].values()
    ]
    throughput = [
        [entry["label"]] + [f"{t:,}" for t in entry["tokens_per_second"]] for entry in payload["models"].values()
    ]
    text = [
        "# Speed against sequence length: recurrence vs attention",
        "",
        "What was measured: wall time of one training step (forward with next-token loss, then backward) "
        f"on random tokens, batch {payload['batch_size']}, for sequence lengths {lengths}, on "
        f"{'the GPU' if on_gpu else 'the CPU'} ({payload['provenance']['machine'].get('gpu') or payload['provenance']['machine']['cpu']}). "
        f"Every model has {plural(config['shape']['num_hidden_layers'], 'layer')} and about "
        f"{config['target_parameters']:,} non-embedding parameters; the fastest of {config['repeats']} timed runs "
        f"after {config['warmup']} warm-up run(s) (medians below as well).",
        "",
        "![speed against length](speed_vs_length.png)",
        "",
        "## Findings",
        "",
        *[f"- {line}" for line in speed_findings(payload)],
        "",
    ]
    if not on_gpu:
        text += [
            "On a CPU with one thread there is no parallel hardware for attention to use, so this run tests "
            "the cost of the operations, not the parallelism claim itself. GPU results are not measured "
            "yet: run `python scripts/diagnose.py speed-vs-length --config configs/diagnostics/gpu.yaml "
            "--device cuda --output_dir results/diagnostics/speed_vs_length_gpu`.",
            "",
        ]
    text += [
        "## Forward + backward time (ms, fastest run)",
        "",
        markdown_table(
            ["model", "hidden size", "non-embedding params"] + [f"L={n}" for n in lengths] + ["slope (log-log)"], rows
        ),
        "## Median time (ms): total (forward + backward)",
        "",
        markdown_table(["model"] + [f"L={n}" for n in lengths], medians),
        "## Training throughput (tokens/s, fastest run)",
        "",
        markdown_table(["model"] + [f"L={n}" for n in lengths], throughput),
        provenance_markdown(payload["provenance"]),
    ]
    return "\n".join(text)


def plot_speed(payload: dict[str, Any]):
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(8, 5))
    for entry in payload["models"].values():
        style = "-" if entry["family"] == "recurrent" else "--"
        ax.plot(
            payload["lengths"],
            [s * 1000 for s in entry["seconds"][HEADLINE]],
            style,
            marker="o",
            label=f"{entry['label']} (slope {entry['loglog_slope']:.2f})",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("forward + backward time (ms)")
    ax.set_title(f"One training step against length ({payload['device']}, batch {payload['batch_size']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure
