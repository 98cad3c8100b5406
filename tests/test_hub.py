"""Publishing: dry-run export, model cards, the whitelist, the upload path against a mocked HfApi."""

import json
import logging
import os
import subprocess
import sys

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from remote_code import load_without_seqlab
from test_hf_integration import encode, first_output, make_model

from seqlab.errors import SeqlabUsageError
from seqlab.hub import export_for_hub, push_folder
from seqlab.hub.export import is_whitelisted

RUNS = [
    ("recurrent", "AutoModelForCausalLM", "text-generation"),
    ("decoder", "AutoModelForSequenceClassification", "text-classification"),
    ("encoder", "AutoModelForMaskedLM", "fill-mask"),
]


def fake_run(folder, family, auto_name, tokenizer):
    """A training output folder as the scripts leave it, with the clutter that must never be uploaded."""
    model = make_model(family, auto_name, tokenizer)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    classifier = auto_name.endswith("SequenceClassification")
    masked = auto_name == "AutoModelForMaskedLM"
    metrics = (
        {
            "eval_accuracy": 0.8125,
            "eval_f1": 0.8,
            "eval_loss": 0.45,
            "train_loss": 0.3,
            "eval_files": {"imdb.tsv": {"accuracy": 0.7}},
        }
        if classifier
        else {"eval_accuracy": 0.125, "eval_loss": 6.5, "eval_perplexity": 665.1, "train_loss": 6.6}
        if masked
        else {"eval_perplexity": 42.5, "eval_loss": 3.75, "train_loss": 3.5}
    )
    metrics.update({"step": 10, "tokens_seen": 12800} if not classifier else {"step": 10})
    (folder / "metrics.json").write_text(json.dumps(metrics))
    # a pretraining recipe.yaml holds mlm_probability whatever the family (the recipe has one schema)
    recipe = (
        {"dataset": "sst2_sentence"}
        if classifier
        else {"datasets": ["general_english", "imdb:unsup", "imdb:train"], "mlm_probability": 0.15}
    )
    (folder / "recipe.yaml").write_text(yaml.safe_dump({**recipe, "learning_rate": 0.001, "max_steps": 10}))
    (folder / ".env").write_text("HF_TOKEN=hf_secret\n")
    (folder / "train_log.jsonl").write_text("{}\n")
    (folder / "checkpoints" / "step-10").mkdir(parents=True)
    (folder / "checkpoints" / "step-10" / "optimizer.bin").write_bytes(b"\0" * 8)
    return model


@pytest.mark.parametrize("family, auto_name, pipeline_tag", RUNS)
def test_dry_run_export_loads_without_seqlab(tmp_path, tokenizer, family, auto_name, pipeline_tag, caplog):
    run, export = tmp_path / "run", tmp_path / "export"
    model = fake_run(run, family, auto_name, tokenizer)
    with caplog.at_level(logging.WARNING, logger="seqlab.hub.export"):
        files = export_for_hub(run, export, repo_id="someone/seqlab-test")
    # every key seqlab and transformers write is known to the export's key lists: a clean run warns of nothing
    assert not [r.getMessage() for r in caplog.records if r.name == "seqlab.hub.export"]

    assert all(is_whitelisted(name) for name in files)
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(files)
    assert f"modeling_{family}.py" in files and f"configuration_{family}.py" in files
    assert ("generation_config.json" in files) == (auto_name == "AutoModelForCausalLM")
    assert not {".env", "checkpoints", "train_log.jsonl", "metrics.json", "recipe.yaml"} & set(files)
    config = json.loads((export / "config.json").read_text())
    assert "auto_map" in config
    tokenizer_config = json.loads((export / "tokenizer_config.json").read_text())
    assert tokenizer_config["model_max_length"] == config["max_position_embeddings"]
    assert "is_local" not in tokenizer_config and "local_files_only" not in tokenizer_config

    card = ModelCard.load(export / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == pipeline_tag
    assert data["license"] == "apache-2.0" and "seqlab" in data["tags"]
    _, results = model_index_to_eval_results(data["model-index"])
    expected = {
        "text-classification": {"accuracy": 0.8125, "macro-F1": 0.8},
        "fill-mask": {"masked_token_accuracy": 0.125, "loss": 6.5},  # an MLM's "perplexity" is not one
        "text-generation": {"perplexity": 42.5, "loss": 3.75},
    }[pipeline_tag]
    assert {r.metric_name: r.metric_value for r in results} == expected
    assert {r.task_type for r in results} == {pipeline_tag}
    # general_english has no Hub twin: it is listed under its seqlab key rather than left out
    assert data["datasets"] == (
        ["stanfordnlp/sst2"] if pipeline_tag == "text-classification" else ["general_english", "stanfordnlp/imdb"]
    )
    assert "general English" in card.text or pipeline_tag == "text-classification"
    assert ("generating text" in card.text) == (pipeline_tag == "text-generation")
    assert "output_dir" not in card.text and "../shared" not in card.text  # no local paths on the Hub
    assert "trust_remote_code=True" in card.text and "Limitations and bias" in card.text
    if pipeline_tag == "text-classification":
        # --eval_file scores: in the table, not the index; a local file is not named (test_export_privacy.py)
        assert "| local file 1 | accuracy | 0.7000 |" in card.text
        f1 = next(r for r in results if r.metric_type == "f1")  # the evaluate id, with the average it used
        assert f1.metric_name == "macro-F1" and f1.metric_args == {"average": "macro"}
        assert "| sst2_sentence validation | macro-F1 | 0.8000 |" in card.text
        assert "unweighted mean of the per-class F1" in card.text
    # mlm_probability describes masked-LM training only; every card gives the vocabulary and the steps
    assert ("`mlm_probability`: 0.15" in card.text) == (pipeline_tag == "fill-mask")
    assert f"- vocabulary size: {len(tokenizer):,} tokens" in card.text
    assert "- optimizer steps trained: 10" in card.text
    assert ("(12,800 tokens)" in card.text) == (pipeline_tag != "text-classification")

    batch = dict(encode(tokenizer, ["O brave new world", "That has such people in't"]))
    with torch.no_grad():
        expected_logits = first_output(model(**batch))
    torch.testing.assert_close(load_without_seqlab(export, auto_name, batch), expected_logits, rtol=1e-5, atol=1e-6)


def test_fine_tune_card_names_its_base_model(tmp_path, tokenizer):
    run = tmp_path / "run"
    fake_run(run, "recurrent", "AutoModelForSequenceClassification", tokenizer)
    export_for_hub(run, tmp_path / "export", "someone/lstm-sst2", {"base_model": "someone/lstm-lm"})
    card = ModelCard.load(tmp_path / "export" / "README.md")
    assert card.data.base_model == "someone/lstm-lm"
    assert "fine-tuned from" in card.text


def test_bad_model_dirs_are_refused_and_nothing_is_written(tmp_path, tokenizer):
    with pytest.raises(SeqlabUsageError, match="does not exist"):
        export_for_hub(tmp_path / "nope", tmp_path / "export", "a/b")
    run = tmp_path / "run"
    fake_run(run, "decoder", "AutoModelForCausalLM", tokenizer)
    (run / "model.safetensors").unlink()
    with pytest.raises(SeqlabUsageError, match="model.safetensors missing"):
        export_for_hub(run, tmp_path / "export", "a/b")
    assert not (tmp_path / "export").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging folder left behind


def test_cli_dry_run_and_usage_error(tmp_path, tokenizer, repo_root):
    run = tmp_path / "run"
    fake_run(run, "encoder", "AutoModelForMaskedLM", tokenizer)
    script = str(repo_root / "scripts" / "push_to_hub.py")
    ok = subprocess.run(
        [sys.executable, script, "--model_dir", str(run), "--repo_id", "me/enc", "--dry_run_dir", str(tmp_path / "out")],
        capture_output=True, text=True, env=os.environ.copy(), timeout=300,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "nothing uploaded" in ok.stdout and (tmp_path / "out" / "README.md").is_file()
    bad = subprocess.run(
        [sys.executable, script, "--model_dir", str(tmp_path / "missing"), "--repo_id", "me/enc", "--dry_run_dir", str(tmp_path / "out2")],
        capture_output=True, text=True, env=os.environ.copy(), timeout=300,
    )  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
    assert not (tmp_path / "out2").exists()


class RecordingApi:
    def __init__(self):
        self.calls = []

    def create_repo(self, **kwargs):
        self.calls.append(("create_repo", kwargs))

    def upload_folder(self, **kwargs):
        files = sorted(os.listdir(kwargs["folder_path"]))
        self.calls.append(("upload_folder", {**kwargs, "files": files}))
        return "https://huggingface.co/me/model/commit/abc"


def test_push_uses_create_repo_then_upload_folder(tmp_path, tokenizer):
    run, export = tmp_path / "run", tmp_path / "export"
    fake_run(run, "recurrent", "AutoModelForCausalLM", tokenizer)
    files = export_for_hub(run, export, "me/model")
    api = RecordingApi()
    url = push_folder(export, "me/model", private=True, api=api)
    assert url.endswith("/commit/abc")
    (name1, create), (name2, upload) = api.calls
    assert name1 == "create_repo" and create == {
        "repo_id": "me/model",
        "private": True,
        "exist_ok": True,
        "repo_type": "model",
    }
    assert name2 == "upload_folder" and upload["repo_id"] == "me/model" and upload["files"] == files


def test_model_push_to_hub_carries_the_code(tmp_path, tokenizer, monkeypatch):
    """transformers' own push_to_hub still uploads the modeling code (register_for_auto_class)."""
    import huggingface_hub

    commits = []

    def fake_create_commit(self, repo_id, operations, **kwargs):
        commits.append((repo_id, {op.path_in_repo for op in operations}))
        return huggingface_hub.CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/1", commit_message="", commit_description="",
            oid="1" * 40, pr_url=None,
        )  # fmt: skip

    monkeypatch.setattr(
        huggingface_hub.HfApi,
        "create_repo",
        lambda self, repo_id, **k: huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}"),
    )
    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit", fake_create_commit)
    model = make_model("decoder", "AutoModelForCausalLM", tokenizer)
    model.push_to_hub("me/decoder", token="hf_fake")
    tokenizer.push_to_hub("me/decoder", token="hf_fake")
    (model_repo, model_files), (tokenizer_repo, tokenizer_files) = commits
    assert model_repo == tokenizer_repo == "me/decoder"
    assert {"config.json", "model.safetensors", "modeling_decoder.py", "configuration_decoder.py"} <= model_files
    assert "tokenizer.json" in tokenizer_files


@pytest.mark.parametrize("family, auto_name, task", [
    ("recurrent", "AutoModelForCausalLM", "text-generation"),
    ("decoder", "AutoModelForCausalLM", "text-generation"),
    ("encoder", "AutoModelForMaskedLM", "fill-mask"),
])  # fmt: skip
def test_language_model_card_usage_example_runs(tmp_path, tokenizer, family, auto_name, task, capsys):
    """The card's pipeline example (generation, or fill-mask for the encoder) runs as written on the export."""
    run, export = tmp_path / "run", tmp_path / "export"
    fake_run(run, family, auto_name, tokenizer)
    export_for_hub(run, export, repo_id="someone/seqlab-test")
    text = ModelCard.load(export / "README.md").text
    blocks = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    example = next(block for block in blocks if f'pipeline("{task}"' in block)
    assert ("generated_text" in example) == (task == "text-generation") and ("<mask>" in example) == (
        task == "fill-mask"
    )
    torch.manual_seed(0)
    exec(compile(example.replace("someone/seqlab-test", str(export)), "card example", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.strip() and ("The film" in printed if task == "text-generation" else "'token_str'" in printed)
