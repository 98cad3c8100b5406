"""Settings of the three diagnostics, read from one YAML file per size (tiny, default, gpu).

A file holds one section per diagnostic (``gradient_flow``, ``long_range``, ``speed_vs_length``) and
an optional top-level ``seed``. Fields left out keep the defaults below, which are the CPU "default"
size used for the committed results (``configs/diagnostics/default.yaml`` spells them out).
Unknown fields are refused by name, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import SeqlabUsageError

DIAGNOSTICS = ("gradient_flow", "long_range", "speed_vs_length")


@dataclass
class ModelShape:
    """What every family shares in a diagnostic: depth, and the decoder's heads and MLP width ratio."""

    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_ratio: int = 4  # decoder intermediate_size = ratio * hidden_size


@dataclass
class GradientFlowConfig:
    """∂L_T/∂x_t and ∂L_T/∂h_t against the distance T - t, at initialisation and after training."""

    models: list[str] = field(
        default_factory=lambda: ["rnn_tanh", "rnn_tanh_torch_init", "irnn", "lstm", "gru", "decoder"]
    )
    text: str = "tinyshakespeare"  # data key or text file
    max_texts: int = 3000  # documents read from the text
    char_vocab_size: int = 128  # the char-level tokenizer keeps the most frequent characters
    hidden_size: int = 64
    shape: ModelShape = field(default_factory=ModelShape)
    sequence_length: int = 128  # T: the gradient of L_T reaches back T - 1 positions
    num_sequences: int = 16  # held-out sequences the norms are averaged over
    train_steps: int = 300
    batch_size: int = 16
    learning_rate: float = 3e-3
    report_distances: list[int] = field(default_factory=lambda: [1, 10, 20, 50, 100])


@dataclass
class LongRangeConfig:
    """Recall a key token k positions back; accuracy against k at matched parameter counts."""

    models: list[str] = field(default_factory=lambda: ["rnn_tanh", "irnn", "lstm", "gru", "decoder"])
    distances: list[int] = field(default_factory=lambda: [1, 5, 10, 20, 50, 100, 200, 500])
    num_keys: int = 8  # chance accuracy is 1 / num_keys
    num_fillers: int = 8
    max_prefix: int = 4  # random filler tokens before the key, so it is not always the first token
    target_parameters: int = 40000  # non-embedding parameters every family is matched to
    shape: ModelShape = field(default_factory=ModelShape)
    batch_size: int = 32
    max_steps: int = 1500
    eval_every: int = 250
    eval_size: int = 128  # sequences per distance in the validation check (early stop, lr choice)
    test_size: int = 512  # sequences per distance in the reported test accuracy
    solved_accuracy: float = 0.99  # training stops once validation accuracy reaches this at every k
    learning_rates: dict[str, list[float]] = field(
        default_factory=lambda: {
            "rnn_tanh": [3e-3, 1e-2],
            "irnn": [3e-3],
            "lstm": [1e-2],
            "gru": [1e-2],
            "decoder": [1e-2],
        }
    )
    default_learning_rates: list[float] = field(default_factory=lambda: [3e-3])


@dataclass
class SpeedConfig:
    """Forward + backward wall time against sequence length, recurrent families against the decoder."""

    models: list[str] = field(default_factory=lambda: ["rnn_tanh", "lstm", "gru", "decoder"])
    lengths: list[int] = field(default_factory=lambda: [64, 128, 256, 512, 1024, 2048])
    batch_size: int = 4
    vocab_size: int = 256
    target_parameters: int = 300000  # non-embedding parameters every family is matched to
    shape: ModelShape = field(default_factory=ModelShape)
    repeats: int = 5  # timed runs per point (the fastest and the median are reported)
    warmup: int = 1


@dataclass
class DiagnosticsConfig:
    seed: int = 0
    gradient_flow: GradientFlowConfig = field(default_factory=GradientFlowConfig)
    long_range: LongRangeConfig = field(default_factory=LongRangeConfig)
    speed_vs_length: SpeedConfig = field(default_factory=SpeedConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None) -> DiagnosticsConfig:
    """Read a diagnostics YAML file (None: the built-in CPU default size)."""
    if path is None:
        return DiagnosticsConfig()
    path = Path(path)
    if not path.is_file():
        raise SeqlabUsageError(
            f"diagnostics config {str(path)!r} does not exist; pass one of configs/diagnostics/*.yaml "
            "or leave --config out for the default size"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise SeqlabUsageError(f"diagnostics config {str(path)!r} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise SeqlabUsageError(
            f"diagnostics config {str(path)!r} must be a mapping of sections, got {type(raw).__name__}"
        )
    config = _build(DiagnosticsConfig, raw, where=str(path))
    validate(config, where=str(path))
    return config


def _build(cls, raw: dict[str, Any], where: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SeqlabUsageError(
            f"{where}: unknown field(s) {', '.join(unknown)} in {cls.__name__}; known fields: {', '.join(known)}"
        )
    values = {}
    for name, value in raw.items():
        default = known[name].default_factory() if known[name].default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise SeqlabUsageError(f"{where}: `{name}` must be a mapping, got {value!r}")
            values[name] = _build(type(default), value, where=f"{where}: {name}")
        else:
            values[name] = value
    return cls(**values)


def _positive_ints(where: str, name: str, values) -> None:
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)
    ):
        raise SeqlabUsageError(f"{where}: `{name}` must be a non-empty list of positive integers, got {values!r}")


def _positive(where: str, name: str, value, kind=int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or value <= 0:
        raise SeqlabUsageError(f"{where}: `{name}` must be a positive {kind.__name__}, got {value!r}")


def validate(config: DiagnosticsConfig, where: str = "diagnostics config") -> None:
    """Check the values a run depends on, naming the field and the fix."""
    from .models import MODEL_PRESETS  # models imports torch; configs stay light until validated

    for section in DIAGNOSTICS:
        sub = getattr(config, section)
        unknown = [m for m in sub.models if m not in MODEL_PRESETS]
        if not sub.models or unknown:
            raise SeqlabUsageError(
                f"{where}: {section}.models has unknown model(s) {unknown or sub.models!r}; "
                f"choose from {', '.join(MODEL_PRESETS)}"
            )
        for name in ("num_hidden_layers", "num_attention_heads", "intermediate_ratio"):
            _positive(where, f"{section}.shape.{name}", getattr(sub.shape, name))

    flow = config.gradient_flow
    for name in ("max_texts", "char_vocab_size", "hidden_size", "num_sequences", "batch_size"):
        _positive(where, f"gradient_flow.{name}", getattr(flow, name))
    if not isinstance(flow.train_steps, int) or flow.train_steps < 0:
        raise SeqlabUsageError(f"{where}: gradient_flow.train_steps must be an integer >= 0, got {flow.train_steps!r}")
    if not isinstance(flow.sequence_length, int) or flow.sequence_length < 2:
        raise SeqlabUsageError(
            f"{where}: gradient_flow.sequence_length must be an integer >= 2, got {flow.sequence_length!r}"
        )
    _positive(where, "gradient_flow.learning_rate", flow.learning_rate, float)
    _positive_ints(where, "gradient_flow.report_distances", flow.report_distances)
    if flow.hidden_size % flow.shape.num_attention_heads:
        raise SeqlabUsageError(
            f"{where}: gradient_flow.hidden_size={flow.hidden_size} must be a multiple of "
            f"shape.num_attention_heads={flow.shape.num_attention_heads} (the decoder splits it into heads)"
        )

    recall = config.long_range
    _positive_ints(where, "long_range.distances", recall.distances)
    for name in (
        "num_keys",
        "num_fillers",
        "target_parameters",
        "batch_size",
        "max_steps",
        "eval_every",
        "eval_size",
        "test_size",
    ):
        _positive(where, f"long_range.{name}", getattr(recall, name))
    if not isinstance(recall.max_prefix, int) or recall.max_prefix < 0:
        raise SeqlabUsageError(f"{where}: long_range.max_prefix must be an integer >= 0, got {recall.max_prefix!r}")
    if not 0 < recall.solved_accuracy <= 1:
        raise SeqlabUsageError(
            f"{where}: long_range.solved_accuracy must lie in (0, 1], got {recall.solved_accuracy!r}"
        )
    if not isinstance(recall.learning_rates, dict):
        raise SeqlabUsageError(f"{where}: long_range.learning_rates must map model names to lists of rates")
    for model, rates in {**recall.learning_rates, "default_learning_rates": recall.default_learning_rates}.items():
        if (
            not isinstance(rates, list)
            or not rates
            or not all(isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0 for r in rates)
        ):
            raise SeqlabUsageError(
                f"{where}: long_range learning rates for {model!r} must be a non-empty list of positive numbers, "
                f"got {rates!r}"
            )

    speed = config.speed_vs_length
    _positive_ints(where, "speed_vs_length.lengths", speed.lengths)
    for name in ("batch_size", "vocab_size", "target_parameters", "repeats"):
        _positive(where, f"speed_vs_length.{name}", getattr(speed, name))
    if not isinstance(speed.warmup, int) or speed.warmup < 0:
        raise SeqlabUsageError(f"{where}: speed_vs_length.warmup must be an integer >= 0, got {speed.warmup!r}")
