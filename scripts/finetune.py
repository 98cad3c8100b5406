r"""Fine-tune a sequence classifier from a pretrained seqlab language model, or from scratch.

    accelerate launch scripts/finetune.py --config configs/finetune/sst2-tiny.yaml \
        --model_name_or_path runs/decoder-tiny --num_train_examples 100 --seed 1 --output_dir runs/ft
    python scripts/finetune.py --config configs/finetune/sst2-tiny.yaml --model_name_or_path scratch \
        --model_config configs/models/decoder-tiny.yaml --tokenizer_path runs/decoder-tiny ...

``--eval_file PATH`` (repeatable) scores the final classifier on any labelled TSV/CSV/JSONL file;
``--strategy full|freeze_body|ulmfit``; any other recipe key as ``--key value`` (``--help`` lists them).
A file ``--dataset`` has no evaluation split of its own: name the held-out rows with ``--eval_split dev.tsv``
(training rows are never scored as validation).
"""

from __future__ import annotations

import json
import os
import sys

from seqlab.errors import run_cli


def main(argv: list[str] | None = None) -> None:
    import seqlab  # noqa: F401  (registers the model families with the Auto classes)
    from seqlab.training import FinetuningArgs, args_from_argv, run_finetuning

    args = args_from_argv(FinetuningArgs, sys.argv[1:] if argv is None else argv, description=__doc__)
    metrics = run_finetuning(args)
    keys = (
        "family",
        "strategy",
        "num_train_examples",
        "step",
        "eval_accuracy",
        "eval_f1",
        "eval_files",
        "stopped_at_step",
    )
    summary = {k: metrics[k] for k in keys if k in metrics}
    if int(os.environ.get("RANK", "0")) == 0:  # one summary, not one per process
        print(json.dumps(summary))


if __name__ == "__main__":
    run_cli(main)
