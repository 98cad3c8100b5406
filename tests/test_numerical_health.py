"""A non-finite loss never reaches the weights or a checkpoint: the run stops (or skips the step).

NaN is injected by wrapping the model's ``forward`` for chosen training micro-batches (evaluation
calls are left alone): the loss becomes NaN and so does every gradient, as after a real blow-up.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import seqlab  # noqa: F401  (registers the Auto classes)
from seqlab import DecoderForCausalLM, DecoderForSequenceClassification
from seqlab.errors import SeqlabUsageError
from seqlab.training import FinetuningArgs, run_finetuning, run_pretraining
from seqlab.training.args import recipe_keys
from seqlab.training.checkpointing import load_progress, safe_load
from seqlab.training.health import NonFiniteLossError

DECODER = {
    "family": "decoder",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


@pytest.fixture(scope="module")
def model_yaml(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("health") / "decoder.yaml"
    path.write_text(yaml.safe_dump(DECODER))
    return str(path)


def recipe(tokenizer, model_yaml: str, output_dir: Path, **extra) -> dict:
    return {
        "model_config": model_yaml,
        "tokenizer_path": tokenizer.saved_folder,
        "datasets": ["tinyshakespeare"],
        "max_seq_length": 32,
        "max_corpus_tokens": 6000,
        "per_device_train_batch_size": 4,
        "max_steps": 8,
        "save_steps": 2,
        "save_total_limit": 3,
        "logging_steps": 1,
        "eval_steps": None,
        "max_eval_batches": 2,
        "learning_rate": 3e-3,
        "output_dir": str(output_dir),
        "seed": 9,
        **extra,
    }


def inject_nan(monkeypatch, model_class, training_calls: set[int]) -> None:
    """Make the loss NaN on the given training forward calls (1-based), as a diverging run would."""
    real_forward = model_class.forward
    seen = {"calls": 0}

    def forward(self, *args, **kwargs):
        output = real_forward(self, *args, **kwargs)
        if self.training:
            seen["calls"] += 1
            if seen["calls"] in training_calls:
                output.loss = output.loss * float("nan")
        return output

    monkeypatch.setattr(model_class, "forward", forward)


def _records(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "train_log.jsonl").read_text().splitlines()]


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
    tokenizer, model_yaml, tmp_path, monkeypatch
):
    clean = run_pretraining(recipe(tokenizer, model_yaml, tmp_path / "clean"))
    out = tmp_path / "nan"
    with monkeypatch.context() as patch:
        inject_nan(patch, DecoderForCausalLM, {5})
        with pytest.raises(NonFiniteLossError) as caught:
            run_pretraining(recipe(tokenizer, model_yaml, out))
    message = str(caught.value)
    assert "training stopped at step 5" in message and "loss nan" in message
    assert f"{out / 'checkpoints' / 'step-4'}, is untouched" in message
    assert "skip_nonfinite_batches" in message and "--resume_from_checkpoint latest" in message
    assert isinstance(caught.value, SeqlabUsageError)  # the command line prints it without a traceback

    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert checkpoints == ["step-2", "step-4"]
    assert load_progress(out / "checkpoints" / "step-4").step == 4
    good = load_file(str(out / "checkpoints" / "step-4" / "model.safetensors"))
    assert all(torch.isfinite(tensor).all() for tensor in good.values())
    assert not (out / "model.safetensors").exists() and not (out / "metrics.json").exists()
    assert {"step": 5, "nonfinite_loss": "nan", "skipped": False}.items() <= _records(out)[-1].items()

    # Nothing of the bad step was applied: continuing from step 4 ends exactly like the clean run.
    resumed = run_pretraining(recipe(tokenizer, model_yaml, out, resume_from_checkpoint="latest"))
    assert resumed["step"] == 8 and resumed["eval_loss"] == clean["eval_loss"]
    expected, actual = (
        load_file(str(tmp_path / "clean" / "model.safetensors")),
        load_file(str(out / "model.safetensors")),
    )
    assert all(torch.equal(expected[k], actual[k]) for k in expected)


def test_skip_nonfinite_batches_drops_the_update_counts_it_and_finishes(tokenizer, model_yaml, tmp_path, monkeypatch):
    out = tmp_path / "skip"
    inject_nan(monkeypatch, DecoderForCausalLM, {3, 6})
    metrics = run_pretraining(recipe(tokenizer, model_yaml, out, skip_nonfinite_batches=True))
    assert metrics["step"] == 8 and metrics["skipped_nonfinite_steps"] == 2
    assert json.loads((out / "metrics.json").read_text())["skipped_nonfinite_steps"] == 2
    weights = load_file(str(out / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values())
    records = _records(out)
    assert [r["step"] for r in records if r.get("skipped")] == [3, 6]
    losses = {r["step"]: r["loss"] for r in records if "loss" in r}
    assert all(isinstance(losses[s], float) for s in (1, 2, 4, 5, 7, 8)) and losses[3] == "nan"  # nothing to average
    assert [r["skipped_nonfinite_steps"] for r in records if "loss" in r] == [0, 0, 1, 1, 1, 2, 2, 2]
    # AdamW stepped 6 times in 8 steps; the schedule and the checkpoint's step count all 8.
    optimizer = safe_load(out / "checkpoints" / "step-8" / "optimizer.bin")
    assert {float(state["step"]) for state in optimizer["state"].values()} == {6.0}
    assert load_progress(out / "checkpoints" / "step-8").skipped_steps == 2
    assert safe_load(out / "checkpoints" / "step-8" / "lr_scheduler.bin")["last_epoch"] == 8


def test_skipping_most_steps_fails_instead_of_reporting_a_result(tokenizer, model_yaml, tmp_path, monkeypatch):
    """skip_nonfinite_batches is for a rare bad batch: skipping 5 of 8 steps is a failed run, not a model."""
    out = tmp_path / "mostly-skipped"
    inject_nan(monkeypatch, DecoderForCausalLM, {2, 3, 5, 6, 8})
    with pytest.raises(
        NonFiniteLossError,
        match=r"training skipped 5 of 8 steps because their loss or gradient was "
        r"not finite \(more than 10% allowed with skip_nonfinite_batches\)",
    ):
        run_pretraining(recipe(tokenizer, model_yaml, out, skip_nonfinite_batches=True))
    assert not (out / "metrics.json").exists() and not (out / "model.safetensors").exists()


def test_a_nonfinite_final_evaluation_fails(tokenizer, model_yaml, tmp_path, monkeypatch):
    real_forward = DecoderForCausalLM.forward

    def forward(self, *args, **kwargs):  # training is healthy; the evaluation's logits are NaN
        output = real_forward(self, *args, **kwargs)
        if not self.training:
            output.logits = output.logits * float("nan")
        return output

    monkeypatch.setattr(DecoderForCausalLM, "forward", forward)
    out = tmp_path / "nan-eval"
    with pytest.raises(NonFiniteLossError, match=r"the final evaluation loss is nan after 4 steps \(0 skipped"):
        run_pretraining(recipe(tokenizer, model_yaml, out, max_steps=4, skip_nonfinite_batches=True))
    assert not (out / "metrics.json").exists() and not (out / "model.safetensors").exists()


def test_nonfinite_weights_are_never_checkpointed(tokenizer, model_yaml, tmp_path, monkeypatch):
    """The last guard: even if a bad update got through, no checkpoint is written from broken weights."""
    out = tmp_path / "weights"
    monkeypatch.setattr("seqlab.training.loop.step_is_nonfinite", lambda *args: False)  # the step check fails open
    inject_nan(monkeypatch, DecoderForCausalLM, {3})
    with pytest.raises(
        NonFiniteLossError,
        match=r"step 4: the weights hold values that are not finite.*no checkpoint "
        r"was written.*step-2, is untouched",
    ):
        run_pretraining(recipe(tokenizer, model_yaml, out))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-2"]


def test_cli_reports_a_nonfinite_loss_in_one_line_and_exits_1(
    tokenizer, model_yaml, tmp_path, monkeypatch, capsys, repo_root
):
    inject_nan(monkeypatch, DecoderForCausalLM, {1})
    args = ["--config", str(tmp_path / "recipe.yaml")]
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe(tokenizer, model_yaml, tmp_path / "cli")))
    monkeypatch.setattr("sys.argv", ["pretrain.py", *args])
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(repo_root / "scripts" / "pretrain.py"), run_name="__main__")
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: training stopped at step 1: the loss is not a finite number")
    assert "no checkpoint had been written yet" in last and "Traceback" not in err


def test_finetuning_stops_on_a_nonfinite_loss_too(tokenizer, model_yaml, tmp_path, monkeypatch):
    assert recipe_keys(FinetuningArgs)["skip_nonfinite_batches"].default is False
    inject_nan(monkeypatch, DecoderForSequenceClassification, {2})
    out = tmp_path / "ft"
    with pytest.raises(NonFiniteLossError, match="training stopped at step 2"):
        run_finetuning(
            {
                "model_name_or_path": "scratch",
                "model_config": model_yaml,
                "tokenizer_path": tokenizer.saved_folder,
                "dataset": "sst2_sentence",
                "num_train_examples": 32,
                "max_length": 32,
                "per_device_train_batch_size": 8,
                "max_steps": 4,
                "max_eval_batches": 1,
                "output_dir": str(out),
                "seed": 1,
            }
        )
    assert not (out / "metrics.json").exists() and not (out / "model.safetensors").exists()
