"""The transfer-gap experiment: grid, runner, statistics and report."""

from .grid import ExperimentConfig, FinetuneRun, load_experiment
from .report import write_report
from .runner import run_experiment

__all__ = ["ExperimentConfig", "FinetuneRun", "load_experiment", "run_experiment", "write_report"]
