"""The training loop, recipes, optimizer tools, metrics and pretraining of every family (tiny, CPU)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

import seqlab  # noqa: F401  (registers the Auto classes)
from seqlab.errors import SeqlabUsageError
from seqlab.training import FinetuningArgs, PretrainingArgs, args_from_argv, resolve_args, run_pretraining
from seqlab.training.args import recipe_keys
from seqlab.training.cli import RecipeParser
from seqlab.training.test_hooks import debug_hooks

TINY_MODEL = {
    "recurrent": {
        "family": "recurrent",
        "cell_type": "lstm",
        "hidden_size": 32,
        "embedding_size": 32,
        "num_hidden_layers": 2,
    },
    "decoder": {
        "family": "decoder",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    },
    "encoder": {
        "family": "encoder",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    },
}


@pytest.fixture(scope="module")
def model_yamls(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for family, spec in TINY_MODEL.items():
        path = folder / f"{family}.yaml"
        path.write_text(yaml.safe_dump(spec))
        paths[family] = str(path)
    return paths


def tiny_recipe(tokenizer, model_yaml: str, output_dir: Path, **extra) -> dict:
    recipe = {
        "model_config": model_yaml,
        "tokenizer_path": tokenizer.saved_folder,
        "datasets": ["tinyshakespeare"],
        "max_seq_length": 32,
        "max_corpus_tokens": 12000,
        "validation_fraction": 0.05,
        "per_device_train_batch_size": 4,
        "max_steps": 8,
        "logging_steps": 2,
        "eval_steps": 4,
        "max_eval_batches": 4,
        "save_steps": None,
        "learning_rate": 3e-3,
        "warmup_ratio": 0.25,
        "output_dir": str(output_dir),
        "seed": 7,
    }
    recipe.update(extra)
    return recipe


# ----------------------------------------------------------------------------------------------
# Recipes
# ----------------------------------------------------------------------------------------------


def test_recipe_file_overrides_and_type_coercion(tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text("learning_rate: 1e-3\nmax_train_tokens: 1000000\nmixed_precision: no\ndatasets: [a, b]\n")
    overrides = RecipeParser(PretrainingArgs).parse_overrides(
        [
            "--config",
            str(config),
            "--max_steps",
            "12",
            "--model.hidden_size",
            "48",
            "--weight_decay=0.1",
            "--overwrite_output_dir",
            "--datasets",
            "x,y:unsup",
        ],
    )
    recipe = resolve_args(PretrainingArgs, None, overrides).to_dict()
    assert recipe["learning_rate"] == pytest.approx(1e-3)  # YAML reads 1e-3 as a string
    assert recipe["mixed_precision"] == "no"  # YAML reads a bare `no` as False
    assert recipe["max_steps"] == 12 and recipe["max_train_tokens"] is None  # a CLI budget replaces the file's
    assert recipe["model"] == {"hidden_size": 48}
    assert recipe["weight_decay"] == pytest.approx(0.1)
    assert recipe["overwrite_output_dir"] is True
    assert recipe["datasets"] == ["x", "y:unsup"]
    assert recipe["seed"] == recipe_keys(PretrainingArgs)["seed"].default


def test_recipe_repeatable_eval_file_and_int_budget():
    argv = ["--eval_file", "a.tsv", "--eval_file", "b.jsonl", "--max_steps", "1e3"]
    recipe = args_from_argv(FinetuningArgs, argv).to_dict()
    assert recipe["eval_files"] == ["a.tsv", "b.jsonl"]
    assert recipe["max_steps"] == 1000 and recipe["num_train_epochs"] is None


def test_unknown_recipe_key_lists_valid_keys(tmp_path):
    with pytest.raises(
        SeqlabUsageError,
        match=r"unknown recipe key 'learnig_rate'.*did you mean 'learning_rate'.*valid keys:.*max_steps",
    ):
        args_from_argv(PretrainingArgs, ["--learnig_rate", "1"])
    config = tmp_path / "recipe.yaml"
    config.write_text("max_stepz: 3\n")
    with pytest.raises(SeqlabUsageError, match="unknown recipe key 'max_stepz' in recipe file"):
        resolve_args(PretrainingArgs, {"config": str(config)})
    with pytest.raises(SeqlabUsageError, match="must be an integer"):
        resolve_args(PretrainingArgs, {"max_steps": "ten"})
    with pytest.raises(SeqlabUsageError, match="choose one of"):
        resolve_args(PretrainingArgs, {"mixed_precision": "fp8"})


def test_resolved_args_are_not_read_again(tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text("max_train_tokens: 1000000\nlearning_rate: 2e-3\n")
    args = args_from_argv(PretrainingArgs, ["--config", str(config), "--max_steps", "5"])
    config.unlink()  # a second read of the file would fail
    again = resolve_args(PretrainingArgs, args, {"seed": "3"})
    assert again.to_dict() == {**args.to_dict(), "seed": 3}
    assert again.learning_rate == pytest.approx(2e-3) and again.max_steps == 5 and again.max_train_tokens is None


def test_test_hooks_are_no_recipe_keys():
    from seqlab.training.recipe import recipe_to_yaml

    for args_class in (PretrainingArgs, FinetuningArgs):
        keys = recipe_keys(args_class)
        assert set(args_class().to_dict()) == set(keys) == set(yaml.safe_load(recipe_to_yaml(args_class())))
        assert not {"stop_after_steps", "debug_batch_log"} & set(keys)
    with pytest.raises(
        SeqlabUsageError,
        match="'stop_after_steps' in the recipe is no longer a recipe key .*SEQLAB_DEBUG_STOP_AFTER_STEPS=3",
    ):
        resolve_args(PretrainingArgs, {"stop_after_steps": 3})


def test_a_recipe_yaml_written_before_the_hooks_left_still_loads(tmp_path):
    """recipe.yaml of a run made before 2026-12-07 records the two hooks' inert values; as --config it still
    works, and a hook set to anything else is refused rather than ignored."""
    old = tmp_path / "recipe.yaml"
    old.write_text("learning_rate: 0.002\nstop_after_steps: null\ndebug_batch_log: 0\n")
    args = resolve_args(FinetuningArgs, None, {"config": str(old)})
    assert args.learning_rate == 0.002 and "stop_after_steps" not in args.to_dict()
    old.write_text("debug_batch_log: 2\n")
    with pytest.raises(SeqlabUsageError, match="SEQLAB_DEBUG_BATCH_LOG=2"):
        resolve_args(FinetuningArgs, None, {"config": str(old)})
    with pytest.raises(SeqlabUsageError, match="is no longer a recipe key"):
        args_from_argv(PretrainingArgs, ["--stop_after_steps", "4"])


def test_bounds_are_declared_once_per_key():
    from seqlab.training.args import check_bounds

    keys = recipe_keys(FinetuningArgs)
    assert keys["learning_rate"].bound == "> 0" and keys["warmup_steps"].bound == ">= 0"
    assert keys["max_steps"].bound == "> 0" and keys["seed"].bound is None
    with pytest.raises(SeqlabUsageError, match=r"recipe key 'max_length' must be > 0, got 0"):
        check_bounds(FinetuningArgs(max_length=0))
    with pytest.raises(SeqlabUsageError, match=r"recipe key 'dataloader_num_workers' must be >= 0, got -1"):
        check_bounds(FinetuningArgs(dataloader_num_workers=-1))


def test_command_line_is_parsed_by_hf_argument_parser():
    from transformers import HfArgumentParser

    parser = RecipeParser(FinetuningArgs)
    assert isinstance(parser, HfArgumentParser)
    argv = ["--learning-rate", "2e-3", "--save_model", "--model.num_labels=3", "--strategy", "ulmfit"]
    assert parser.parse_overrides(argv) == {
        "learning_rate": "2e-3",
        "save_model": "true",
        "strategy": "ulmfit",
        "model.num_labels": "3",
    }
    with pytest.raises(SeqlabUsageError, match=r"unknown recipe key 'no_save_model' in the command line"):
        parser.parse_overrides(["--no_save_model"])  # HfArgumentParser's complement of a true bool is not seqlab's


def test_debug_hooks_fill_the_loop_settings(monkeypatch):
    from seqlab.training.loop import LoopSettings
    from seqlab.training.test_hooks import with_test_hooks

    base = LoopSettings(max_steps=5)
    assert with_test_hooks(base) == base
    monkeypatch.setenv("SEQLAB_DEBUG_BATCH_LOG", "3")  # as a launched process gets it
    with debug_hooks(stop_after_steps=2):
        hooked = with_test_hooks(base)
    assert hooked.stop_after_steps == 2 and hooked.debug_batch_log == 3
    assert with_test_hooks(base).stop_after_steps is None  # only inside the block
    monkeypatch.setenv("SEQLAB_DEBUG_STOP_AFTER_STEPS", "soon")
    with pytest.raises(SeqlabUsageError, match=r"SEQLAB_DEBUG_STOP_AFTER_STEPS='soon' must be an integer >= 1"):
        with_test_hooks(base)


def test_shipped_recipes_load(repo_root):
    for path in sorted((repo_root / "configs" / "pretrain").glob("*.yaml")):
        recipe = resolve_args(PretrainingArgs, {"config": str(path)}).to_dict()
        model_yaml = repo_root / recipe["model_config"]
        assert model_yaml.is_file(), path
        family = yaml.safe_load(model_yaml.read_text())["family"]
        assert family in path.name
    for path in sorted((repo_root / "configs" / "finetune").glob("*.yaml")):
        resolve_args(FinetuningArgs, {"config": str(path)})
    for path in sorted((repo_root / "configs" / "accelerate").glob("*.yaml")):
        assert "distributed_type" in yaml.safe_load(path.read_text())


# ----------------------------------------------------------------------------------------------
# Optimizer tools and metrics
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["recurrent", "decoder", "encoder"])
def test_layer_groups_cover_every_parameter_once(family, tokenizer, model_yamls):
    from seqlab.models import FAMILIES
    from seqlab.training.optim import layer_groups, parameter_groups
    from seqlab.training.runtime import build_model_config

    _, config = build_model_config(model_yamls[family], {}, tokenizer, {}, num_labels=2)
    model = FAMILIES[family].classifier_class(config)
    groups = layer_groups(model)
    assert len(groups) == config.num_hidden_layers + 2  # embeddings, each layer, top
    names = [name for group in groups for name, _ in group]
    assert sorted(names) == sorted(name for name, _ in model.named_parameters())
    assert any("embed_tokens" in name for name, _ in groups[0])
    assert any("classifier" in name for name, _ in groups[-1])
    assert all(".layers.1." in name for name, _ in groups[2])

    param_groups = parameter_groups(model, learning_rate=1e-3, weight_decay=0.1, layer_lr_decay=2.6)
    lr_by_layer = {g["layer_group"]: g["lr"] for g in param_groups}
    top = len(groups) - 1
    for index, lr in lr_by_layer.items():
        assert lr == pytest.approx(1e-3 / 2.6 ** (top - index))
    assert all(g["weight_decay"] == 0.0 for g in param_groups if all(p.ndim < 2 for p in g["params"]))


def test_slanted_triangular_schedule_and_gradual_unfreezing():
    from seqlab.training.optim import GradualUnfreezing, slanted_triangular_schedule

    layers = [torch.nn.Linear(2, 2) for _ in range(3)]
    optimizer = torch.optim.SGD(
        [{"params": layer.parameters(), "lr": 1.0, "layer_group": i} for i, layer in enumerate(layers)], lr=1.0
    )
    schedule = slanted_triangular_schedule(optimizer, num_training_steps=100, cut_frac=0.1, ratio=32)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(1 / 32)
    assert max(rates) == pytest.approx(1.0) and rates.index(max(rates)) == 10
    assert rates[50] < rates[20] and rates[-1] < 0.1  # long linear decay after the short rise

    unfreezing = GradualUnfreezing(optimizer, unfreeze_every=5)
    for layer in layers:
        layer(torch.ones(1, 2)).sum().backward()
    unfreezing.drop_frozen_gradients(step=0)  # only the top group trains at first
    assert [layers[i].weight.grad is None for i in range(3)] == [True, True, False]
    assert unfreezing.lowest_trainable_group(5) == 1 and unfreezing.lowest_trainable_group(50) == 0


def test_shipped_metric_modules_work_offline():
    from seqlab.metrics import classification_metrics, load_metric, metric_path

    assert metric_path("f1").is_file() and metric_path("accuracy").is_file()
    scores = classification_metrics([0, 1, 1, 2], [0, 1, 0, 2], num_labels=3)
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)  # macro over the three classes
    # A class never predicted nor present still counts in the macro mean when num_labels names it.
    assert classification_metrics([0, 0], [0, 0], num_labels=2)["f1"] == pytest.approx(0.5)
    f1 = load_metric("f1")
    assert f1.compute(predictions=[1, 1, 0], references=[1, 0, 0])["f1"] == pytest.approx(2 / 3)  # binary


def test_load_metric_is_the_offline_drop_in_for_evaluate_load(tmp_path, monkeypatch):
    """evaluate.load("accuracy") fails offline (HF_HUB_OFFLINE is set for the tests); load_metric does not,
    also under the metric's Hub id and with a folder named like the metric in the working directory."""
    import evaluate

    from seqlab.metrics import load_metric

    monkeypatch.chdir(tmp_path)
    # evaluate 0.4.6 says the module "doesn't exist on the Hugging Face Hub"; 0.4.5 under huggingface_hub 1.x
    # fails earlier (AttributeError: no HfFolder): either way the Hub name does not load offline
    with pytest.raises((FileNotFoundError, AttributeError)):
        evaluate.load("accuracy")
    (tmp_path / "accuracy").mkdir()  # would shadow the Hub module for evaluate.load("accuracy")
    assert load_metric("evaluate-metric/accuracy").compute(predictions=[1, 0], references=[1, 1]) == {"accuracy": 0.5}
    with pytest.raises(SeqlabUsageError) as refused:
        load_metric("precision")
    message = str(refused.value)
    assert "seqlab ships no metric 'precision', only accuracy, f1" in message
    assert "evaluate.load('precision') with Hub access" in message and "\n" not in message


# ----------------------------------------------------------------------------------------------
# Pretraining every family
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["recurrent", "decoder", "encoder"])
def test_pretraining_each_family_from_its_config(family, tokenizer, model_yamls, tmp_path, repo_root, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    from seqlab.models.encoder.modeling_encoder import EncoderMaskedLMHead

    head_input_dims = []  # the masked-LM head sees (num_masked, hidden) rows when the projection is sparse
    head_forward = EncoderMaskedLMHead.forward
    monkeypatch.setattr(
        EncoderMaskedLMHead, "forward", lambda head, x: head_input_dims.append(x.dim()) or head_forward(head, x)
    )
    config = repo_root / "configs" / "pretrain" / f"{family}-tiny.yaml"
    recipe = tiny_recipe(tokenizer, model_yamls[family], tmp_path / "run", config=str(config))
    recipe["max_train_tokens"] = None
    metrics = run_pretraining(recipe)

    out = tmp_path / "run"
    assert metrics["step"] == 8 and metrics["family"] == family
    assert metrics["objective"] == ("masked_lm" if family == "encoder" else "causal_lm")
    assert math.isfinite(metrics["eval_loss"]) and metrics["eval_perplexity"] == pytest.approx(
        math.exp(metrics["eval_loss"])
    )
    if family == "encoder":
        assert 0.0 <= metrics["eval_accuracy"] <= 1.0
    assert metrics["tokens_seen"] == 8 * 4 * 32
    assert json.loads((out / "metrics.json").read_text())["step"] == 8
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    train_records = [r for r in log if "loss" in r]
    assert [r["step"] for r in train_records] == [2, 4, 6, 8]
    assert {"lr", "grad_norm", "tokens_per_second"} <= set(train_records[0])
    assert [r["step"] for r in log if "eval_loss" in r] == [4, 8]
    assert (out / "loss_curve.png").stat().st_size > 0
    assert yaml.safe_load((out / "recipe.yaml").read_text())["max_steps"] == 8

    auto = AutoModelForMaskedLM if family == "encoder" else AutoModelForCausalLM
    model = auto.from_pretrained(out)
    if family == "encoder":
        # pretraining projects only the masked tokens (speed); the saved model gives Trainer's full logits
        assert head_input_dims and set(head_input_dims) == {2}
        assert model.config.sparse_prediction is False
    assert model.config.vocab_size == len(tokenizer)
    assert (out / "tokenizer.json").is_file()
    # truncation=True (and pipelines) must cut texts where this model needs them cut
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(out).model_max_length == model.config.max_position_embeddings


def test_token_budget_sets_the_number_of_steps(tokenizer, model_yamls, tmp_path):
    recipe = tiny_recipe(
        tokenizer,
        model_yamls["decoder"],
        tmp_path / "run",
        max_steps=None,
        max_train_tokens=4 * 32 * 5 + 1,
        eval_steps=None,
        save_model=False,
    )
    metrics = run_pretraining(recipe)
    assert metrics["max_steps"] == 6  # ceil(641 / (4 sequences x 32 tokens))
    assert metrics["tokens_seen"] == 6 * 4 * 32
    assert not (tmp_path / "run" / "model.safetensors").exists()


# ----------------------------------------------------------------------------------------------
# Checkpoints and exact resumption
# ----------------------------------------------------------------------------------------------


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("family", ["decoder", "encoder"])
def test_resume_after_a_stop_is_bit_identical(family, tokenizer, model_yamls, tmp_path):
    # Gradient accumulation, dropout, warmup + cosine and (encoder) random masking all have to line up.
    common = dict(max_steps=10, save_steps=3, save_total_limit=2, gradient_accumulation_steps=2, eval_steps=4)
    full = run_pretraining(tiny_recipe(tokenizer, model_yamls[family], tmp_path / "full", **common))

    with debug_hooks(stop_after_steps=8):  # test hook: stop after step 8 as if killed
        stopped = run_pretraining(tiny_recipe(tokenizer, model_yamls[family], tmp_path / "cut", **common))
    assert stopped["stopped_at_step"] == 8
    cut = tmp_path / "cut"
    assert not (cut / "model.safetensors").exists()  # a stopped run is like a killed one
    checkpoints = sorted(p.name for p in (cut / "checkpoints").iterdir())
    assert checkpoints == ["step-3", "step-6"]  # save_total_limit=2, no temporary folder left
    progress = json.loads((cut / "checkpoints" / "step-6" / "progress.json").read_text())
    assert progress["step"] == 6 and progress["tokens_seen"] == 6 * 2 * 4 * 32

    resumed = run_pretraining(
        tiny_recipe(tokenizer, model_yamls[family], cut, resume_from_checkpoint="latest", **common)
    )
    assert resumed["step"] == 10 and resumed["tokens_seen"] == full["tokens_seen"]
    a, b = _weights(tmp_path / "full"), _weights(cut)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["eval_loss"] == full["eval_loss"]
    steps = [json.loads(line)["step"] for line in (cut / "train_log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps.count(8) == 2  # records after step 6 were not duplicated

    # the logged loss windows and the whole-run train_loss continue across the resume (save_steps 3 is not
    # a multiple of logging_steps 2, so the checkpoint holds a half-filled window)
    def losses(folder):
        return {
            r["step"]: r["loss"]
            for r in map(json.loads, (folder / "train_log.jsonl").read_text().splitlines())
            if "loss" in r
        }

    assert losses(cut)[10] == losses(tmp_path / "full")[10]
    assert resumed["train_loss"] == full["train_loss"]


# ----------------------------------------------------------------------------------------------
# Bad input: a clear error, and nothing written to output_dir
# ----------------------------------------------------------------------------------------------


def _refused(recipe: dict, match: str) -> None:
    with pytest.raises(SeqlabUsageError, match=match):
        run_pretraining(recipe)
    assert not Path(recipe["output_dir"]).exists()


def test_missing_data_key_is_refused(tokenizer, model_yamls, tmp_path):
    _refused(
        tiny_recipe(tokenizer, model_yamls["decoder"], tmp_path / "out", datasets=["tinyshakespear"]),
        "unknown dataset 'tinyshakespear'",
    )


def test_missing_data_file_is_refused(tokenizer, model_yamls, tmp_path):
    _refused(
        tiny_recipe(tokenizer, model_yamls["decoder"], tmp_path / "out", datasets=[str(tmp_path / "nope.txt")]),
        "neither a data key",
    )


def test_empty_dataset_is_refused(tokenizer, model_yamls, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    _refused(tiny_recipe(tokenizer, model_yamls["decoder"], tmp_path / "out", datasets=[str(empty)]), "holds no texts")


def test_sequence_length_above_position_table_is_refused(tokenizer, model_yamls, tmp_path):
    _refused(
        tiny_recipe(tokenizer, model_yamls["decoder"], tmp_path / "out", max_seq_length=65),
        r"max_seq_length=65 is above the model's max_position_embeddings=64",
    )


def test_vocabulary_smaller_than_tokenizer_is_refused(tokenizer, model_yamls, tmp_path):
    _refused(
        tiny_recipe(tokenizer, model_yamls["recurrent"], tmp_path / "out", model={"vocab_size": 100}),
        r"tokenizer has 512 tokens but the model config has vocab_size=100",
    )


def test_unknown_model_key_is_refused(tokenizer, model_yamls, tmp_path):
    _refused(
        tiny_recipe(tokenizer, model_yamls["decoder"], tmp_path / "out", model={"hiden_size": 8}),
        "unknown DecoderConfig key.*'hiden_size'",
    )


def test_resume_without_checkpoint_is_refused(tokenizer, model_yamls, tmp_path):
    _refused(
        tiny_recipe(tokenizer, model_yamls["decoder"], tmp_path / "out", resume_from_checkpoint="latest"),
        "no checkpoint in",
    )
    folder = tmp_path / "not-a-checkpoint"
    folder.mkdir()
    with pytest.raises(SeqlabUsageError, match="holds no checkpoint"):
        run_pretraining(
            tiny_recipe(tokenizer, model_yamls["decoder"], tmp_path / "out", resume_from_checkpoint=str(folder))
        )


def test_existing_output_dir_is_not_overwritten(tokenizer, model_yamls, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier run")
    with pytest.raises(SeqlabUsageError, match="already holds a run"):
        run_pretraining(tiny_recipe(tokenizer, model_yamls["decoder"], out))
    assert (out / "keep.txt").read_text() == "earlier run"


def test_report_to_needs_its_tracker_package(tokenizer, model_yamls, tmp_path):
    from accelerate.utils import is_tensorboard_available

    recipe = tiny_recipe(tokenizer, model_yamls["recurrent"], tmp_path / "out", report_to="tensorboard", max_steps=2)
    if not is_tensorboard_available():
        _refused(recipe, r"needs the tensorboard package; pip install 'seqlab\[tensorboard\]'")
    else:
        run_pretraining(recipe)
        assert any((tmp_path / "out" / "trackers").rglob("events.out.tfevents*"))


def _cli_env(repo_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root / "src"), env.get("PYTHONPATH")]))
    return env


def test_cli_usage_errors_exit_1_without_traceback(tokenizer, model_yamls, tmp_path, repo_root):
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            str(repo_root / "scripts" / "pretrain.py"),
            "--config",
            str(repo_root / "configs" / "pretrain" / "decoder-tiny.yaml"),
            "--output_dir",
            str(out),
            "--max_stpes",
            "3",
        ],
        capture_output=True,
        text=True,
        env=_cli_env(repo_root),
        timeout=120,
    )
    assert result.returncode == 1
    assert "error: unknown recipe key 'max_stpes'" in result.stderr and "max_steps" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("tie", [True, False])
def test_checkpoints_store_tied_weights_once_and_quietly(tie, tokenizer, model_yamls, tmp_path, capfd, caplog):
    """A tied LM head is left out of a checkpoint as save_pretrained leaves it out (Accelerate used to drop
    it itself and print "[RANK 0] Removed shared tensor" at every save); an untied head is kept."""
    import logging

    from safetensors import safe_open

    caplog.set_level(logging.INFO)
    recipe = tiny_recipe(
        tokenizer,
        model_yamls["decoder"],
        tmp_path / "run",
        max_steps=2,
        save_steps=1,
        eval_steps=None,
        model={"tie_word_embeddings": tie},
    )
    run_pretraining(recipe)
    captured = capfd.readouterr()
    assert "Removed shared tensor" not in captured.out + captured.err
    assert not [r for r in caplog.records if "shared tensor" in r.getMessage()]
    with safe_open(str(tmp_path / "run" / "checkpoints" / "step-2" / "model.safetensors"), framework="pt") as f:
        names = set(f.keys())
    assert "model.embed_tokens.weight" in names
    assert ("lm_head.weight" in names) == (not tie)


def test_drop_tied_copies_keeps_an_undeclared_alias():
    """Only names the model declares tied are dropped: any other shared tensor is left for Accelerate to
    report, since transformers would not re-tie it on load."""
    from seqlab.training.checkpointing import drop_tied_copies

    class Aliased(torch.nn.Module):
        _tied_weights_keys = {"head.weight": "embed.weight"}

        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(4, 2)
            self.head = torch.nn.Linear(2, 4, bias=False)
            self.other = torch.nn.Linear(2, 4, bias=False)
            self.head.weight = self.other.weight = self.embed.weight

    wrapper = torch.nn.Sequential(Aliased())  # the prefix a wrapper adds (as DDP's "module.")
    state = wrapper.state_dict()
    drop_tied_copies([wrapper], [state], "unused")
    assert set(state) == {"0.embed.weight", "0.other.weight"}


@pytest.mark.parametrize("script, args_class", [("pretrain", PretrainingArgs), ("finetune", FinetuningArgs)])
def test_script_help_shows_each_recipe_key_with_kind_meaning_and_default(script, args_class, repo_root):
    fields = recipe_keys(args_class)
    result = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / f"{script}.py"), "--help"],
        capture_output=True,
        text=True,
        env=_cli_env(repo_root),
        timeout=120,
    )
    assert result.returncode == 0 and result.stderr == ""
    text = " ".join(result.stdout.split())  # argparse wraps long help lines
    assert f"{script}.py --config RECIPE.yaml" in text
    assert text.count("default: ") >= len(fields)  # one per key
    for key, field in fields.items():
        option = f"--{key}.KEY VALUE" if field.kind == "dict" else f"--{key} {field.kind.upper()}"
        assert option in text, option
    lr = fields["learning_rate"]
    assert f"--learning_rate FLOAT {lr.help}; default: {lr.default!r}" in text
    assert "one of: linear, cosine," in text  # choices are listed
    assert "--save_model BOOL write the final model and tokenizer with save_pretrained; default: true" in text
    if script == "finetune":
        assert "--eval_file PATH" in text and "default: 3.0" in text
        assert "--model_name_or_path runs/decoder-tiny" in text  # the script's own docstring comes first


def test_tokenizer_trained_by_a_recipe_truncates_at_the_model_positions(model_yamls, tmp_path):
    from transformers import AutoTokenizer

    recipe = tiny_recipe(
        SimpleNamespace(saved_folder=str(tmp_path / "tok")),
        model_yamls["decoder"],
        tmp_path / "run",
        max_steps=1,
        eval_steps=None,
        save_model=False,
        tokenizer_train={"sources": ["tinyshakespeare"], "vocab_size": 300, "max_texts": 300},
    )
    run_pretraining(recipe)
    assert AutoTokenizer.from_pretrained(tmp_path / "tok").model_max_length == 64  # the YAML's position table
