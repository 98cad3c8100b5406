"""Train the shared seqlab tokenizer on data keys or text files and save it as a transformers folder.

    python scripts/train_tokenizer.py --dataset general_english --dataset imdb:unsup \
        --vocab_size 16000 --model_config configs/models/decoder-small.yaml --output_dir runs/tokenizer-16k

Evaluation splits (``sst2:validation``) are refused: evaluation texts never enter pretraining.
The tokenizer truncates (``truncation=True``, pipelines) at the model's ``max_position_embeddings``
when ``--model_config`` names the model; seqlab's training scripts re-fit it to each model they save.
"""

from __future__ import annotations

import argparse

from seqlab.errors import SeqlabUsageError, run_cli
from seqlab.tokenizer import DEFAULT_MODEL_MAX_LENGTH, TOKENIZER_KINDS, train_tokenizer_from_sources


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dataset", action="append", required=True, help="data key, key:split or file path; repeat to combine sources"
    )
    parser.add_argument(
        "--vocab_size", type=int, default=8000, help="tokens including the 5 special tokens (default: %(default)s)"
    )
    parser.add_argument("--output_dir", required=True, help="folder to write (save_pretrained layout)")
    parser.add_argument("--kind", choices=TOKENIZER_KINDS, default="bpe", help="(default: %(default)s)")
    parser.add_argument("--max_texts", type=int, default=None, help="stop after this many texts (all sources)")
    parser.add_argument(
        "--min_frequency", type=int, default=2, help="fewest occurrences of a merge or sub-word (default: %(default)s)"
    )
    parser.add_argument(
        "--model_config",
        default=None,
        help="model YAML or model folder the tokenizer is for: model_max_length becomes its max_position_embeddings",
    )
    parser.add_argument(
        "--model_max_length",
        type=int,
        default=None,
        help="longest input, where truncation=True cuts (default: the --model_config's "
        f"max_position_embeddings, else {DEFAULT_MODEL_MAX_LENGTH}, the tiny models' length)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    return parser.parse_args(argv)


def resolve_model_max_length(model_config: str | None, model_max_length: int | None) -> int:
    """The length the tokenizer truncates at: never more than the named model's position table."""
    if model_config is None:
        return DEFAULT_MODEL_MAX_LENGTH if model_max_length is None else model_max_length
    from seqlab.training.runtime import model_positions

    positions = model_positions(model_config)
    if model_max_length is not None and model_max_length > positions:
        raise SeqlabUsageError(
            f"--model_max_length {model_max_length} exceeds max_position_embeddings={positions} of {model_config}: "
            "the model would reject what the tokenizer lets through; lower --model_max_length or leave it out"
        )
    return positions if model_max_length is None else model_max_length


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    model_max_length = resolve_model_max_length(args.model_config, args.model_max_length)
    tokenizer = train_tokenizer_from_sources(
        args.dataset,
        args.output_dir,
        vocab_size=args.vocab_size,
        kind=args.kind,
        min_frequency=args.min_frequency,
        max_texts=args.max_texts,
        overwrite=args.overwrite,
        model_max_length=model_max_length,
    )
    print(
        f"saved a {args.kind} tokenizer with {len(tokenizer)} tokens (model_max_length {model_max_length}) "
        f"to {args.output_dir}"
    )


if __name__ == "__main__":
    run_cli(main)
