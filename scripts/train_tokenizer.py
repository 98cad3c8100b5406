"""Train the shared seqlab tokenizer on data keys or text files and save it as a transformers folder.

    python scripts/train_tokenizer.py --dataset general_english --dataset imdb:unsup \
        --vocab_size 16000 --output_dir runs/tokenizer-16k

Evaluation splits (``sst2:validation``) are refused: evaluation texts never enter pretraining.
"""

from __future__ import annotations

import argparse

from seqlab.errors import run_cli
from seqlab.tokenizer import DEFAULT_MODEL_MAX_LENGTH, TOKENIZER_KINDS, train_tokenizer_from_sources


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", action="append", required=True,
                        help="data key, key:split or file path; repeat to combine sources")
    parser.add_argument("--vocab_size", type=int, default=8000, help="tokens including the 5 special tokens")
    parser.add_argument("--output_dir", required=True, help="folder to write (save_pretrained layout)")
    parser.add_argument("--kind", choices=TOKENIZER_KINDS, default="bpe")
    parser.add_argument("--max_texts", type=int, default=None, help="stop after this many texts (all sources)")
    parser.add_argument("--min_frequency", type=int, default=2, help="fewest occurrences of a merge or sub-word")
    parser.add_argument("--model_max_length", type=int, default=DEFAULT_MODEL_MAX_LENGTH)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tokenizer = train_tokenizer_from_sources(
        args.dataset,
        args.output_dir,
        vocab_size=args.vocab_size,
        kind=args.kind,
        min_frequency=args.min_frequency,
        max_texts=args.max_texts,
        overwrite=args.overwrite,
        model_max_length=args.model_max_length,
    )
    print(f"saved a {args.kind} tokenizer with {len(tokenizer)} tokens to {args.output_dir}")


if __name__ == "__main__":
    run_cli(main)
