"""The transfer-gap experiment: pretrained vs from-scratch, recurrent vs Transformers, across label budgets.

    python scripts/transfer_gap.py --config configs/experiments/tiny.yaml [--output_dir DIR] [--jobs N]

Writes DIR/results.jsonl (one line per fine-tune), summary.md / summary.csv, accuracy_vs_labels.png,
gap.png and report.md. Rerunning the same command resumes: finished runs are not redone.
"""

import argparse

from seqlab.errors import run_cli
from seqlab.experiment import run_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="experiment YAML (configs/experiments/*.yaml)")
    parser.add_argument("--output_dir", help="default: runs/transfer_gap_<config name>")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="independent runs at once, one process and one thread each (default: the core count); "
        "results are the same for any value",
    )
    args = parser.parse_args()
    output_dir = run_experiment(args.config, args.output_dir, jobs=args.jobs)
    print(f"report: {output_dir / 'report.md'}")


if __name__ == "__main__":
    run_cli(main)
