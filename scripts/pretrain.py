"""Pretrain a seqlab language model (causal LM for recurrent/decoder, masked LM for encoder).

    accelerate launch scripts/pretrain.py --config configs/pretrain/decoder-tiny.yaml [--key value ...]
    python scripts/pretrain.py --config configs/pretrain/decoder-tiny.yaml --max_steps 50 --output_dir runs/x

Any recipe key can be overridden (``--model.hidden_size 64`` for nested keys); ``--help`` lists them.
Continue a run with ``--resume_from_checkpoint latest``.
"""

from __future__ import annotations

import json
import os
import sys

from seqlab.errors import run_cli


def main(argv: list[str] | None = None) -> None:
    import seqlab  # noqa: F401  (registers the model families with the Auto classes)
    from seqlab.training import PretrainingArgs, args_from_argv, run_pretraining

    args = args_from_argv(PretrainingArgs, sys.argv[1:] if argv is None else argv, description=__doc__)
    metrics = run_pretraining(args)
    summary = {
        k: metrics[k] for k in ("family", "step", "eval_loss", "eval_perplexity", "stopped_at_step") if k in metrics
    }
    if int(os.environ.get("RANK", "0")) == 0:  # one summary, not one per process
        print(json.dumps(summary))


if __name__ == "__main__":
    run_cli(main)
