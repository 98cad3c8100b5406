"""Decoding throughput: new tokens per second of greedy ``generate``, with and without the cache.

- ``decoder-generate-vs-gpt2``: seqlab decoder (KV cache) against HF ``GPT2LMHeadModel.generate``
  (KV cache), the same prompts, sizes and number of new tokens.
- ``decoder-generate-cache``: the decoder with its KV cache against itself recomputing the whole
  sequence at every step (``use_cache=False``).
- ``recurrent-generate-cache``: the LSTM carrying its recurrent state against re-reading the sequence.

Every run produces exactly ``new_tokens`` tokens per sequence (``min_new_tokens`` keeps ``</s>`` from
stopping it early). When the prompt plus ``new_tokens`` exceed a decoder's learned positions, the decoder (and
GPT-2 beside it) is built with just enough positions for them, recorded in the entry's ``model_config`` and
``positions_widened_from``. On CUDA the models run in bf16.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .inputs import token_blocks
from .references import gpt2_reference
from .report import device_label, make_entry, ratio_target
from .settings import Settings, load_model_config
from .timing import interleaved_seconds, peak_step_bytes, rates, resident_bytes, top_operators


def _prepare(model: torch.nn.Module, settings: Settings) -> torch.nn.Module:
    model.eval().to(settings.device)
    if settings.precision == "bf16":
        model.to(torch.bfloat16)
    return model


def _generate_step(model, prompts: torch.Tensor, new_tokens: int, use_cache: bool, pad_token_id: int):
    attention_mask = torch.ones_like(prompts)

    @torch.inference_mode()
    def step() -> None:
        model.generate(
            input_ids=prompts,
            attention_mask=attention_mask,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            use_cache=use_cache,
            pad_token_id=pad_token_id,
        )

    return step


def _fit_positions(config, settings: Settings) -> int | None:
    """Widen learned positional encodings to ``prompt_len + new_tokens`` if they are shorter; the old size or None.

    The benchmark measures decoding speed at a fixed number of new tokens (256 for the cache targets), whatever
    the position table of the size file; a longer table changes nothing else about a decoding step."""
    needed = settings.prompt_len + settings.new_tokens
    if config.position_embedding_type != "learned" or config.max_position_embeddings >= needed:
        return None
    widened_from = config.max_position_embeddings
    config.max_position_embeddings = needed
    return widened_from


def _group_entries(
    family: str,
    models: dict[str, tuple[torch.nn.Module, bool]],
    comparisons: list[tuple[str, str, str]],
    settings: Settings,
    prompts: torch.Tensor,
    new_tokens: int,
    config: dict,
    pad_token_id: int,
    versions: dict,
    positions_widened_from: int | None = None,
) -> list[dict]:
    """Time every candidate of a family together (interleaved), then pair them up into entries."""
    steps: dict[str, Callable[[], None]] = {
        name: _generate_step(model, prompts, new_tokens, use_cache, pad_token_id)
        for name, (model, use_cache) in models.items()
    }
    timings = interleaved_seconds(steps, settings.repeats, warmup=1, steps_per_repeat=1, device=settings.device)
    produced = prompts.shape[0] * new_tokens
    sides = {}
    for name, (model, use_cache) in models.items():
        sides[name] = {
            "model": f"{type(model).__name__} ({'cached' if use_cache else 'uncached'})",
            **rates(produced, timings, name, settings.device),
            "peak_memory_bytes": peak_step_bytes(steps[name], settings.device, resident_bytes(model)),
            "use_cache": use_cache,
        }
        if settings.profile:
            sides[name]["profile"] = top_operators(steps[name], settings.device, steps=1)
    run_config = {
        "family": family,
        "size": settings.size,
        "precision": settings.precision,
        "batch_size": prompts.shape[0],
        "prompt_len": prompts.shape[1],
        "new_tokens": new_tokens,
        "decoding": "greedy",
        "model_config": config,
    }
    if positions_widened_from is not None:
        run_config["positions_widened_from"] = positions_widened_from
    return [
        make_entry(
            name,
            sides[seqlab_name],
            sides[reference_name],
            run_config,
            device_label(settings.device),
            versions,
            target=None if settings.quick else ratio_target(name, settings.device, settings.size),
        )
        for name, seqlab_name, reference_name in comparisons
    ]


def run_generate_suite(settings: Settings, tokenizer, versions: dict) -> list[dict]:
    from .. import DecoderForCausalLM, RecurrentForCausalLM
    from ..tokenizer import token_config_kwargs

    token_kwargs = {**token_config_kwargs(tokenizer), "vocab_size": max(settings.shape.vocab_size, len(tokenizer))}
    prompts = token_blocks(tokenizer, settings.generate_batch_size, settings.prompt_len).to(settings.device)
    entries: list[dict] = []
    if "decoder" in settings.families:
        config = load_model_config(
            "decoder", settings.size, settings.config_dir, **token_kwargs, attn_implementation="sdpa"
        )
        widened_from = _fit_positions(config, settings)
        torch.manual_seed(0)
        decoder = _prepare(DecoderForCausalLM(config), settings)
        gpt2 = _prepare(gpt2_reference(config), settings)
        models = {"seqlab-cached": (decoder, True), "seqlab-uncached": (decoder, False), "gpt2-cached": (gpt2, True)}
        comparisons = [
            ("decoder-generate-vs-gpt2", "seqlab-cached", "gpt2-cached"),
            ("decoder-generate-cache", "seqlab-cached", "seqlab-uncached"),
        ]
        entries += _group_entries(
            "decoder",
            models,
            comparisons,
            settings,
            prompts,
            settings.new_tokens,
            config.to_diff_dict(),
            tokenizer.pad_token_id,
            versions,
            widened_from,
        )
    if "recurrent" in settings.families:
        config = load_model_config("recurrent", settings.size, settings.config_dir, **token_kwargs)
        # generate refuses sequences beyond max_position_embeddings; no recurrent weight depends on it
        config.max_position_embeddings = max(config.max_position_embeddings, settings.prompt_len + settings.new_tokens)
        torch.manual_seed(0)
        recurrent = _prepare(RecurrentForCausalLM(config), settings)
        models = {"seqlab-cached": (recurrent, True), "seqlab-uncached": (recurrent, False)}
        comparisons = [("recurrent-generate-cache", "seqlab-cached", "seqlab-uncached")]
        entries += _group_entries(
            "recurrent",
            models,
            comparisons,
            settings,
            prompts,
            settings.new_tokens,
            config.to_diff_dict(),
            tokenizer.pad_token_id,
            versions,
        )
    return entries
