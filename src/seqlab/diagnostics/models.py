"""The models the diagnostics compare: seqlab's own causal LMs, named by the seeds' vocabulary.

Every diagnostic model is built without dropout (the measurements are of deterministic functions) and
without special-token ids (the synthetic vocabularies have none).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..models.decoder import DecoderConfig, DecoderForCausalLM
from ..models.recurrent import RecurrentConfig, RecurrentForCausalLM
from .config import ModelShape


@dataclass(frozen=True)
class ModelPreset:
    label: str  # how plots and summaries name it
    family: str  # "recurrent" or "decoder"
    cell_type: str | None = None
    nonlinearity: str | None = None
    recurrent_init: str = "orthogonal"
    torch_default_init: bool = False  # re-initialise W_ih, W_hh, biases as torch.nn.RNN does


MODEL_PRESETS: dict[str, ModelPreset] = {
    "rnn_tanh": ModelPreset("vanilla RNN (tanh)", "recurrent", "rnn", "tanh"),
    "rnn_tanh_torch_init": ModelPreset(
        "vanilla RNN (tanh, PyTorch default init)", "recurrent", "rnn", "tanh", torch_default_init=True
    ),
    "irnn": ModelPreset("ReLU RNN, identity init (IRNN)", "recurrent", "rnn", "relu", "identity"),
    "lstm": ModelPreset("LSTM", "recurrent", "lstm"),
    "gru": ModelPreset("GRU", "recurrent", "gru"),
    "decoder": ModelPreset("decoder (GPT-style)", "decoder"),
}

_NO_SPECIAL_TOKENS = dict(pad_token_id=None, bos_token_id=None, eos_token_id=None)


def build_model(
    name: str, vocab_size: int, hidden_size: int, shape: ModelShape, max_length: int, seed: int
) -> nn.Module:
    """A freshly initialised causal LM of preset `name` (seeded, so every run builds the same weights)."""
    preset = MODEL_PRESETS[name]
    torch.manual_seed(seed)
    if preset.family == "decoder":
        config = DecoderConfig(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            num_hidden_layers=shape.num_hidden_layers,
            num_attention_heads=shape.num_attention_heads,
            intermediate_size=shape.intermediate_ratio * hidden_size,
            max_position_embeddings=max_length,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            **_NO_SPECIAL_TOKENS,
        )
        return DecoderForCausalLM(config)
    config = RecurrentConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        cell_type=preset.cell_type,
        nonlinearity=preset.nonlinearity,
        recurrent_init=preset.recurrent_init,
        embedding_dropout_prob=0.0,
        hidden_dropout_prob=0.0,
        output_dropout_prob=0.0,
        max_position_embeddings=max_length,
        **_NO_SPECIAL_TOKENS,
    )
    model = RecurrentForCausalLM(config)
    if preset.torch_default_init:
        for layer in model.model.layers:
            layer.reset_parameters()  # uniform(-1/sqrt(H), 1/sqrt(H)): the textbook RNN, no orthogonal W_hh
    return model


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total parameters (tied weights once) and those outside the token and position embedding tables."""
    total = sum(p.numel() for p in model.parameters())
    tables = [model.get_input_embeddings()]
    positions = getattr(model.model, "embed_positions", None)
    if positions is not None:
        tables.append(positions)
    embedding = sum(t.weight.numel() for t in tables)
    return {"total": total, "non_embedding": total - embedding}


def matched_hidden_size(name: str, target_parameters: int, vocab_size: int, shape: ModelShape, max_length: int) -> int:
    """The hidden size whose non-embedding parameter count is closest to `target_parameters`.

    Non-embedding parameters grow monotonically with the hidden size, so a bisection over multiples
    of the step (the number of attention heads for the decoder, 4 otherwise) finds it.
    """
    step = shape.num_attention_heads if MODEL_PRESETS[name].family == "decoder" else 4

    def count(multiple: int) -> int:
        model = build_model(name, vocab_size, multiple * step, shape, max_length, seed=0)
        return count_parameters(model)["non_embedding"]

    low, high = 1, 2
    while count(high) < target_parameters:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if count(middle) < target_parameters:
            low = middle
        else:
            high = middle
    best = min((low, high), key=lambda m: abs(count(m) - target_parameters))
    return best * step
