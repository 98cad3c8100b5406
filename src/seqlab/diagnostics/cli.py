"""Command lines of the diagnostics: `scripts/diagnose.py` and `scripts/worked_example.py` call these."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from .config import load_config
from .report import command_line, resolve_device

# command name -> config section, which is also the name of the output folder and files
COMMANDS = {
    "gradient-flow": "gradient_flow",
    "long-range": "long_range",
    "speed-vs-length": "speed_vs_length",
}
DEFAULT_OUTPUT_ROOT = Path("results") / "diagnostics"


def _runner(section: str) -> Callable:
    if section == "gradient_flow":
        from .gradient_flow import run_gradient_flow

        return run_gradient_flow
    if section == "long_range":
        from .long_range import run_long_range

        return run_long_range
    from .speed import run_speed_vs_length

    return run_speed_vs_length


def diagnose_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diagnose.py",
        description="Measure what the seeds claim on seqlab's own models: vanishing gradients "
        "(gradient-flow), long-range memory (long-range) and parallelism (speed-vs-length).",
    )
    parser.add_argument("diagnostic", choices=list(COMMANDS), help="which measurement to run")
    parser.add_argument(
        "--config",
        default=None,
        help="diagnostics YAML (configs/diagnostics/tiny|default|gpu.yaml); default: the CPU default size",
    )
    parser.add_argument(
        "--output_dir",
        default=None,
        help="folder for the JSON, PNG and summary.md (default: results/diagnostics/<diagnostic>)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    return parser


def diagnose_main(argv: list[str] | None = None) -> int:
    args = diagnose_parser().parse_args(argv)
    section = COMMANDS[args.diagnostic]
    config = load_config(args.config)
    device = resolve_device(args.device)
    output_dir = Path(args.output_dir) if args.output_dir else DEFAULT_OUTPUT_ROOT / section
    started = time.perf_counter()
    _runner(section)(config, output_dir, device, command_line())
    print(
        f"{args.diagnostic}: wrote {output_dir}/{section}.json, {section}.png and summary.md "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return 0


def worked_example_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="worked_example.py",
        description="Walk through the seed's worked example (000, Part 1) with the real RecurrentForCausalLM: "
        "h_1..h_3, logits, softmax, loss and the first BPTT gradients from autograd, next to the seed's numbers.",
    )
    parser.add_argument(
        "--output_dir",
        default=None,
        help="also write worked_example.json and summary.md (with provenance) into this folder",
    )
    args = parser.parse_args(argv)
    from .worked_example import TOLERANCE, render, walk_through, write_worked_example

    started = time.perf_counter()
    steps = walk_through()
    text = render(steps)
    print(text)
    if args.output_dir:
        write_worked_example(steps, text, Path(args.output_dir), command_line(), time.perf_counter() - started)
    return 0 if all(step.difference <= TOLERANCE for step in steps) else 1
