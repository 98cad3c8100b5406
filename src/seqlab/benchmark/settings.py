"""What a benchmark run measures: the shapes of each size, the repetitions, the device's fast paths.

A benchmark compares seqlab with the reference a user would otherwise pick at *identical* sizes, so
the sizes come from the same ``configs/models/<family>-<size>.yaml`` files the training recipes use.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import yaml

from ..errors import SeqlabUsageError

SUITES = ("train", "generate", "data")
SIZES = ("tiny", "small")
DEVICES = ("cpu", "cuda")
FAMILIES = ("decoder", "encoder", "recurrent")

# src/seqlab/benchmark/settings.py -> the repository root holds configs/models/
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "models"


@dataclass(frozen=True)
class Shape:
    """Tokens of one training step (batch x sequence) and the vocabulary the models project onto."""

    batch_size: int
    seq_len: int
    vocab_size: int


# tiny: the CPU pretraining recipes (2k vocabulary, 16 x 128); small: the DESIGN.md reference setting
SHAPES = {"tiny": Shape(16, 128, 2000), "small": Shape(64, 256, 16000)}
QUICK_SHAPE = Shape(batch_size=4, seq_len=32, vocab_size=512)


@dataclass(frozen=True)
class Settings:
    """Everything that decides a measurement; recorded in every result file."""

    suite: str
    device: str
    size: str
    quick: bool
    shape: Shape
    compile_modes: tuple[str, ...]  # "eager" and/or "compile" (torch.compile)
    precision: str  # "bf16" (autocast, on CUDA) or "fp32"
    repeats: int  # timed repetitions per candidate, interleaved; the median is reported
    warmup: int  # untimed steps per candidate before the first repetition
    steps_per_repeat: int
    prompt_len: int
    new_tokens: int
    generate_batch_size: int
    data_sources: tuple[str, ...]
    data_max_tokens: int | None
    num_proc: tuple[int, ...]
    tokenizer_path: str | None
    config_dir: str
    families: tuple[str, ...] = FAMILIES
    profile: bool = False  # also record each candidate's top operators (torch.profiler)

    def as_dict(self) -> dict:
        return asdict(self)


def resolve_settings(
    suite: str,
    device: str = "cpu",
    size: str = "tiny",
    quick: bool = False,
    compile: bool | None = None,
    repeats: int | None = None,
    batch_size: int | None = None,
    seq_len: int | None = None,
    new_tokens: int | None = None,
    num_proc: list[int] | None = None,
    max_tokens: int | None = None,
    tokenizer_path: str | None = None,
    config_dir: str | os.PathLike | None = None,
    families: list[str] | None = None,
    profile: bool = False,
) -> Settings:
    """Defaults per device and size; ``--quick`` shrinks everything to a smoke run of a few seconds."""
    _check_choice("suite", suite, SUITES)
    _check_choice("device", device, DEVICES)
    _check_choice("size", size, SIZES)
    for family in families or ():
        _check_choice("family", family, FAMILIES)
    on_gpu = device == "cuda"
    shape = _resolve_shape(size, quick, batch_size, seq_len)
    _check_positive(("batch_size", shape.batch_size), ("seq_len", shape.seq_len))
    _check_positive(("repeats", repeats), ("new_tokens", new_tokens))
    # torch.compile on CPU needs a C++ toolchain and minutes of compilation: only when asked for
    use_compile = on_gpu if compile is None else compile
    defaults = _timing_defaults(quick, on_gpu)
    sources, data_tokens, procs = _data_defaults(quick, on_gpu, num_proc)
    return Settings(
        suite=suite,
        device=device,
        size=size,
        quick=quick,
        shape=shape,
        compile_modes=("eager", "compile") if use_compile else ("eager",),
        precision="bf16" if on_gpu else "fp32",
        repeats=repeats or _default_repeats(suite, quick, defaults["repeats"]),
        warmup=defaults["warmup"],
        steps_per_repeat=defaults["steps"],
        prompt_len=defaults["prompt"],
        new_tokens=new_tokens or defaults["new_tokens"],
        generate_batch_size=defaults["gen_batch"] if batch_size is None else batch_size,
        data_sources=sources,
        data_max_tokens=max_tokens if max_tokens is not None else data_tokens,
        num_proc=procs,
        tokenizer_path=tokenizer_path,
        config_dir=str(config_dir or DEFAULT_CONFIG_DIR),
        families=tuple(families) if families else FAMILIES,
        profile=profile,
    )


def _resolve_shape(size: str, quick: bool, batch_size: int | None, seq_len: int | None) -> Shape:
    """The size's shape (the quick one for a smoke run), with the batch and sequence length asked for."""
    shape = QUICK_SHAPE if quick else SHAPES[size]
    return replace(
        shape,
        batch_size=shape.batch_size if batch_size is None else batch_size,
        seq_len=shape.seq_len if seq_len is None else seq_len,
    )


def _check_positive(*checked: tuple[str, int | None]) -> None:
    """Refuse a count below 1 (None: not given, the default applies)."""
    for name, value in checked:
        if value is not None and value < 1:
            raise SeqlabUsageError(f"--{name} must be at least 1, got {value}")


def _timing_defaults(quick: bool, on_gpu: bool) -> dict[str, int]:
    """Repetitions, warmup and steps per repetition, and the generation setting, where not given."""
    if quick:
        return {"repeats": 3, "warmup": 1, "steps": 1, "new_tokens": 8, "gen_batch": 2, "prompt": 8}
    if on_gpu:
        return {"repeats": 7, "warmup": 5, "steps": 10, "new_tokens": 256, "gen_batch": 16, "prompt": 32}
    # one step per repetition: the finest interleaving, so both candidates see the same load. Generation as on
    # the GPU: 16 sequences, 256 new tokens (the cache targets' setting, issue 12)
    return {"repeats": 21, "warmup": 3, "steps": 1, "new_tokens": 256, "gen_batch": 16, "prompt": 32}


def _data_defaults(
    quick: bool, on_gpu: bool, num_proc: list[int] | None
) -> tuple[tuple[str, ...], int | None, tuple[int, ...]]:
    """The data suite's sources, token cap and process counts (``num_proc`` replaces the counts when given)."""
    if quick:
        sources, data_tokens, procs = ("tinyshakespeare",), 20_000, (1,)
    elif on_gpu:
        sources, data_tokens, procs = ("general_english", "imdb:unsup", "imdb:train"), None, (os.cpu_count() or 1,)
    else:
        sources, data_tokens, procs = ("general_english", "imdb:unsup", "imdb:train"), 1_000_000, (1, 2)
    if num_proc:
        if any(n < 1 for n in num_proc):
            raise SeqlabUsageError(f"--num_proc values must be at least 1, got {num_proc}")
        procs = tuple(num_proc)
    return sources, data_tokens, procs


def _default_repeats(suite: str, quick: bool, training_repeats: int) -> int:
    # a generation or data repetition lasts seconds, not a fraction of one: fewer are enough
    if suite == "train":
        return training_repeats
    if quick:
        return 2
    return 7 if suite == "generate" else 3


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SeqlabUsageError(f"--{name} {value!r} is not one of {', '.join(choices)}")


def load_model_config(family: str, size: str, config_dir: str | os.PathLike, **overrides):
    """Build the seqlab config of ``configs/models/<family>-<size>.yaml`` (vocabulary from ``overrides``)."""
    from ..models import FAMILIES as FAMILY_RECORDS

    path = Path(config_dir) / f"{family}-{size}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"model size file {path} not found; run from the repository root or pass --config_dir pointing "
            f"to the folder holding {family}-{size}.yaml"
        )
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    declared = values.pop("family", None)
    if declared != family:
        raise SeqlabUsageError(f"{path} declares family {declared!r}, expected {family!r}; fix its `family:` line")
    return FAMILY_RECORDS[family].config_class(**{**values, **overrides})
