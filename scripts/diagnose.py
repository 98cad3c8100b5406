"""Measure what the seeds claim on seqlab's own models.

    python scripts/diagnose.py gradient-flow   [--config configs/diagnostics/default.yaml] [--output_dir DIR] [--device cpu|cuda]
    python scripts/diagnose.py long-range      ...
    python scripts/diagnose.py speed-vs-length ...

Each writes <name>.json, <name>.png and summary.md (default folder: results/diagnostics/<name>/).
On a shared CPU set OMP_NUM_THREADS=1.
"""

from seqlab.diagnostics.cli import diagnose_main
from seqlab.errors import run_cli

if __name__ == "__main__":
    run_cli(diagnose_main)
