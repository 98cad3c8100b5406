"""Benchmark seqlab against the reference a user would pick instead, at identical sizes.

    python scripts/benchmark.py --suite train --device cpu --size tiny --json results/benchmarks/cpu-tiny-train.json
    python scripts/benchmark.py --suite generate --device cuda --size small
    python scripts/benchmark.py --suite data --quick

Suites: train (tokens/s of forward+backward+AdamW: decoder vs GPT2LMHeadModel, encoder vs
BertForMaskedLM, LSTM vs a plain nn.LSTM LM), generate (decoded tokens/s, cached vs uncached, decoder
vs GPT-2), data (tokenize + pack throughput). seqlab and reference run in one process with interleaved
repetitions; the median is reported with the ratio. On CPU set OMP_NUM_THREADS (1 on a shared machine).
"""

from __future__ import annotations

import argparse

from seqlab.benchmark import DEVICES, FAMILIES, SIZES, SUITES, resolve_settings, run_benchmark
from seqlab.benchmark.report import markdown_table
from seqlab.errors import run_cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=SUITES, required=True)
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--size", choices=SIZES, default="tiny", help="configs/models/<family>-<size>.yaml")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds (small shapes)")
    parser.add_argument("--json", dest="json_path", default=None, help="write the result document here")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also measure torch.compile (default: on CUDA only)",
    )
    parser.add_argument(
        "--family",
        action="append",
        choices=FAMILIES,
        default=None,
        help="only these model families (repeatable; default: all)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions per candidate")
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--seq_len", type=int, default=None, help="tokens per sequence (data: block size)")
    parser.add_argument("--new_tokens", type=int, default=None, help="generate: tokens to decode")
    parser.add_argument("--num_proc", type=int, nargs="+", default=None, help="data: worker counts to measure")
    parser.add_argument("--max_tokens", type=int, default=None, help="data: token budget (default by device)")
    parser.add_argument("--tokenizer", default=None, help="a saved seqlab tokenizer (default: train one)")
    parser.add_argument("--config_dir", default=None, help="folder of the model size files")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="train/generate: also record each candidate's top operators (torch.profiler)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = resolve_settings(
        args.suite, device=args.device, size=args.size, quick=args.quick, compile=args.compile,
        repeats=args.repeats, batch_size=args.batch_size, seq_len=args.seq_len, new_tokens=args.new_tokens,
        num_proc=args.num_proc, max_tokens=args.max_tokens, tokenizer_path=args.tokenizer,
        config_dir=args.config_dir, families=args.family, profile=args.profile,
    )  # fmt: skip
    document = run_benchmark(settings, args.json_path)
    print(markdown_table(document))
    if args.json_path:
        print(f"wrote {args.json_path}")


if __name__ == "__main__":
    run_cli(main)
