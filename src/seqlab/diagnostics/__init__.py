"""Diagnostics that turn the seeds' claims into measurements on seqlab's own models.

- `run_gradient_flow`: ||∂L_T/∂x_t|| and ||∂L_T/∂h_t|| against the distance T - t (vanishing gradients).
- `run_long_range`: accuracy of recalling a token k positions back, at matched parameter counts.
- `run_speed_vs_length`: forward + backward time against sequence length (parallelism).
- `walk_through`: the seed's worked example (000, Part 1) computed by RecurrentForCausalLM and autograd.

Each runner takes a `DiagnosticsConfig` (see `load_config`), an output folder, a torch device and the
command line to record, and writes `<name>.json`, `<name>.png` and `summary.md`.
"""

from .config import DiagnosticsConfig, GradientFlowConfig, LongRangeConfig, ModelShape, SpeedConfig, load_config
from .gradient_flow import last_position_gradients, run_gradient_flow, unroll_recurrent_lm
from .long_range import RecallTask, run_long_range
from .models import MODEL_PRESETS, build_model, count_parameters, matched_hidden_size
from .speed import run_speed_vs_length
from .worked_example import build_worked_example_model, walk_through

__all__ = [
    "DiagnosticsConfig",
    "GradientFlowConfig",
    "LongRangeConfig",
    "SpeedConfig",
    "ModelShape",
    "load_config",
    "MODEL_PRESETS",
    "build_model",
    "count_parameters",
    "matched_hidden_size",
    "last_position_gradients",
    "unroll_recurrent_lm",
    "run_gradient_flow",
    "RecallTask",
    "run_long_range",
    "run_speed_vs_length",
    "build_worked_example_model",
    "walk_through",
]
