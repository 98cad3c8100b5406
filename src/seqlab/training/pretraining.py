"""Language-model pretraining of any seqlab family from a recipe.

The objective follows the family: causal language modelling (predict the next token) for the
recurrent and decoder families, masked language modelling (predict hidden tokens from both sides)
for the encoder. Everything that can be wrong with a recipe is checked before ``output_dir`` is
created, so a refused run leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import SeqlabUsageError
from .args import TOKENIZER_TRAIN_KEYS, PretrainingArgs, check_required
from .recipe import resolve_args, resolve_path
from .run import MAIN_EVAL, Job, Prepared, eval_batch_size, run_training, seeded_model
from .runtime import build_model_config, model_positions


def run_pretraining(recipe: PretrainingArgs | Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """Pretrain a language model as ``recipe`` says; returns the metrics also written to metrics.json.

    ``recipe`` is ``PretrainingArgs`` or a mapping of recipe keys whose ``config`` key (a YAML file) is loaded
    underneath; keyword ``overrides`` go on top, e.g.
    ``run_pretraining({"config": "configs/pretrain/decoder-tiny.yaml"}, max_steps=20, output_dir="runs/x")``.
    A run stopped by the ``stop_after_steps`` test hook (``test_hooks.py``) returns ``{"stopped_at_step": N, ...}``
    and saves no model.
    """
    args = resolve_args(PretrainingArgs, recipe, overrides or None)
    return run_training(args, validate_pretraining_args, pretraining_job)


def validate_pretraining_args(args: PretrainingArgs) -> None:
    """Checks of pretraining's own keys that need no data, model or tokenizer (cheap; run first)."""
    check_required(args, ("model_config", "tokenizer_path", "datasets", "output_dir"))
    if not 0.0 < args.mlm_probability < 1.0:
        raise SeqlabUsageError(f"mlm_probability must lie in (0, 1), got {args.mlm_probability!r}")
    train_spec = args.tokenizer_train
    if train_spec is not None:
        unknown = sorted(set(train_spec) - set(TOKENIZER_TRAIN_KEYS))
        if unknown:
            raise SeqlabUsageError(
                f"unknown tokenizer_train key(s) {', '.join(map(repr, unknown))}; valid keys: "
                f"{', '.join(TOKENIZER_TRAIN_KEYS)}"
            )
        if not train_spec.get("sources"):
            raise SeqlabUsageError("tokenizer_train needs `sources` (data keys or files to learn the vocabulary from)")


def pretraining_job(accelerator, args: PretrainingArgs) -> Job:
    """The language model of the recipe's family with its objective, on the packed corpus."""
    from ..models import FAMILIES
    from ..tokenizer import check_vocab_compatible
    from .evaluation import cap_for_evaluation

    tokenizer = obtain_tokenizer(accelerator, args)
    family, config = build_model_config(args.model_config, args.model or {}, tokenizer, args)
    check_vocab_compatible(tokenizer, config)
    check_sequence_length(family, config, args.max_seq_length)
    objective = FAMILIES[family].objective
    corpus = _packed_corpus(accelerator, args, tokenizer)
    if objective == "masked":
        # the vocabulary projection at the masked tokens only (~15%), where most of a step's time would go; the
        # loss is the same, and the saved folder gets the default back (see _saved_with_full_logits)
        config.sparse_prediction = True
    model = seeded_model(args.seed, lambda: FAMILIES[family].lm_class(config))
    eval_set = cap_for_evaluation(
        corpus["validation"], args.max_eval_batches, eval_batch_size(args), accelerator.num_processes
    )
    objective_parts = (_causal_lm if objective == "causal" else _masked_lm)(accelerator, args, tokenizer)
    return Job(
        model=model,
        tokenizer=tokenizer,
        train_set=corpus["train"],
        **objective_parts,
        eval_sets={MAIN_EVAL: eval_set} if len(eval_set) else {},
        drop_last=True,  # every step sees the same number of tokens
        tokens_per_sequence=args.max_seq_length,
        wrap_save=_saved_with_full_logits,
        facts={
            "family": family,
            "objective": f"{objective}_lm",
            "train_blocks": len(corpus["train"]),
            "eval_blocks": len(eval_set),
            "max_seq_length": args.max_seq_length,
        },
        report=lambda loop: {
            "tokens_seen": loop.progress.tokens_seen,
            "train_tokens_per_second": loop.tokens_per_second,
        },
    )


def _causal_lm(accelerator, args: PretrainingArgs, tokenizer) -> dict[str, Any]:
    """The Job parts of next-token prediction: collator and evaluation."""
    from ..data import CausalLMCollator
    from .evaluation import evaluate_causal_lm

    def evaluate(run: Prepared) -> dict[str, Any]:
        loader = run.eval_loaders.get(MAIN_EVAL)
        return {} if loader is None else evaluate_causal_lm(run.accelerator, run.model, loader)

    return {"collator": CausalLMCollator(pad_token_id=tokenizer.pad_token_id), "evaluate": evaluate}


def _masked_lm(accelerator, args: PretrainingArgs, tokenizer) -> dict[str, Any]:
    """The Job parts of masked-token prediction: collators, masking and evaluation.

    Training masks are drawn in the loop from the global (checkpointed) generator, see loop.train; evaluation
    masks from a private generator reseeded before each evaluation: the same every time.
    """
    from accelerate.utils import send_to_device

    from ..data import MaskedLMCollator
    from .evaluation import evaluate_masked_lm

    masker = MaskedLMCollator(tokenizer, mask_rate=args.mlm_probability)
    eval_collator = MaskedLMCollator(tokenizer, mask_rate=args.mlm_probability, seed=args.seed)

    def batch_transform(batch: dict) -> dict:
        input_ids, labels = masker.mask_tokens(batch["input_ids"])
        masked = {**batch, "input_ids": input_ids, "labels": labels}
        return send_to_device(masked, accelerator.device)

    def evaluate(run: Prepared) -> dict[str, Any]:
        loader = run.eval_loaders.get(MAIN_EVAL)
        if loader is None:
            return {}
        eval_collator.generator.manual_seed(args.seed + run.accelerator.process_index)  # same masks every time
        return evaluate_masked_lm(run.accelerator, run.model, loader)

    return {
        "collator": _pad_only(tokenizer.pad_token_id),
        "eval_collator": eval_collator,
        "batch_transform": batch_transform,
        "evaluate": evaluate,
    }


def _packed_corpus(accelerator, args: PretrainingArgs, tokenizer):
    """The datasets tokenized and packed into blocks of max_seq_length tokens (train and validation)."""
    from ..data import build_pretraining_dataset

    with accelerator.main_process_first():
        corpus = build_pretraining_dataset(
            tokenizer,
            args.datasets,
            max_seq_length=args.max_seq_length,
            validation_fraction=args.validation_fraction,
            max_tokens=args.max_corpus_tokens,
            num_proc=args.num_proc or 1,
            seed=args.seed,
        )
    batch_size = args.per_device_train_batch_size
    if len(corpus["train"]) < batch_size * accelerator.num_processes:
        raise SeqlabUsageError(
            f"the training corpus holds {len(corpus['train'])} blocks of {args.max_seq_length} tokens, fewer than "
            f"one batch ({batch_size} x {accelerator.num_processes} processes); lower per_device_train_batch_size, "
            "raise max_corpus_tokens or add datasets"
        )
    return corpus


def obtain_tokenizer(accelerator, args: PretrainingArgs):
    """Load ``tokenizer_path``; when it does not exist and ``tokenizer_train`` is given, train it there first."""
    from ..tokenizer import load_tokenizer, train_tokenizer_from_sources

    path = resolve_path(args.tokenizer_path, args)
    spec = args.tokenizer_train
    if not path.exists():
        if spec is None:
            raise SeqlabUsageError(
                f"tokenizer_path {str(path)!r} does not exist; train one with scripts/train_tokenizer.py, "
                "fix the path, or add a tokenizer_train mapping (sources, vocab_size, kind) to the recipe"
            )
        if accelerator.is_main_process:
            sources = spec["sources"]
            train_tokenizer_from_sources(
                [sources] if isinstance(sources, str) else list(sources),
                output_dir=path,
                vocab_size=int(spec.get("vocab_size", 8000)),
                kind=spec.get("kind", "bpe"),
                min_frequency=int(spec.get("min_frequency", 2)),
                max_texts=spec.get("max_texts"),
                show_progress=False,
                # the folder may be reused beside this model (Trainer, pipelines): truncate where it must
                model_max_length=model_positions(args.model_config, args.model, args),
            )
        accelerator.wait_for_everyone()
    return load_tokenizer(path)


def check_sequence_length(family: str, config, max_seq_length: int, key: str = "max_seq_length") -> None:
    """Transformers have a position table of ``max_position_embeddings`` rows; recurrences have none."""
    from ..models import FAMILIES

    if FAMILIES[family].has_position_table and max_seq_length > config.max_position_embeddings:
        raise SeqlabUsageError(
            f"{key}={max_seq_length} is above the model's max_position_embeddings={config.max_position_embeddings}; "
            f"lower --{key} or raise --model.max_position_embeddings"
        )


def _pad_only(pad_token_id: int):
    """Collate blocks into input_ids (+ attention_mask if padded); masking happens later, in the loop."""
    from ..data import pad_blocks

    def collate(features: list[dict]) -> dict:
        return pad_blocks([f["input_ids"] for f in features], pad_token_id)

    return collate


def _saved_with_full_logits(save, config):
    """``save`` writing ``sparse_prediction: false``: a user of the pretrained folder gets full ``(batch, length,
    vocab)`` masked-LM logits, as Trainer's ``compute_metrics`` recipes expect; sparse logits are a training
    speed-up of this loop only."""
    if save is None or not getattr(config, "sparse_prediction", False):
        return save

    def save_full():
        config.sparse_prediction = False
        try:
            save()
        finally:
            config.sparse_prediction = True

    return save_full
