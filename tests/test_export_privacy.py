"""Export privacy (issue 15): no local path and no planted key reaches the Hub, and the export still works."""

import contextlib
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
from test_hf_integration import encode, first_output
from test_hub import fake_run
from transformers import AutoTokenizer

from seqlab.errors import SeqlabUsageError
from seqlab.hub import export_for_hub
from seqlab.hub.card import DataNames
from seqlab.hub.export import _refuse_local_paths, config_keys

SECRET_PATH = "/home/alice/private/customer_emails.tsv"
TOKEN = "hf_abcPLANTEDsecret0123456789"
API_KEY = "sk-PLANTED-api-key-42"


def plant(run, tmp_path, classifier: bool) -> list[str]:
    """Point the run's recipe and metrics at private local paths and plant secrets in its JSON files.

    Returns every string that must not appear in any exported file.
    """
    private = tmp_path / "alice" / "private"
    recipe = {
        "config": "configs/private/alice.yaml", "output_dir": str(run), "tokenizer_path": str(private / "tokenizer"),
        "learning_rate": 0.001, "max_steps": 10, "seed": 3,
    }  # fmt: skip
    if classifier:
        recipe |= {"dataset": SECRET_PATH, "model_name_or_path": str(private / "pretrain"),
                   "eval_files": [str(private / "holdout_customers.tsv")]}  # fmt: skip
    else:
        recipe |= {"datasets": ["general_english", f"{SECRET_PATH}", "imdb:unsup"],
                   "tokenizer_train": {"sources": [SECRET_PATH], "vocab_size": 512}}  # fmt: skip
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    metrics = json.loads((run / "metrics.json").read_text())
    if classifier:  # finetune.py names an --eval_file by its base name
        metrics["eval_files"] = {"holdout_customers.tsv": {"accuracy": 0.7, "f1": 0.6}}
    (run / "metrics.json").write_text(json.dumps({**metrics, "model_name_or_path": str(private / "pretrain")}))
    # the output-folder lock records the holder's command line: never exported (not a whitelisted name)
    (run / ".seqlab.lock").write_text(json.dumps({"pid": 1, "command": f"finetune.py --dataset {SECRET_PATH}"}))
    for name, planted in [("config.json", {"hf_token": TOKEN}),
                          ("tokenizer_config.json", {"hf_token": TOKEN, "api_key": API_KEY})]:  # fmt: skip
        data = json.loads((run / name).read_text())
        (run / name).write_text(json.dumps({**data, **planted}))
    return [TOKEN, API_KEY, "/home/alice", "customer_emails", "holdout_customers", str(tmp_path), "configs/private"]


@pytest.mark.parametrize("family, auto_name", [
    ("decoder", "AutoModelForSequenceClassification"),
    ("recurrent", "AutoModelForCausalLM"),
])  # fmt: skip
def test_no_local_path_or_planted_key_is_exported(tmp_path, tokenizer, family, auto_name, caplog):
    run, export = tmp_path / "run", tmp_path / "export"
    model = fake_run(run, family, auto_name, tokenizer)
    classifier = auto_name.endswith("SequenceClassification")
    forbidden = plant(run, tmp_path, classifier)
    with caplog.at_level(logging.WARNING, logger="seqlab.hub.export"):
        files = export_for_hub(run, export, repo_id="someone/private-test")

    for name in files:  # every exported file, weights included
        content = (export / name).read_bytes()
        leaked = [s for s in forbidden if s.encode() in content or json.dumps(s)[1:-1].encode() in content]
        assert not leaked, f"{name} publishes {leaked}"
    config = json.loads((export / "config.json").read_text())
    assert set(config) <= config_keys(model.config) and "auto_map" in config
    assert {"hf_token", "api_key"}.isdisjoint(json.loads((export / "tokenizer_config.json").read_text()))

    # one warning line names every key left out, per file
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "\n" not in warning
    assert warning.endswith("(not published): config.json: hf_token; tokenizer_config.json: hf_token, api_key")

    # the card still validates and names the data by key, a local file as "local file N"
    card = ModelCard.load(export / "README.md")
    data = card.data.to_dict()
    assert data.get("datasets") == (None if classifier else ["general_english", "stanfordnlp/imdb"])
    _, results = model_index_to_eval_results(data["model-index"])
    if classifier:
        assert {r.dataset_name for r in results} == {"local file 1 validation"}
        assert "| local file 2 | accuracy | 0.7000 |" in card.text  # the --eval_file, not its name
        assert "`dataset`: local file 1" in card.text
    else:
        assert "Sources as given to seqlab (`general_english, local file 1, imdb:unsup`)" in card.text
        assert "- `local file 1`: a local file of the author's (its path is not published)" in card.text

    # the exported model and tokenizer load and compute what the run's did
    exported_tokenizer = AutoTokenizer.from_pretrained(export)
    assert len(exported_tokenizer) == len(tokenizer)  # the planted "hf_token" did not become a special token
    batch = dict(encode(tokenizer, ["O brave new world", "That has such people in't"]))
    assert torch.equal(dict(encode(exported_tokenizer, ["O brave new world", "That has such people in't"]))["input_ids"],
                       batch["input_ids"])  # fmt: skip
    with torch.no_grad():
        expected = first_output(model(**batch))
    torch.testing.assert_close(load_without_seqlab(export, auto_name, batch), expected, rtol=1e-5, atol=1e-6)


def test_cli_warns_in_one_line_and_publish_file_names_publishes_base_names_only(tmp_path, tokenizer, repo_root):
    run, export = tmp_path / "run", tmp_path / "export"
    fake_run(run, "encoder", "AutoModelForSequenceClassification", tokenizer)
    plant(run, tmp_path, classifier=True)
    result = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "push_to_hub.py"), "--model_dir", str(run), "--repo_id", "me/enc",
         "--dry_run_dir", str(export), "--publish_file_names"],
        capture_output=True, text=True, env=os.environ.copy(), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if "hf_token" in line]
    assert len(warnings) == 1 and "api_key" in warnings[0] and TOKEN not in result.stderr
    card = (export / "README.md").read_text()
    assert "| holdout_customers.tsv | accuracy | 0.7000 |" in card and "`dataset`: customer_emails.tsv" in card
    assert "/home/alice" not in card and "private/" not in card and str(tmp_path) not in card


def test_data_names():
    names = DataNames()
    assert [names.source(s) for s in ["imdb:unsup", "sst2_sentence", "/a/x.tsv", "C:\\b\\y.txt", "/a/x.tsv"]] == [
        "imdb:unsup", "sst2_sentence", "local file 1", "local file 2", "local file 1"]  # fmt: skip
    assert names.key("imdb:unsup") == "imdb" and names.key("/a/x.tsv") == "local file 1"
    named = DataNames(publish_file_names=True)
    assert [named.file(p) for p in ["/a/train.tsv", "/b/train.tsv", "C:\\c\\dev.csv", "/a/train.tsv"]] == [
        "train.tsv", "train.tsv (2)", "dev.csv", "train.tsv"]  # fmt: skip


def test_a_local_path_left_anywhere_refuses_the_export(tmp_path, tokenizer):
    """The last check fails closed: labels named after a private file would publish its path in config.json."""
    run, export = tmp_path / "run", tmp_path / "export"
    fake_run(run, "decoder", "AutoModelForSequenceClassification", tokenizer)
    plant(run, tmp_path, classifier=True)
    config = json.loads((run / "config.json").read_text())
    config["id2label"] = {"0": "negative", "1": SECRET_PATH}
    config["label2id"] = {"negative": 0, SECRET_PATH: 1}
    (run / "config.json").write_text(json.dumps(config))
    # the card lists the labels too, and README.md is checked first
    with pytest.raises(
        SeqlabUsageError, match=f"export refused: README.md would publish the local path '{SECRET_PATH}'"
    ):
        export_for_hub(run, export, "a/b")
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no export, no staging folder left behind


@pytest.mark.parametrize("text, leaks", [
    ("trained in /data/alice on 2 cores", True),
    ('{"file": "/data"}', True),
    ("`/data/x.tsv`", True),
    ('{"dir": "C:\\\\data"}', True),  # a Windows path as JSON writes it
    ("https://huggingface.co/datasets/imdb", False),  # "/data" inside a word of a link is no path
    ("see /database", False),
])  # fmt: skip
def test_the_local_path_check_matches_whole_paths_only(tmp_path, text, leaks):
    (tmp_path / "README.md").write_text(text)
    refused = pytest.raises(SeqlabUsageError, match="export refused: README.md would publish the local path")
    with refused if leaks else contextlib.nullcontext():
        _refuse_local_paths(tmp_path, {"/data", "C:\\data"})


def test_a_tokenizer_config_that_is_not_json_is_one_clear_error(tmp_path, tokenizer):
    run = tmp_path / "run"
    fake_run(run, "decoder", "AutoModelForCausalLM", tokenizer)
    (run / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(SeqlabUsageError, match=r"tokenizer_config.json is not valid JSON"):
        export_for_hub(run, tmp_path / "export", "a/b")
    assert not (tmp_path / "export").exists()
