"""The Gradio demo: LSTM vs Transformers side by side, on an experiment's output folder.

    python scripts/demo.py --run_dir runs/transfer_gap_tiny [--host 127.0.0.1] [--port 7860]

Needs the demo extra: pip install -e ".[demo]". `make demo` runs this on the README main job's output.
"""

import argparse
from pathlib import Path

from seqlab.errors import SeqlabUsageError, run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_dir", default="runs/transfer_gap_tiny", help="output folder of scripts/transfer_gap.py")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args()
    if not Path(args.run_dir).is_dir():
        raise SeqlabUsageError(
            f"--run_dir {args.run_dir} does not exist: `make experiment` writes "
            "runs/transfer_gap_tiny, or pass the --output_dir of scripts/transfer_gap.py."
        )
    try:
        from seqlab.demo.app import launch
    except ImportError as error:
        raise SeqlabUsageError(
            f'the demo needs its extra ({error.name} is missing): pip install -e ".[demo]"'
        ) from None
    launch(args.run_dir, args.host, args.port)


if __name__ == "__main__":
    run_cli(main)
