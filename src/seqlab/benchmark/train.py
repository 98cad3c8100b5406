"""Training throughput: tokens per second of one step (forward, backward, AdamW), seqlab against
its reference at identical sizes, eager and ``torch.compile``, bf16 autocast and fused AdamW on CUDA.

Pairs: decoder vs ``GPT2LMHeadModel`` (causal LM), encoder vs ``BertForMaskedLM`` (masked LM, the
same 15%-masked batches for both), LSTM vs the plain ``nn.LSTM`` language model. The step is the
benchmark's own, not seqlab's training loop, so that both models run exactly the same code around
their forward pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from .inputs import causal_lm_batches, masked_lm_batches, to_device, token_blocks
from .references import bert_reference, gpt2_reference, lstm_reference
from .report import device_label, make_entry, ratio_target
from .settings import Settings, load_model_config
from .timing import interleaved_seconds, peak_step_bytes, rates, resident_bytes, top_operators

NUM_BATCHES = 4  # distinct batches cycled through, so masks (and masked counts) vary between steps
# Dense bf16 tensor-core peak (FLOP/s) of the GPUs the project runs on, for model FLOPs utilisation.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def build_pair(family: str, settings: Settings, tokenizer) -> tuple[nn.Module, nn.Module, list[dict], dict]:
    """(seqlab model, reference model, batches, seqlab config as a dict) for one family."""
    from ..models import FAMILIES
    from ..tokenizer import token_config_kwargs

    record = FAMILIES[family]
    shape = settings.shape
    token_kwargs = {**token_config_kwargs(tokenizer), "vocab_size": max(shape.vocab_size, len(tokenizer))}
    extra = {"attn_implementation": "sdpa"} if record.has_position_table else {}  # the Transformers
    if record.objective == "masked":
        extra["sparse_prediction"] = True  # what seqlab's pretraining uses: logits at the masked tokens only
    config = load_model_config(family, settings.size, settings.config_dir, **token_kwargs, **extra)
    if record.has_position_table and shape.seq_len > config.max_position_embeddings:
        raise ValueError(
            f"--seq_len {shape.seq_len} exceeds max_position_embeddings={config.max_position_embeddings} of "
            f"{family}-{settings.size}; lower --seq_len"
        )
    blocks = token_blocks(tokenizer, NUM_BATCHES * shape.batch_size, shape.seq_len)
    torch.manual_seed(0)
    # the plain PyTorch / transformers model each family is compared with
    reference_for = {"decoder": gpt2_reference, "encoder": bert_reference, "recurrent": lstm_reference}[family]
    seqlab_model, reference = record.lm_class(config), reference_for(config)
    if record.objective == "masked":
        batches = masked_lm_batches(blocks, shape.batch_size, tokenizer)
    else:
        batches = causal_lm_batches(blocks, shape.batch_size)
    return seqlab_model, reference, batches, config.to_diff_dict()


def make_train_step(model: nn.Module, batches: list[dict], settings: Settings, compiled: bool):
    """A closure running one training step on the next batch; returns (step, optimizer)."""
    model.to(settings.device).train()
    on_gpu = settings.device == "cuda"
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True if on_gpu else None)
    forward = torch.compile(model) if compiled else model
    batches = to_device(batches, settings.device)
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
        if settings.precision == "bf16"
        else contextlib.nullcontext
    )
    position = {"next": 0}

    def step() -> None:
        batch = batches[position["next"] % len(batches)]
        position["next"] += 1
        with autocast():
            loss = forward(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, optimizer


def model_flops_per_token(model: nn.Module, num_layers: int, hidden_size: int, seq_len: int) -> float:
    """Training FLOPs per token, the PaLM convention: 6 x (weights of every matrix product, the tied
    vocabulary projection counted once) + 12 x layers x width x sequence (attention scores and sums)."""
    matmul_weights = {id(m.weight): m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear)}
    for module in model.modules():  # GPT-2's Conv1D holds its weight like a Linear
        if type(module).__name__ == "Conv1D":
            matmul_weights[id(module.weight)] = module.weight.numel()
    return 6.0 * sum(matmul_weights.values()) + 12.0 * num_layers * hidden_size * seq_len


def _peak_flops(device: str) -> float | None:
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name(0)
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)


def _measure_pair(
    name: str,
    family: str,
    settings: Settings,
    tokenizer,
    compiled: bool,
    versions: dict,
) -> dict:
    seqlab_model, reference, batches, config = build_pair(family, settings, tokenizer)
    steps: dict[str, Callable[[], None]] = {}
    optimizers = {}
    for role, model in (("seqlab", seqlab_model), ("reference", reference)):
        steps[role], optimizers[role] = make_train_step(model, batches, settings, compiled)
    shape = settings.shape
    tokens_per_step = shape.batch_size * shape.seq_len
    timings = interleaved_seconds(steps, settings.repeats, settings.warmup, settings.steps_per_repeat, settings.device)
    sides = {}
    for role, model in (("seqlab", seqlab_model), ("reference", reference)):
        # the parameter count of a tied model counts shared tensors once
        parameters = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
        sides[role] = {
            "model": type(model).__name__,
            **rates(tokens_per_step, timings, role, settings.device),
            "peak_memory_bytes": peak_step_bytes(steps[role], settings.device, resident_bytes(model, optimizers[role])),
            "parameters": parameters,
        }
        if settings.profile:
            sides[role]["profile"] = top_operators(steps[role], settings.device)
    extra = {}
    peak = _peak_flops(settings.device)
    if family == "decoder" and peak is not None:
        flops = model_flops_per_token(seqlab_model, config["num_hidden_layers"], config["hidden_size"], shape.seq_len)
        for role in sides:
            sides[role]["mfu"] = sides[role]["tokens_per_s"] * flops / peak
        extra["model_flops_per_token"] = flops
    run_config = {
        "family": family,
        "size": settings.size,
        "mode": "compile" if compiled else "eager",
        "precision": settings.precision,
        "batch_size": shape.batch_size,
        "seq_len": shape.seq_len,
        "optimizer": "AdamW (fused)" if settings.device == "cuda" else "AdamW (foreach)",
        "model_config": config,
    }
    return make_entry(
        name,
        sides["seqlab"],
        sides["reference"],
        run_config,
        device_label(settings.device),
        versions,
        target=None if settings.quick else ratio_target(name, settings.device, settings.size),
        **extra,
    )


def run_train_suite(settings: Settings, tokenizer, versions: dict) -> list[dict]:
    entries = []
    for family in settings.families:
        for mode in settings.compile_modes:
            name = f"{family}-train-{mode}"
            entries.append(_measure_pair(name, family, settings, tokenizer, mode == "compile", versions))
    return entries
