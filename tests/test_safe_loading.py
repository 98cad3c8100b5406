"""Nothing seqlab loads is unpickled, remote code is never needed with seqlab installed, and the Hub
export keeps only whitelisted files.

Checkpoints hold safetensors weights; the optimizer, schedule and random-state files are read with
``torch.load(weights_only=True)``, which rebuilds tensors and plain containers only. A pickle that
would run code is refused, and the tests check that its code did not run.
"""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest
import torch
import yaml

import seqlab  # noqa: F401  (registers the Auto classes)
from seqlab.errors import SeqlabUsageError
from seqlab.hub import export_for_hub
from seqlab.hub.export import EXPORT_WHITELIST, is_whitelisted
from seqlab.models import FAMILIES
from seqlab.tokenizer import token_config_kwargs
from seqlab.training import run_finetuning, run_pretraining
from seqlab.training.test_hooks import debug_hooks

TINY = {
    "recurrent": {"cell_type": "gru", "hidden_size": 32, "embedding_size": 32, "num_hidden_layers": 2},
    "decoder": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    },
    "encoder": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    },
}


class RunsCodeWhenUnpickled:
    """Unpickling this object opens (creates) ``marker``: proof that a loader ran pickled code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return builtins.open, (str(self.marker), "w")


def make_model(family: str, head: str, tokenizer):
    config_class, heads = FAMILIES[family].config_class, FAMILIES[family].auto_classes
    config = config_class(**TINY[family], **token_config_kwargs(tokenizer, include_mask=family == "encoder"))
    torch.manual_seed(0)
    return heads[head](config)


@pytest.fixture(scope="module")
def stopped_run(tokenizer, tmp_path_factory) -> dict:
    """A decoder pretraining run stopped (as if killed) after step 4, with checkpoints at steps 2 and 4."""
    folder = tmp_path_factory.mktemp("safe")
    model_yaml = folder / "decoder.yaml"
    model_yaml.write_text(yaml.safe_dump({"family": "decoder", **TINY["decoder"]}))
    recipe = {
        "model_config": str(model_yaml),
        "tokenizer_path": tokenizer.saved_folder,
        "datasets": ["tinyshakespeare"],
        "max_seq_length": 32,
        "max_corpus_tokens": 6000,
        "per_device_train_batch_size": 4,
        "max_steps": 6,
        "save_steps": 2,
        "eval_steps": None,
        "max_eval_batches": 2,
        "output_dir": str(folder / "run"),
        "seed": 4,
    }
    with debug_hooks(stop_after_steps=4):  # test hook: stop after step 4 as if killed
        assert run_pretraining(recipe)["stopped_at_step"] == 4
    return {"recipe": recipe, "run": folder / "run"}


def _copy_run(run: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(run, target)
    return target


def test_checkpoints_hold_safetensors_and_weights_only_loadable_files(stopped_run):
    from seqlab.training.checkpointing import safe_load

    checkpoint = stopped_run["run"] / "checkpoints" / "step-4"
    files = sorted(p.name for p in checkpoint.iterdir())
    assert files == ["lr_scheduler.bin", "model.safetensors", "optimizer.bin", "progress.json", "random_states_0.pkl"]
    assert not list(checkpoint.glob("custom_checkpoint_*"))  # Accelerate unpickles registered objects on load
    assert not list(checkpoint.glob("pytorch_model*"))
    for name in ("lr_scheduler.bin", "optimizer.bin", "random_states_0.pkl"):
        assert safe_load(checkpoint / name)  # torch.load(weights_only=True) accepts every one of them


def test_resume_loads_every_file_with_weights_only(stopped_run, tmp_path, monkeypatch):
    run = _copy_run(stopped_run["run"], tmp_path / "run")
    real_load = torch.load
    calls = []

    def recording_load(file, *args, **kwargs):
        entry = {"file": Path(str(file)).name, "weights_only": kwargs.get("weights_only"), "error": None}
        calls.append(entry)
        try:
            return real_load(file, *args, **kwargs)
        except Exception as error:  # Accelerate swallows a failed random-state load: record it here
            entry["error"] = repr(error)
            raise

    monkeypatch.setattr(torch, "load", recording_load)
    metrics = run_pretraining({**stopped_run["recipe"], "output_dir": str(run)}, resume_from_checkpoint="latest")
    assert metrics["step"] == 6
    loaded = {call["file"] for call in calls}
    assert {"optimizer.bin", "lr_scheduler.bin", "random_states_0.pkl"} <= loaded
    assert all(call["weights_only"] is True for call in calls), calls
    assert not [call for call in calls if call["error"]], calls


@pytest.mark.parametrize(
    "victim, match",
    [
        ("random_states_0.pkl", "random_states_0.pkl cannot be loaded safely"),
        (
            "optimizer.bin",
            "optimizer.bin cannot be loaded safely \\(UnpicklingError",
        ),  # refused before the run folder is touched
        ("lr_scheduler.bin", "lr_scheduler.bin cannot be loaded safely \\(UnpicklingError"),
    ],
)
def test_a_pickle_that_runs_code_in_a_checkpoint_is_refused_unrun(stopped_run, tmp_path, victim, match):
    run = _copy_run(stopped_run["run"], tmp_path / "run")
    marker = tmp_path / "code-ran"
    torch.save({"state": RunsCodeWhenUnpickled(marker)}, run / "checkpoints" / "step-4" / victim)
    with pytest.raises(SeqlabUsageError, match=match):
        run_pretraining({**stopped_run["recipe"], "output_dir": str(run)}, resume_from_checkpoint="latest")
    assert not marker.exists()


def test_a_pickled_model_file_is_never_loaded(tokenizer, tmp_path):
    folder = tmp_path / "pickled"
    model = make_model("decoder", "AutoModelForCausalLM", tokenizer)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    torch.save({"model.embed_tokens.weight": RunsCodeWhenUnpickled(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(SeqlabUsageError, match=r"has no model.safetensors \(a pickled pytorch_model.bin is not loaded"):
        run_finetuning({"model_name_or_path": str(folder), "output_dir": str(tmp_path / "out"), "max_steps": 1})
    assert not marker.exists() and not (tmp_path / "out").exists()
    from transformers import AutoModelForCausalLM

    with pytest.raises(Exception):  # transformers itself reads .bin files with weights_only=True
        AutoModelForCausalLM.from_pretrained(folder)
    assert not marker.exists()


@pytest.mark.parametrize(
    "family, head",
    [
        ("recurrent", "AutoModelForCausalLM"),
        ("recurrent", "AutoModelForSequenceClassification"),
        ("decoder", "AutoModelForCausalLM"),
        ("decoder", "AutoModelForSequenceClassification"),
        ("encoder", "AutoModelForMaskedLM"),
        ("encoder", "AutoModelForSequenceClassification"),
        ("decoder", "AutoModel"),
    ],
)
def test_saved_folders_load_through_auto_classes_without_remote_code(tokenizer, tmp_path, family, head):
    import os

    import transformers

    model = make_model(family, head, tokenizer)
    model.save_pretrained(tmp_path / "model")
    assert "auto_map" in json.loads((tmp_path / "model" / "config.json").read_text())  # the folder offers code...
    modules = Path(os.environ["HF_HOME"]) / "modules" / "transformers_modules"
    before = sorted(modules.rglob("*.py")) if modules.exists() else []
    loaded = getattr(transformers, head).from_pretrained(tmp_path / "model", trust_remote_code=False)
    assert type(loaded) is type(model) and type(loaded).__module__.startswith("seqlab.models.")  # ...never used
    after = sorted(modules.rglob("*.py")) if modules.exists() else []
    assert after == before  # no code was copied out of the folder
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_export_keeps_only_whitelisted_files_whatever_junk_the_run_holds(tokenizer, tmp_path):
    run = tmp_path / "run"
    make_model("decoder", "AutoModelForSequenceClassification", tokenizer).save_pretrained(run)
    tokenizer.save_pretrained(run)
    (run / "metrics.json").write_text(json.dumps({"eval_accuracy": 0.5, "eval_f1": 0.5}))
    (run / "recipe.yaml").write_text(yaml.safe_dump({"dataset": "sst2_sentence", "max_steps": 1}))
    junk = {
        "optimizer.pt": b"\0",
        "scheduler.pt": b"\0",
        "rng_state.pth": b"\0",
        "training_args.bin": b"\0",
        "pytorch_model.bin": b"\0",
        "random_states_0.pkl": b"\0",
        ".env": b"HF_TOKEN=hf_secret",
        "secrets.json": b"{}",
        "id_rsa": b"key",
        "modeling_backdoor.py": b"import os; os.system('x')",
        "configuration_evil.py": b"raise SystemExit",
        "model.safetensors.bak": b"\0",
        "config.json~": b"{}",
        "tokenizer.json.orig": b"{}",
        "README.md": b"# a stale card",
        "train_log.jsonl": b"{}",
        "loss_curve.png": b"\x89PNG",
        "notes.txt": b"private",
    }
    for name, content in junk.items():
        (run / name).write_bytes(content)
    for folder in ("checkpoints/step-2", "wandb/run-1", "trackers", ".git", "debug"):
        (run / folder).mkdir(parents=True)
        (run / folder / "file.bin").write_bytes(b"\0")
    (run / "linked.safetensors").symlink_to(run / "model.safetensors")

    files = export_for_hub(run, tmp_path / "export", "someone/junk-test")
    exported = sorted(p.name for p in (tmp_path / "export").iterdir())
    assert files == exported and all(is_whitelisted(name) for name in exported)
    assert all(
        (tmp_path / "export" / name).is_file() and not (tmp_path / "export" / name).is_symlink() for name in exported
    )
    assert set(exported) == {
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "configuration_decoder.py",
        "modeling_decoder.py",
    }
    assert "a stale card" not in (tmp_path / "export" / "README.md").read_text()  # the card is rebuilt
    source = (tmp_path / "export" / "modeling_decoder.py").read_text()
    assert source == Path(seqlab.models.decoder.modeling_decoder.__file__).read_text()  # seqlab's code, not the run's


@pytest.mark.parametrize(
    "name, allowed",
    [
        ("model.safetensors", True),
        ("model-00001-of-00002.safetensors", True),
        ("model.safetensors.index.json", True),
        ("modeling_decoder.py", True),
        ("tokenizer.json", True),
        ("README.md", True),
        ("pytorch_model.bin", False),
        ("optimizer.bin", False),
        ("random_states_0.pkl", False),
        (".env", False),
        ("model.safetensors.bak", False),
        ("model-evil.safetensors", False),
        ("config.json~", False),
        ("train_log.jsonl", False),
        ("metrics.json", False),
        ("checkpoints", False),
        ("MODEL.SAFETENSORS", False),
    ],
)
def test_whitelist_names(name, allowed):
    assert is_whitelisted(name) is allowed
    assert all("*" not in pattern or pattern.endswith((".py", ".safetensors")) for pattern in EXPORT_WHITELIST)


@pytest.mark.parametrize(
    "saved, loader",
    [
        ("decoder", ("encoder", "AutoModelForMaskedLM")),  # same parameter names and shapes: used to load silently
        ("encoder", ("decoder", "AutoModelForCausalLM")),
        ("recurrent", ("decoder", "AutoModelForSequenceClassification")),
    ],
)
def test_a_folder_of_another_family_is_refused_by_name(tokenizer, tmp_path, saved, loader):
    head = {"decoder": "AutoModelForCausalLM", "encoder": "AutoModelForMaskedLM", "recurrent": "AutoModelForCausalLM"}
    make_model(saved, head[saved], tokenizer).save_pretrained(tmp_path / "model")
    family, loader_head = loader
    model_class = FAMILIES[family].auto_classes[loader_head]
    with pytest.raises(ValueError, match=rf"config.json is for a `seqlab_{saved}` model, not `seqlab_{family}`"):
        model_class.from_pretrained(tmp_path / "model")
