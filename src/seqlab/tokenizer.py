"""The one tokenizer every seqlab model family shares.

Tokenization turns text into the integer ids that the embedding layer looks up. Three kinds:

- ``"bpe"`` (default): byte-level BPE. Any text encodes without ``<unk>`` (the 256 bytes are the
  base alphabet) and decoding gives the exact text back.
- ``"wordpiece"``: BERT-style words split at whitespace and punctuation, sub-words marked ``##``.
- ``"char"``: one token per character, as in the next-letter examples of the RNN notes.

Whatever the kind, the special tokens are ``<pad> <s> </s> <unk> <mask>`` with ids 0..4, and the
post-processor adds ``<s>`` at the start only: it is the decoder's beginning-of-sequence token and the
encoder's classification token, while ``</s>`` separates packed pretraining documents. A prompt
therefore never ends in ``</s>`` and generation continues it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from .errors import SeqlabUsageError
from .files import publish_staged

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]
PAD, BOS, EOS, UNK, MASK = SPECIAL_TOKENS
TOKENIZER_KINDS = ("bpe", "wordpiece", "char")
# A tokenizer saved with a model truncates at that model's max_position_embeddings (fit_to_model, or
# train_tokenizer.py --model_config). One trained without naming its model gets the shortest position
# table of the shipped configs (the tiny ones), so `truncation=True` never lets through more tokens
# than a seqlab model takes: 1024 made a folder assembled with Trainer.save_model reject long texts.
DEFAULT_MODEL_MAX_LENGTH = 256
_BYTE_ALPHABET_SIZE = 256
# The largest vocabulary trained: 4x the largest in common use (about 256k tokens). The tokenizers trainer
# reserves memory for the whole vocabulary up front (2,000,000,000 asked for a 141 GB allocation and aborted the
# process), and an embedding of a million rows already outweighs every seqlab model.
MAX_VOCAB_SIZE = 1_048_576


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8000,
    kind: str = "bpe",
    min_frequency: int = 2,
    length: int | None = None,
    show_progress: bool = False,
    model_max_length: int = DEFAULT_MODEL_MAX_LENGTH,
) -> PreTrainedTokenizerFast:
    """Train a tokenizer of ``kind`` on ``texts`` (any iterable; read once) and wrap it for transformers.

    ``vocab_size`` counts the special tokens. ``min_frequency`` is the fewest occurrences a BPE merge
    or WordPiece sub-word needs; the ``char`` kind keeps every character seen (the most frequent
    ones when there are more than ``vocab_size - 5``, the rest become ``<unk>``). ``length`` is the
    number of texts, if known, for the progress bar. ``model_max_length`` is where ``truncation=True``
    cuts: the ``max_position_embeddings`` of the model the tokenizer is meant for.
    """
    _check_kind_and_size(kind, vocab_size)
    _check_model_max_length(model_max_length)
    if isinstance(texts, str):  # one text, not an iterable of its characters
        texts = [texts]
    seen = {"texts": 0}

    def counted(stream: Iterable[str]) -> Iterator[str]:
        for text in stream:
            seen["texts"] += 1
            yield text

    if kind == "char":
        stream = tqdm(texts, total=length, desc="Counting characters", disable=not show_progress)
        backend = _train_char(counted(stream), vocab_size)
    else:
        backend, trainer = _untrained_subword(kind, vocab_size, min_frequency, show_progress)
        backend.train_from_iterator(counted(texts), trainer=trainer, length=length)
    if seen["texts"] == 0:
        raise SeqlabUsageError("no texts to train the tokenizer on: pass at least one text")
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A {EOS} $B:1",
        special_tokens=[(BOS, SPECIAL_TOKENS.index(BOS)), (EOS, SPECIAL_TOKENS.index(EOS))],
    )
    return _wrap(backend, model_max_length)


def _check_kind_and_size(kind: str, vocab_size: int) -> None:
    if kind not in TOKENIZER_KINDS:
        raise SeqlabUsageError(f"unknown tokenizer kind {kind!r}; choose one of {', '.join(TOKENIZER_KINDS)}")
    smallest, why = {
        "bpe": (len(SPECIAL_TOKENS) + _BYTE_ALPHABET_SIZE, "the 5 special tokens and the 256 byte tokens"),
        "wordpiece": (len(SPECIAL_TOKENS) + 2, "the 5 special tokens, a character and its ## continuation"),
        "char": (len(SPECIAL_TOKENS) + 1, "the 5 special tokens and one character"),
    }[kind]
    if vocab_size < smallest:
        raise SeqlabUsageError(
            f"vocab_size={vocab_size} is too small for a {kind!r} tokenizer: it needs at least {smallest} "
            f"({why}); choose vocab_size >= {smallest}"
        )
    if vocab_size > MAX_VOCAB_SIZE:
        raise SeqlabUsageError(
            f"vocab_size={vocab_size} is above seqlab's limit of {MAX_VOCAB_SIZE:,} tokens (the trainer reserves "
            "memory for every entry up front, and common vocabularies hold 2k-256k tokens); choose a vocab_size of "
            f"at most {MAX_VOCAB_SIZE}"
        )


def _check_model_max_length(model_max_length: int) -> None:
    if isinstance(model_max_length, bool) or not isinstance(model_max_length, int) or model_max_length < 2:
        raise SeqlabUsageError(
            f"model_max_length={model_max_length!r} must be an integer >= 2 (the longest input the model takes); "
            "pass the model's max_position_embeddings"
        )


def _untrained_subword(kind: str, vocab_size: int, min_frequency: int, show_progress: bool):
    if kind == "bpe":
        backend = Tokenizer(models.BPE(unk_token=UNK))
        # No prefix space: decoding must give back exactly the text that was encoded.
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=show_progress,
        )
        return backend, trainer
    backend = Tokenizer(models.WordPiece(unk_token=UNK, continuing_subword_prefix="##"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        continuing_subword_prefix="##",
        # Each character of the alphabet also needs its "##" form; rarer characters become <unk>.
        limit_alphabet=(vocab_size - len(SPECIAL_TOKENS)) // 2,
        show_progress=show_progress,
    )
    return backend, trainer


def _train_char(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text)
    for token in SPECIAL_TOKENS:
        counts.pop(token, None)
    kept = sorted(counts, key=lambda ch: (-counts[ch], ch))[: vocab_size - len(SPECIAL_TOKENS)]
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    vocab.update({ch: len(SPECIAL_TOKENS) + i for i, ch in enumerate(sorted(kept))})
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Every character (newlines included) is its own pre-token; the word-level lookup maps it to an id.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(SPECIAL_TOKENS)
    return backend


def _wrap(backend: Tokenizer, model_max_length: int) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        mask_token=MASK,
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,  # keep decode(encode(text)) == text
        model_input_names=["input_ids", "attention_mask"],
    )


def train_tokenizer_from_sources(
    sources: str | Iterable[str],
    output_dir: str | os.PathLike,
    vocab_size: int = 8000,
    kind: str = "bpe",
    min_frequency: int = 2,
    max_texts: int | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    model_max_length: int = DEFAULT_MODEL_MAX_LENGTH,
) -> PreTrainedTokenizerFast:
    """Train on texts streamed from data keys or files and save the tokenizer to ``output_dir``.

    Evaluation splits are refused (the tokenizer is part of pretraining). The folder is written to a
    temporary sibling and renamed at the end, so a failed run leaves nothing half-written.
    """
    from .data.sources import iter_texts, refuse_evaluation_splits  # data imports stay out of model code

    sources = [sources] if isinstance(sources, str) else list(sources)
    _check_kind_and_size(kind, vocab_size)
    _check_model_max_length(model_max_length)
    refuse_evaluation_splits(sources, purpose="tokenizer training")
    output = Path(output_dir)
    if output.exists() and not overwrite and (not output.is_dir() or any(output.iterdir())):
        raise SeqlabUsageError(
            f"output folder {str(output)!r} already exists and is not empty; pick another --output_dir "
            "or pass --overwrite"
        )
    texts = iter_texts(sources, max_texts=max_texts)  # resolves every source now: bad keys fail early
    tokenizer = train_tokenizer(
        texts,
        vocab_size=vocab_size,
        kind=kind,
        min_frequency=min_frequency,
        length=max_texts,
        show_progress=show_progress,
        model_max_length=model_max_length,
    )
    save_atomically(tokenizer, output)
    return tokenizer


def save_atomically(tokenizer: PreTrainedTokenizerFast, output_dir: str | os.PathLike) -> None:
    """``save_pretrained`` into a temporary sibling folder, then move it into place."""
    output = Path(output_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    # A uniquely named sibling (same file system, so the rename is atomic); mkdir honours the umask.
    staging = output.parent / f".{output.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    with publish_staged(staging, output, replace=True):  # whatever is at output is replaced
        tokenizer.save_pretrained(staging)


_TOKENIZER_JSON_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


def check_tokenizer_json_files(folder: Path) -> None:
    """Name the tokenizer file that is not JSON: transformers' own error does not say which one it was."""
    for name in _TOKENIZER_JSON_FILES:
        file = folder / name
        if not file.is_file():
            continue
        try:
            json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise SeqlabUsageError(
                f"the tokenizer in {str(folder)!r} cannot be loaded ({name} is not valid JSON: {error}); copy the "
                "folder again from the run that wrote it, or train a new tokenizer with scripts/train_tokenizer.py"
            ) from None


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerFast:
    """Load a saved seqlab tokenizer folder (or a Hub repository id) with ``AutoTokenizer``."""
    folder = Path(path)
    if folder.is_dir():
        if not any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
            raise SeqlabUsageError(
                f"folder {str(folder)!r} holds no tokenizer (no tokenizer.json); train one with "
                f"scripts/train_tokenizer.py --output_dir {folder} or point to the right folder"
            )
        check_tokenizer_json_files(folder)
        try:
            return AutoTokenizer.from_pretrained(str(folder))
        except Exception as error:  # noqa: BLE001 - json, tokenizers and transformers all raise their own
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise SeqlabUsageError(
                f"the tokenizer in {str(folder)!r} cannot be loaded ({type(error).__name__}: {reason}); "
                "tokenizer.json or tokenizer_config.json is damaged: copy the folder again from the run that "
                "wrote it, or train a new tokenizer with scripts/train_tokenizer.py"
            ) from None
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as error:
        raise SeqlabUsageError(
            f"no tokenizer folder {str(path)!r} exists and it could not be loaded as a Hub repository "
            f"({type(error).__name__}); train one with scripts/train_tokenizer.py --output_dir {path} "
            "or fix the path"
        ) from None


def token_config_kwargs(tokenizer: PreTrainedTokenizerFast, include_mask: bool = False) -> dict[str, int]:
    """The config fields every model family takes from the tokenizer: vocabulary size and special ids.

    ``include_mask=True`` adds ``mask_token_id`` (masked language modelling).
    """
    kwargs = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if include_mask:
        kwargs["mask_token_id"] = tokenizer.mask_token_id
    missing = [name for name, value in kwargs.items() if value is None]
    if missing:
        raise SeqlabUsageError(
            f"the tokenizer has no {', '.join(missing)}; use a tokenizer from seqlab.tokenizer.train_tokenizer "
            f"(special tokens {' '.join(SPECIAL_TOKENS)})"
        )
    return kwargs


def check_vocab_compatible(tokenizer: PreTrainedTokenizerFast, config: Any) -> None:
    """Raise ``SeqlabUsageError`` unless ``config`` can embed every token id of ``tokenizer``.

    The model's vocabulary may be larger than the tokenizer's (padded), never smaller, and the
    special token ids must agree.
    """
    vocab_size = getattr(config, "vocab_size", None)
    if vocab_size is None or len(tokenizer) > vocab_size:
        raise SeqlabUsageError(
            f"the tokenizer has {len(tokenizer)} tokens but the model config has vocab_size={vocab_size}; "
            "build the config with seqlab.tokenizer.token_config_kwargs(tokenizer) or use the tokenizer "
            "the model was trained with"
        )
    names = ["pad_token_id", "bos_token_id", "eos_token_id"]
    if getattr(config, "mask_token_id", None) is not None:
        names.append("mask_token_id")
    for name in names:
        expected = getattr(tokenizer, name)
        actual = getattr(config, name, None)
        if actual != expected:
            raise SeqlabUsageError(
                f"the tokenizer's {name} is {expected} but the model config's is {actual}; build the config "
                "with seqlab.tokenizer.token_config_kwargs(tokenizer) or use the tokenizer the model was "
                "trained with"
            )


def fit_to_model(tokenizer: PreTrainedTokenizerFast, config: Any) -> PreTrainedTokenizerFast:
    """Set ``model_max_length`` to the model's ``max_position_embeddings`` before the pair is saved together,
    so that ``truncation=True`` (and pipelines) cut long texts where the model needs them cut.

    seqlab's own saves call it; call it yourself before saving a tokenizer beside a model by other means
    (``Trainer.save_model``, ``save_pretrained`` of both).
    """
    limit = getattr(config, "max_position_embeddings", None)
    if limit:
        tokenizer.model_max_length = int(limit)
    return tokenizer
