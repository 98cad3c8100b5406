"""Language-model pretraining of any seqlab family from a recipe.

The objective follows the family: causal language modelling (predict the next token) for the
recurrent and decoder families, masked language modelling (predict hidden tokens from both sides)
for the encoder. Everything that can be wrong with a recipe is checked before ``output_dir`` is
created, so a refused run leaves nothing behind.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import SeqlabUsageError
from .args import TOKENIZER_TRAIN_KEYS, PretrainingArgs, check_bounds, check_budget, check_required
from .checkpointing import check_checkpoint_fits, resolve_resume
from .lock import OutputDirLock
from .loop import LoopSettings
from .optim import create_optimizer, create_scheduler, warmup_steps_for
from .recipe import resolve_args, resolve_path
from .resume import check_resume_settings
from .runtime import (
    build_model_config,
    check_tracker,
    create_output_dir,
    make_accelerator,
    model_positions,
    prepare_output_dir,
    release_accelerator,
    resolve_mixed_precision,
    seeded_generator,
)
from .session import finish, run_session, save_model_fn
from .test_hooks import with_test_hooks


def validate_pretraining_args(args: PretrainingArgs) -> None:
    """Checks that need no data, model or tokenizer (cheap; run first)."""
    check_required(args, ("model_config", "tokenizer_path", "datasets", "output_dir"))
    check_budget(args)
    check_bounds(args)
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
    check_tracker(args.report_to)
    resolve_mixed_precision(args.mixed_precision)


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


def budget_to_steps(args: PretrainingArgs, batches_per_epoch: int, num_processes: int) -> int:
    """Optimizer steps from max_steps, a token budget, or a number of epochs."""
    from .loop import steps_per_epoch

    if args.max_steps:
        return int(args.max_steps)
    if args.max_train_tokens:
        tokens_per_step = (
            args.per_device_train_batch_size * args.gradient_accumulation_steps * num_processes * args.max_seq_length
        )
        return max(1, math.ceil(args.max_train_tokens / tokens_per_step))
    epochs = float(args.num_train_epochs or 1.0)
    return max(1, math.ceil(epochs * steps_per_epoch(batches_per_epoch, args.gradient_accumulation_steps)))


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


def run_pretraining(recipe: PretrainingArgs | Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """Pretrain a language model as ``recipe`` says; returns the metrics also written to metrics.json.

    ``recipe`` is ``PretrainingArgs`` or a mapping of recipe keys whose ``config`` key (a YAML file) is loaded
    underneath; keyword ``overrides`` go on top, e.g.
    ``run_pretraining({"config": "configs/pretrain/decoder-tiny.yaml"}, max_steps=20, output_dir="runs/x")``.
    A run stopped by the ``SEQLAB_DEBUG_STOP_AFTER_STEPS`` test hook returns ``{"stopped_at_step": N, ...}`` and
    saves no model.
    """
    args = resolve_args(PretrainingArgs, recipe, overrides or None)
    validate_pretraining_args(args)
    accelerator = make_accelerator(args)
    try:
        with OutputDirLock(args.output_dir, accelerator) as lock:
            return _pretrain(accelerator, args, lock)
    finally:
        release_accelerator(accelerator)


def _pretrain(accelerator, args: PretrainingArgs, lock: OutputDirLock) -> dict[str, Any]:
    import torch
    from accelerate.utils import send_to_device, set_seed
    from torch.utils.data import DataLoader

    from ..data import CausalLMCollator, MaskedLMCollator, build_pretraining_dataset
    from ..models import FAMILIES
    from ..tokenizer import check_vocab_compatible
    from .evaluation import cap_for_evaluation, evaluate_causal_lm, evaluate_masked_lm

    # 1. Everything that can refuse the run, before anything is written to output_dir.
    checkpoint = resolve_resume(args.resume_from_checkpoint, args.output_dir)
    resuming = bool(args.resume_from_checkpoint)  # also a run killed before its first checkpoint
    output_dir = prepare_output_dir(args.output_dir, args.overwrite_output_dir, resuming)
    lock.acquire()  # an existing folder: refuse at once if another run is using it
    tokenizer = obtain_tokenizer(accelerator, args)
    family, config = build_model_config(args.model_config, args.model or {}, tokenizer, args)
    check_vocab_compatible(tokenizer, config)
    check_sequence_length(family, config, args.max_seq_length)
    objective = FAMILIES[family].objective
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
    train_set = corpus["train"]
    batch_size = args.per_device_train_batch_size
    if len(train_set) < batch_size * accelerator.num_processes:
        raise SeqlabUsageError(
            f"the training corpus holds {len(train_set)} blocks of {args.max_seq_length} tokens, fewer than one "
            f"batch ({batch_size} x {accelerator.num_processes} processes); lower per_device_train_batch_size, "
            "raise max_corpus_tokens or add datasets"
        )

    # 2. Model, data loaders, optimizer and schedule.
    if objective == "masked":
        # the vocabulary projection at the masked tokens only (~15%), where most of a step's time would go; the
        # loss is the same, and the saved folder gets the default back (see _saved_with_full_logits)
        config.sparse_prediction = True
    set_seed(args.seed)  # the same initial weights on every process
    model = FAMILIES[family].lm_class(config)
    set_seed(args.seed, device_specific=True)  # dropout and masking differ between processes
    batch_transform = None
    if objective == "causal":
        train_collator = eval_collator = CausalLMCollator(pad_token_id=tokenizer.pad_token_id)
    else:
        # Training masks are drawn in the loop from the global (checkpointed) generator, see loop.train;
        # evaluation masks from a private generator reseeded before each evaluation: the same every time.
        train_collator = _pad_only(tokenizer.pad_token_id)
        masker = MaskedLMCollator(tokenizer, mask_rate=args.mlm_probability)
        eval_collator = MaskedLMCollator(tokenizer, mask_rate=args.mlm_probability, seed=args.seed)

        def batch_transform(batch: dict) -> dict:
            input_ids, labels = masker.mask_tokens(batch["input_ids"])
            masked = {**batch, "input_ids": input_ids, "labels": labels}
            return send_to_device(masked, accelerator.device)

    train_dataloader = DataLoader(
        train_set,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,  # every step sees the same number of tokens
        collate_fn=train_collator,
        generator=seeded_generator(args.seed),
        num_workers=args.dataloader_num_workers,
    )
    eval_batch_size = args.per_device_eval_batch_size or batch_size
    eval_set = cap_for_evaluation(
        corpus["validation"], args.max_eval_batches, eval_batch_size, accelerator.num_processes
    )
    eval_dataloader = (
        DataLoader(
            eval_set,
            batch_size=eval_batch_size,
            shuffle=False,
            collate_fn=eval_collator,
            num_workers=args.dataloader_num_workers,
        )
        if len(eval_set)
        else None
    )
    optimizer = create_optimizer(
        model,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        device=accelerator.device,
    )
    # Masked-LM batches stay on the CPU until masked (the masker works on CPU tensors).
    model, optimizer = accelerator.prepare(model, optimizer)
    train_dataloader = accelerator.prepare_data_loader(train_dataloader, device_placement=batch_transform is None)
    if eval_dataloader is not None:
        eval_dataloader = accelerator.prepare_data_loader(eval_dataloader)
    max_steps = budget_to_steps(args, len(train_dataloader), accelerator.num_processes)
    scheduler = create_scheduler(
        args.lr_scheduler_type,
        optimizer.optimizer,
        num_training_steps=max_steps,
        num_warmup_steps=warmup_steps_for(max_steps, args.warmup_steps, args.warmup_ratio),
    )

    def evaluate() -> dict[str, Any]:
        if eval_dataloader is None:
            return {}
        if objective == "causal":
            return evaluate_causal_lm(accelerator, model, eval_dataloader)
        eval_collator.generator.manual_seed(args.seed + accelerator.process_index)  # same masks every time
        return evaluate_masked_lm(accelerator, model, eval_dataloader)

    # 3. Train.
    if checkpoint is not None:
        check_checkpoint_fits(checkpoint, accelerator.unwrap_model(model))
    check_resume_settings(args, checkpoint)
    lock.acquire(create=True)
    create_output_dir(accelerator, output_dir, args.overwrite_output_dir, resuming, args)
    settings = with_test_hooks(LoopSettings.from_recipe(args, max_steps, output_dir))
    session = run_session(
        accelerator,
        args,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        train_dataloader=train_dataloader,
        settings=settings,
        output_dir=output_dir,
        checkpoint=checkpoint,
        evaluate_fn=evaluate,
        final_evaluate_fn=evaluate,
        save_model=_saved_with_full_logits(
            save_model_fn(accelerator, model, tokenizer, output_dir, args.save_model),
            accelerator.unwrap_model(model).config,
        ),
        batch_transform=batch_transform,
    )
    loop = session.loop
    metrics: dict[str, Any] = {
        "family": family,
        "objective": f"{objective}_lm",
        "step": loop.progress.step,
        "max_steps": max_steps,
        "epoch": loop.progress.epoch + loop.progress.batches_in_epoch / max(len(train_dataloader), 1),
        "tokens_seen": loop.progress.tokens_seen,
        "train_loss": loop.train_loss,
        "skipped_nonfinite_steps": loop.progress.skipped_steps,
        "train_seconds": loop.seconds,
        "train_tokens_per_second": loop.tokens_per_second,
        "num_parameters": sum(p.numel() for p in accelerator.unwrap_model(model).parameters()),
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "train_blocks": len(train_set),
        "eval_blocks": len(eval_set),
        "max_seq_length": args.max_seq_length,
        "device": str(accelerator.device) if accelerator.device.type != "cuda" else torch.cuda.get_device_name(),
    }
    if session.final_scores is None:
        metrics["stopped_at_step"] = loop.progress.step
        return metrics
    metrics.update({f"eval_{k}": v for k, v in session.final_scores.items()})
    finish(accelerator, output_dir, metrics)
    return metrics
