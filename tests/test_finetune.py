"""Fine-tuning classifiers from a pretrained tiny LM and from scratch, strategies, --eval_file, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import seqlab  # noqa: F401  (registers the Auto classes)
from seqlab.errors import SeqlabUsageError
from seqlab.training import run_finetuning, run_pretraining

DECODER = {
    "family": "decoder",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


@pytest.fixture(scope="module")
def pretrained(tokenizer, tmp_path_factory) -> dict:
    """A tiny decoder LM pretrained for a few steps: its folder and its model YAML."""
    folder = tmp_path_factory.mktemp("pretrained")
    model_yaml = folder / "decoder.yaml"
    model_yaml.write_text(yaml.safe_dump(DECODER))
    run_pretraining(
        {
            "model_config": str(model_yaml),
            "tokenizer_path": tokenizer.saved_folder,
            "datasets": ["tinyshakespeare"],
            "max_seq_length": 32,
            "max_corpus_tokens": 8000,
            "per_device_train_batch_size": 4,
            "max_steps": 4,
            "eval_steps": None,
            "save_steps": None,
            "output_dir": str(folder / "lm"),
            "seed": 3,
        }
    )
    return {"folder": folder / "lm", "model_yaml": str(model_yaml)}


@pytest.fixture(scope="module")
def labelled_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "reviews.jsonl"
    rows = [{"review": f"a {'good' if i % 2 else 'bad'} film, number {i}", "label": i % 2} for i in range(20)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def finetune_recipe(model: str, output_dir: Path, **extra) -> dict:
    recipe = {
        "model_name_or_path": model,
        "dataset": "sst2_sentence",
        "num_train_examples": 40,
        "max_length": 32,
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 128,
        "max_steps": 6,
        "learning_rate": 3e-3,
        "logging_steps": 2,
        "max_eval_batches": 2,
        "output_dir": str(output_dir),
        "seed": 5,
    }
    recipe.update(extra)
    return recipe


def _body(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in weights.items() if k.startswith("model.")}


def test_finetune_from_pretrained_keeps_the_body(pretrained, tokenizer, tmp_path, labelled_file):
    from seqlab.training import FinetuningArgs, resolve_args
    from seqlab.training.finetuning import load_classifier

    lm_weights = load_file(str(pretrained["folder"] / "model.safetensors"))
    recipe = resolve_args(FinetuningArgs, finetune_recipe(str(pretrained["folder"]), tmp_path / "x"))
    family, classifier, loaded = load_classifier(recipe, tokenizer, 2, {0: "negative", 1: "positive"})
    assert family == "decoder" and loaded == len(_body(lm_weights)) > 0
    state = classifier.state_dict()
    for name, tensor in _body(lm_weights).items():
        assert torch.equal(state[name], tensor), name  # the pretrained body, not fresh weights
    assert "lm_head.weight" not in state and "classifier.weight" in state

    out = tmp_path / "ft"
    metrics = run_finetuning(finetune_recipe(str(pretrained["folder"]), out, eval_files=[str(labelled_file)]))
    assert metrics["pretrained"] is True and metrics["num_train_examples"] == 40 and metrics["step"] == 6
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0 and 0.0 <= metrics["eval_f1"] <= 1.0
    assert metrics["eval_examples"] == 2 * 128  # max_eval_batches caps the validation split
    scores = metrics["eval_files"]["reviews.jsonl"]
    assert scores["examples"] == 20 and 0.0 <= scores["accuracy"] <= 1.0
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["eval_files"]["reviews.jsonl"]["accuracy"] == scores["accuracy"]

    from transformers import AutoModelForSequenceClassification

    reloaded = AutoModelForSequenceClassification.from_pretrained(out)
    assert reloaded.config.id2label == {0: "negative", 1: "positive"}
    assert (out / "tokenizer.json").is_file() and (out / "train_log.jsonl").is_file()


def test_finetune_from_scratch_uses_the_same_config_with_fresh_weights(pretrained, tokenizer, tmp_path):
    out = tmp_path / "scratch"
    metrics = run_finetuning(
        finetune_recipe(
            "scratch", out, model_config=str(pretrained["folder"]), tokenizer_path=tokenizer.saved_folder, eval_steps=3
        )
    )
    assert metrics["pretrained"] is False and metrics["loaded_body_tensors"] == 0
    lm_config = json.loads((pretrained["folder"] / "config.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert all(config[k] == lm_config[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size"))
    lm_body, body = (
        _body(load_file(str(pretrained["folder"] / "model.safetensors"))),
        _body(load_file(str(out / "model.safetensors"))),
    )
    assert not torch.equal(lm_body["model.embed_tokens.weight"], body["model.embed_tokens.weight"])
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "eval_accuracy" in r] == [3, 6]


def test_freeze_body_trains_only_the_head(pretrained, tmp_path):
    out = tmp_path / "probe"
    metrics = run_finetuning(finetune_recipe(str(pretrained["folder"]), out, strategy="freeze_body"))
    assert metrics["frozen_parameters"] > 0
    lm, tuned = load_file(str(pretrained["folder"] / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert all(torch.equal(lm[k], tuned[k]) for k in _body(lm))


def test_ulmfit_unfreezes_layer_groups_from_the_top(pretrained, tmp_path):
    # 4 layer groups (embeddings, block 0, block 1, top); one more group trains every 2 steps:
    # steps 0-1 the top, 2-3 + block 1, 4-5 + block 0; the embeddings never within 6 steps.
    out = tmp_path / "ulmfit"
    run_finetuning(
        finetune_recipe(str(pretrained["folder"]), out, strategy="ulmfit", ulmfit_unfreeze_steps=2, logging_steps=1)
    )
    lm, tuned = load_file(str(pretrained["folder"] / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert torch.equal(lm["model.embed_tokens.weight"], tuned["model.embed_tokens.weight"])
    for block in (0, 1):
        changed = [k for k in lm if k.startswith(f"model.layers.{block}.") and not torch.equal(lm[k], tuned[k])]
        assert changed, f"block {block} never trained"
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in records if "lr" in r]
    assert lrs[0] == pytest.approx(3e-3 / 32) and max(lrs) == pytest.approx(3e-3)  # slanted triangular: up...
    assert lrs[-1] < lrs[2] < max(lrs)  # ...then a long way down


# ----------------------------------------------------------------------------------------------
# Bad input: a clear error, and nothing written to output_dir
# ----------------------------------------------------------------------------------------------


def _refused(recipe: dict, match: str) -> None:
    with pytest.raises(SeqlabUsageError, match=match):
        run_finetuning(recipe)
    assert not Path(recipe["output_dir"]).exists()


def test_eval_file_without_label_column_names_the_columns(pretrained, tmp_path):
    path = tmp_path / "unlabelled.tsv"
    path.write_text("sentence\tscore\nfine film\t0.9\n")
    _refused(
        finetune_recipe(str(pretrained["folder"]), tmp_path / "out", eval_files=[str(path)]),
        r"no label column; columns seen: sentence, score",
    )


def test_eval_file_without_text_column_names_the_columns(pretrained, tmp_path):
    path = tmp_path / "no_text.csv"
    path.write_text("body,label\nfine film,1\n")
    _refused(
        finetune_recipe(str(pretrained["folder"]), tmp_path / "out", eval_files=[str(path)]),
        r"no text column; columns seen: body, label",
    )


def test_missing_eval_file_and_data_key_are_refused(pretrained, tmp_path):
    _refused(
        finetune_recipe(str(pretrained["folder"]), tmp_path / "out", eval_files=[str(tmp_path / "gone.tsv")]),
        "neither a data key",
    )
    _refused(finetune_recipe(str(pretrained["folder"]), tmp_path / "out", dataset="sst3"), "unknown dataset 'sst3'")


def test_labels_outside_num_labels_are_refused(pretrained, tmp_path):
    _refused(
        finetune_recipe(str(pretrained["folder"]), tmp_path / "out", dataset="sst5", num_labels=2),
        r"label \d, outside 0..1 for num_labels=2",
    )


def test_too_many_training_examples_are_refused(pretrained, tmp_path):
    _refused(
        finetune_recipe(str(pretrained["folder"]), tmp_path / "out", num_train_examples=100000),
        "num_examples=100000 is more than the 6920 examples",
    )


def test_tokenizer_model_vocabulary_mismatch_is_refused(pretrained, tmp_path, data_dir):
    from seqlab.tokenizer import train_tokenizer

    lines = (data_dir / "tinyshakespeare" / "input.txt").read_text().splitlines()[:3000]
    bigger = train_tokenizer(lines, vocab_size=600)
    bigger.save_pretrained(tmp_path / "tok600")
    _refused(
        finetune_recipe(str(pretrained["folder"]), tmp_path / "out", tokenizer_path=str(tmp_path / "tok600")),
        r"tokenizer has \d+ tokens but the model config has vocab_size=512",
    )


def test_scratch_needs_a_model_config(tmp_path):
    _refused(finetune_recipe("scratch", tmp_path / "out"), "scratch needs --model_config")


def test_max_length_above_position_table_is_refused(pretrained, tmp_path):
    _refused(
        finetune_recipe(str(pretrained["folder"]), tmp_path / "out", max_length=100),
        "max_length=100 is above the model's max_position_embeddings=64",
    )


def test_cli_finetune_reports_bad_labels_without_traceback(pretrained, tmp_path, repo_root):
    out = tmp_path / "out"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root / "src"), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [
            sys.executable,
            str(repo_root / "scripts" / "finetune.py"),
            "--config",
            str(repo_root / "configs" / "finetune" / "sst2-tiny.yaml"),
            "--model_name_or_path",
            str(pretrained["folder"]),
            "--dataset",
            "sst5",
            "--num_labels",
            "3",
            "--num_train_examples",
            "10",
            "--seed",
            "1",
            "--output_dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "outside 0..2 for num_labels=3" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
