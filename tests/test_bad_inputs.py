"""The bad-input catalogue: every wrong file, argument or folder gets a clear error, and costs nothing.

For each entry: the error names the problem (file, line, key or value) and the fix; through a
command line it is one ``error: ...`` line on stderr, no traceback, exit status 1 (2 for argparse
syntax errors); and nothing is half-written: a refused run leaves no ``output_dir``, a refused
resume leaves the run folder as it was. Entries (85, by surface):

- recipes and configs (14): recipe file not YAML / not a mapping / missing; model YAML without a
  family / with an impossible config; negative learning rate; two budgets; mlm_probability outside
  (0, 1); a batch larger than the corpus; output_dir that is a file; a pretraining budget in
  fine-tuning; ulmfit_lr_decay < 1; a model_config folder whose config.json is broken; an output_dir
  that cannot be written (refused before the data is read).
- command-line arguments (10): a positional argument; a flag without its value; a non-integer step
  count; an unknown choice; a dotted key on a non-mapping; fp16 without a GPU; an unknown strategy;
  a tokenizer vocabulary below the byte alphabet / above 1,048,576; argparse syntax (missing
  required --output_dir).
- data files (19): not UTF-8; binary bytes; only blank lines; one enormous line; an enormous table
  field; a missing text column; a missing label column; a label of the wrong type (string, list);
  NaN labels (CSV and JSON); a negative label; a number where the text should be; a line that is
  not JSON; a truncated .gz; an unknown file format; a file (or ``key:train``) fine-tuned on with no
  evaluation split of its own (its training rows would be scored as validation); one long document
  (whole-document validation would take it all).
- model folders and checkpoints (33): missing config.json; config.json not JSON; a non-seqlab
  model_type; truncated safetensors; corrupted safetensors header; non-finite weights; weights of
  another family; weights of another size; tokenizer/model vocabulary mismatch (size, special ids);
  a damaged tokenizer.json; a config.json with fewer layers than its weights; a truncated checkpoint; a
  checkpoint of another model; a resume with another learning rate, batch size or budget; an output
  folder in use by another run; an index with an empty weight_map / pointing at a pickle, a
  special_tokens_map.json that is not JSON, an unknown model_type beside an auto_map, a position table
  of another size (each in fine-tuning and in the export); a checkpoint without lr_scheduler.bin / with
  a pickle payload in optimizer.bin; a full disk at a checkpoint (OSError ENOSPC, torch's zip writer);
  a fine-tuning resume from a pretraining checkpoint.
- generation arguments (9): max_new_tokens beyond the decoder's positions; max_length beyond them;
  an encoder input longer than its positions; max_new_tokens <= 0; an empty prompt (decoder, LSTM);
  the LSTM's max_new_tokens absurd (10**9) or beyond its positions, its max_length beyond them.

A few CLI checks run as real subprocesses; the rest call the scripts in-process (same ``run_cli``).
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import seqlab  # noqa: F401  (registers the Auto classes)
from seqlab import DecoderConfig, DecoderForCausalLM, EncoderConfig, EncoderForSequenceClassification, RecurrentConfig
from seqlab.data import load_text_dataset
from seqlab.errors import SeqlabUsageError
from seqlab.tokenizer import token_config_kwargs
from seqlab.training import run_finetuning, run_pretraining
from seqlab.training.test_hooks import debug_hooks

DECODER = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


@pytest.fixture(scope="module")
def model_yaml(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("bad") / "decoder.yaml"
    path.write_text(yaml.safe_dump({"family": "decoder", **DECODER}))
    return str(path)


@pytest.fixture(scope="module")
def lm_folder(tokenizer, tmp_path_factory) -> Path:
    """A saved (untrained) decoder language model with its tokenizer: what a pretraining run leaves."""
    folder = tmp_path_factory.mktemp("lm") / "decoder-lm"
    torch.manual_seed(0)
    DecoderForCausalLM(DecoderConfig(**DECODER, **token_config_kwargs(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def pretrain_recipe(tokenizer, model_yaml: str, output_dir: Path, **extra) -> dict:
    return {
        "model_config": model_yaml,
        "tokenizer_path": tokenizer.saved_folder,
        "datasets": ["tinyshakespeare"],
        "max_seq_length": 32,
        "max_corpus_tokens": 6000,
        "per_device_train_batch_size": 4,
        "max_steps": 2,
        "eval_steps": None,
        "save_steps": None,
        "output_dir": str(output_dir),
        **extra,
    }


def finetune_recipe(model: str | Path, output_dir: Path, **extra) -> dict:
    return {
        "model_name_or_path": str(model),
        "dataset": "sst2_sentence",
        "num_train_examples": 16,
        "max_length": 32,
        "per_device_train_batch_size": 8,
        "max_steps": 1,
        "max_eval_batches": 1,
        "output_dir": str(output_dir),
        **extra,
    }


def refused(run, recipe: dict, match: str) -> SeqlabUsageError:
    """The run is refused with a usage error matching ``match`` and its output_dir was never created."""
    with pytest.raises(SeqlabUsageError, match=match) as caught:
        run(recipe)
    assert not Path(recipe["output_dir"]).exists(), "a refused run wrote its output_dir"
    assert "\n" not in str(caught.value), "the message spans several lines"
    return caught.value


def write(path: Path, content: str | bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


# ----------------------------------------------------------------------------------------------
# Recipes and configs
# ----------------------------------------------------------------------------------------------

RECIPE_CASES = [
    ("recipe-not-yaml", lambda d: {"config": write(d / "r.yaml", "max_steps: [1, 2\n")}, r"r.yaml' is not valid YAML"),
    (
        "recipe-not-mapping",
        lambda d: {"config": write(d / "r.yaml", "- max_steps\n- 3\n")},
        r"must hold a mapping of keys to values, not list",
    ),
    ("recipe-missing", lambda d: {"config": str(d / "nope.yaml")}, r"recipe file '.*nope.yaml' does not exist"),
    (
        "model-yaml-without-family",
        lambda d: {"model_config": write(d / "m.yaml", "hidden_size: 32\n")},
        r"must name its `family`, one of recurrent, decoder, encoder; got None",
    ),
    (
        "model-config-impossible",
        lambda d: {"model": {"num_attention_heads": 3}},
        r"invalid model config from .*: .*num_attention_heads",
    ),
    ("negative-learning-rate", lambda d: {"learning_rate": -1e-3}, r"'learning_rate' must be > 0, got -0.001"),
    ("two-budgets", lambda d: {"num_train_epochs": 1.0}, r"recipe sets max_steps and num_train_epochs; set only one"),
    ("mlm-probability-above-1", lambda d: {"mlm_probability": 1.5}, r"mlm_probability must lie in \(0, 1\), got 1.5"),
    ("batch-larger-than-corpus", lambda d: {"per_device_train_batch_size": 1000}, r"fewer than one batch \(1000 x 1"),
    (
        "output-dir-is-a-file",
        lambda d: {"output_dir": write(d / "taken.txt", "x")},
        r"output_dir '.*taken.txt' is a file",
    ),
    (
        "model-config-folder-broken-json",
        lambda d: {"model_config": str(Path(write(d / "m" / "config.json", "{oops")).parent)},
        r"config.json cannot be read as a seqlab model config",
    ),
]


@pytest.mark.parametrize("name, change, match", RECIPE_CASES, ids=[c[0] for c in RECIPE_CASES])
def test_bad_pretraining_recipe(name, change, match, tokenizer, model_yaml, tmp_path):
    recipe = {**pretrain_recipe(tokenizer, model_yaml, tmp_path / "out"), **change(tmp_path)}
    if name == "output-dir-is-a-file":
        with pytest.raises(SeqlabUsageError, match=match):
            run_pretraining(recipe)
        assert Path(recipe["output_dir"]).read_text() == "x"
        return
    refused(run_pretraining, recipe, match)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"max_train_tokens": 1000, "max_steps": None}, r"max_train_tokens is a pretraining budget"),
        ({"strategy": "ulmfit", "ulmfit_lr_decay": 0.5}, r"ulmfit_lr_decay must be >= 1"),
    ],
    ids=["pretraining-budget-in-finetuning", "ulmfit-decay-below-1"],
)
def test_bad_finetuning_recipe(change, match, lm_folder, tmp_path):
    refused(run_finetuning, {**finetune_recipe(lm_folder, tmp_path / "out"), **change}, match)


# ----------------------------------------------------------------------------------------------
# Command-line arguments (the scripts run in-process here; see the subprocess checks at the end)
# ----------------------------------------------------------------------------------------------


def run_script(repo_root: Path, script: str, argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", [script, *argv])
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(repo_root / "scripts" / script), run_name="__main__")
    return stopped.value.code, capsys.readouterr().err


CLI_CASES = [
    (
        "positional-argument",
        "pretrain.py",
        ["runs/x"],
        r"error: unexpected argument 'runs/x'; pass settings as --key value",
    ),
    ("flag-without-value", "pretrain.py", ["--max_steps"], r"error: --max_steps needs a value; pass --max_steps VALUE"),
    (
        "steps-not-an-integer",
        "pretrain.py",
        ["--max_steps", "ten"],
        r"error: recipe key 'max_steps' must be an integer, got 'ten'",
    ),
    (
        "unknown-choice",
        "pretrain.py",
        ["--mixed_precision", "fp8"],
        r"error: recipe key 'mixed_precision' is 'fp8'; choose one of auto, no, bf16, fp16",
    ),
    (
        "dotted-key-on-a-scalar",
        "pretrain.py",
        ["--learning_rate.warmup", "3"],
        r"error: recipe key 'learning_rate' is not a mapping",
    ),
    ("fp16-without-gpu", "finetune.py", ["--mixed_precision", "fp16"], r"error: mixed_precision fp16 needs a CUDA GPU"),
    (
        "unknown-strategy",
        "finetune.py",
        ["--strategy", "lora"],
        r"error: recipe key 'strategy' is 'lora'; choose one of full, freeze_body, ulmfit",
    ),
    (
        "vocab-below-byte-alphabet",
        "train_tokenizer.py",
        ["--dataset", "tinyshakespeare", "--vocab_size", "100"],
        r"error: vocab_size=100 is too small for a 'bpe' tokenizer: it needs at least 261",
    ),
    (
        "vocab-absurdly-large",
        "train_tokenizer.py",
        ["--dataset", "tinyshakespeare", "--vocab_size", "2000000000"],
        r"error: vocab_size=2000000000 is above seqlab's limit of 1,048,576 tokens",
    ),  # aborted in Rust (141 GB)
]


@pytest.mark.parametrize("name, script, argv, match", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_command_line(
    name, script, argv, match, repo_root, tmp_path, monkeypatch, capsys, lm_folder, model_yaml, tokenizer
):
    out = tmp_path / "out"
    base = {
        "pretrain.py": [
            "--model_config",
            model_yaml,
            "--tokenizer_path",
            tokenizer.saved_folder,
            "--datasets",
            "tinyshakespeare",
            "--output_dir",
            str(out),
        ],
        "finetune.py": ["--model_name_or_path", str(lm_folder), "--output_dir", str(out)],
        "train_tokenizer.py": ["--output_dir", str(out)],
    }[script]
    code, err = run_script(repo_root, script, base + argv, monkeypatch, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.match(match, lines[0]), err
    assert not out.exists()


def test_argparse_syntax_error_exits_2_with_usage(repo_root, monkeypatch, capsys, tmp_path):
    code, err = run_script(repo_root, "train_tokenizer.py", ["--dataset", "tinyshakespeare"], monkeypatch, capsys)
    assert code == 2 and "the following arguments are required: --output_dir" in err and "Traceback" not in err


# ----------------------------------------------------------------------------------------------
# Data files
# ----------------------------------------------------------------------------------------------

TEXT_CASES = [
    (
        "not-utf8",
        "corpus.txt",
        "First line\n\nSecond caf\xe9 line\n".encode("latin-1"),
        r"corpus.txt: not UTF-8 text \(line 3: its byte 11, 0xe9, cannot be decoded\).*iconv",
    ),
    ("binary-bytes", "corpus.txt", bytes(range(128, 256)) * 40, r"corpus.txt: not UTF-8 text \(line 1"),
    ("only-blank-lines", "corpus.txt", "\n   \n\t\n\r\n\n", r"corpus.txt' \(split 'train'\) holds no texts"),
    ("one-enormous-line", "corpus.txt", "word " * 220_000, r"corpus.txt: line 1 is longer than 1,000,000 characters"),
    (
        "truncated-gzip",
        "corpus.txt.gz",
        gzip.compress(" ".join(f"w{i}" for i in range(60_000)).encode())[:30_000],
        r"corpus.txt.gz: cannot be read after line \d+ .*damaged or truncated",
    ),
    ("unknown-format", "corpus.parquet", b"PAR1", r"its format '.parquet' is not one of .txt, .tsv, .csv, .jsonl"),
    (
        "number-instead-of-text",
        "corpus.jsonl",
        '{"text": "fine"}\n{"text": 5}\n',
        r"corpus.jsonl row 2: column 'text' holds 5, not a text",
    ),
    ("line-not-json", "corpus.jsonl", '{"text": "fine"}\n{"text": "cut\n', r"corpus.jsonl row 2: not valid JSON"),
    (
        "one-long-document",
        "corpus.txt",
        "word " * 40_000 + "\n",
        r"holds 6000 tokens but only 1 document\(s\) .* or pass --validation_fraction 0 to train without",
    ),
]


@pytest.mark.parametrize("name, file_name, content, match", TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_bad_pretraining_data_file(name, file_name, content, match, tokenizer, model_yaml, tmp_path):
    path = write(tmp_path / file_name, content)
    refused(run_pretraining, pretrain_recipe(tokenizer, model_yaml, tmp_path / "out", datasets=[path]), match)


def test_the_fix_the_one_long_document_message_names_works(tokenizer, model_yaml, tmp_path):
    path = write(tmp_path / "corpus.txt", "word " * 40_000 + "\n")
    recipe = pretrain_recipe(tokenizer, model_yaml, tmp_path / "out", datasets=[path], validation_fraction=0.0)
    assert run_pretraining(recipe)["step"] == 2


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write in: permission bits for a user; for root, whom they do not stop,
    /sys, where the kernel refuses new files to anyone."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    if not Path("/sys").is_dir():
        pytest.skip("running as root without /sys: no folder here refuses writes")
    return Path("/sys")


def test_unwritable_output_dir_is_refused_before_the_data_is_read(tokenizer, model_yaml, tmp_path, monkeypatch):
    import seqlab.data

    def no_data(*args, **kwargs):
        raise AssertionError("the data was read before the output folder was checked")

    monkeypatch.setattr(seqlab.data, "build_pretraining_dataset", no_data)
    output_dir = _unwritable_folder(tmp_path) / "seqlab-test-out"
    with pytest.raises(
        SeqlabUsageError,
        match=r"output_dir '.*seqlab-test-out' cannot be written \(it would be "
        r"created in .*\): .*; pass an --output_dir on a writable disk",
    ) as caught:
        run_pretraining(pretrain_recipe(tokenizer, model_yaml, output_dir))
    assert "\n" not in str(caught.value) and not output_dir.exists()


LABELLED_CASES = [
    (
        "missing-text-column",
        "train.jsonl",
        '{"body": "a good film", "label": 1}\n',
        r"no text column; columns seen: body, label",
    ),
    (
        "missing-label-column",
        "train.tsv",
        "sentence\tscore\ngood\t0.9\n",
        r"has no label column; columns seen: sentence, score",
    ),
    (
        "label-is-a-word",
        "train.jsonl",
        '{"text": "good", "label": 1}\n{"text": "bad", "label": "negative"}\n',
        r"train.jsonl row 2: label 'negative' in column 'label' is not an integer class id",
    ),
    (
        "label-is-a-list",
        "train.jsonl",
        '{"text": "good", "label": [1]}\n',
        r"row 1: label \[1\] .* not an integer class id",
    ),
    ("nan-label-csv", "train.csv", "text,label\ngood,1\nbad,NaN\n", r"train.csv row 2: label 'NaN' .* not an integer"),
    (
        "nan-label-json",
        "train.jsonl",
        '{"text": "good", "label": NaN}\n',
        r"train.jsonl row 1: label nan .* not an integer",
    ),
    (
        "negative-label",
        "train.csv",
        "text,label\ngood,1\nbad,-1\n",
        r"dataset '.*train.csv' \(split 'train'\): labels must be 0 or more; found -1",
    ),
    (
        "enormous-table-field",
        "train.tsv",
        "sentence\tlabel\n" + "x" * 200_000 + "\t1\n",
        r"train.tsv, after line \d: not a valid TSV row \(field larger than field limit",
    ),
]


@pytest.mark.parametrize("name, file_name, content, match", LABELLED_CASES, ids=[c[0] for c in LABELLED_CASES])
def test_bad_labelled_data_file(name, file_name, content, match, lm_folder, tmp_path):
    path = write(tmp_path / file_name, content)
    refused(run_finetuning, finetune_recipe(lm_folder, tmp_path / "out", dataset=path, num_train_examples=None), match)


def test_a_bad_row_deep_in_a_file_is_named_by_its_row(tmp_path):
    rows = "".join(f"review {i}\t{i % 2}\n" for i in range(5000)) + "review x\tpositive\n"
    path = write(tmp_path / "big.tsv", "sentence\tlabel\n" + rows)
    with pytest.raises(SeqlabUsageError, match=r"big.tsv row 5001: label 'positive'"):
        load_text_dataset(path)


def _labelled_rows(count: int) -> str:
    return "sentence\tlabel\n" + "".join(
        f"{'a fine' if i % 2 else 'a dull'} film, take {i}\t{i % 2}\n" for i in range(count)
    )


@pytest.mark.parametrize(
    "dataset",
    ["train.tsv", "sst2_sentence:train"],
    ids=["file-dataset-without-eval-split", "key-split-without-eval-split"],
)
def test_training_rows_are_never_scored_as_validation(dataset, lm_folder, tmp_path):
    """A file (or ``key:train``) has no evaluation split of its own: 'validation' would be the training rows."""
    if dataset.endswith(".tsv"):
        dataset = write(tmp_path / dataset, _labelled_rows(40))
    refused(
        run_finetuning,
        finetune_recipe(lm_folder, tmp_path / "out", dataset=dataset),
        r"dataset '.*train.*' has no evaluation split of its own: evaluating on split 'validation' would score "
        r"the training rows themselves; pass a labelled file of held-out rows as --eval_split DEV_FILE",
    )


def test_eval_split_may_name_a_file_of_held_out_rows(lm_folder, tmp_path):
    train, dev = write(tmp_path / "train.tsv", _labelled_rows(40)), write(tmp_path / "dev.tsv", _labelled_rows(10))
    metrics = run_finetuning(finetune_recipe(lm_folder, tmp_path / "out", dataset=train, eval_split=dev))
    assert metrics["eval_examples"] == 10


# ----------------------------------------------------------------------------------------------
# Model folders and checkpoints
# ----------------------------------------------------------------------------------------------


def _damage(folder: Path, how: str, tokenizer) -> None:
    weights = folder / "model.safetensors"
    config = json.loads((folder / "config.json").read_text())
    if how == "missing-config":
        (folder / "config.json").unlink()
    elif how == "config-not-json":
        (folder / "config.json").write_text('{"model_type": "seqlab_decoder", ')
    elif how == "not-a-seqlab-model-type":
        (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 512}))
    elif how == "truncated-safetensors":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "corrupted-safetensors-header":
        data = bytearray(weights.read_bytes())
        data[8:40] = os.urandom(32)
        weights.write_bytes(bytes(data))
    elif how == "non-finite-weights":
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(weights))
        tensors[
            "model.layers.0.mlp.fc_in.weight" if "model.layers.0.mlp.fc_in.weight" in tensors else sorted(tensors)[-1]
        ].view(-1)[:7] = float("nan")
        save_file(tensors, str(weights), metadata={"format": "pt"})
    elif how == "weights-of-another-family":
        recurrent = RecurrentConfig(
            cell_type="lstm", hidden_size=32, embedding_size=32, num_hidden_layers=2, **token_config_kwargs(tokenizer)
        )
        (folder / "config.json").write_text(recurrent.to_json_string())
    elif how == "weights-of-another-size":
        config["intermediate_size"] = 96
        (folder / "config.json").write_text(json.dumps(config))
    elif how == "config-with-fewer-layers-than-weights":
        config["num_hidden_layers"] = 1
        (folder / "config.json").write_text(json.dumps(config))
    elif how == "vocabulary-smaller-than-tokenizer":
        config["vocab_size"] = 300
        (folder / "config.json").write_text(json.dumps(config))
    elif how == "special-token-ids-differ":
        config["pad_token_id"] = 7
        (folder / "config.json").write_text(json.dumps(config))
    elif how == "damaged-tokenizer":
        text = (folder / "tokenizer.json").read_text()
        (folder / "tokenizer.json").write_text(text[: len(text) // 3])
    elif how == "index-with-empty-weight-map":
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": {}}))
    elif how == "index-pointing-at-a-pickle":
        from safetensors.torch import load_file

        tensors = load_file(str(weights))
        torch.save(tensors, folder / "pytorch_model.bin")
        weights.unlink()
        index = {"metadata": {}, "weight_map": {name: "pytorch_model.bin" for name in tensors}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    elif how == "special-tokens-map-not-json":
        (folder / "special_tokens_map.json").write_text('{"pad_token": "<pad>", ')
    elif how == "unknown-model-type":  # a seqlab folder (auto_map and all) whose model_type no family defines
        config["model_type"] = "seqlab_mamba"
        config.setdefault("auto_map", {"AutoConfig": "configuration_decoder.DecoderConfig"})
        (folder / "config.json").write_text(json.dumps(config))
    elif how == "position-table-mismatch":
        config["max_position_embeddings"] = 2 * config["max_position_embeddings"]
        (folder / "config.json").write_text(json.dumps(config))
    else:
        raise AssertionError(how)


MODEL_CASES = [
    ("missing-config", r"is not a model folder \(no config.json\)"),
    ("config-not-json", r"config.json cannot be read as a seqlab model config"),
    ("not-a-seqlab-model-type", r"model_type 'gpt2' is not a seqlab family"),
    ("truncated-safetensors", r"model.safetensors is truncated or corrupted \(.*incomplete metadata"),
    ("corrupted-safetensors-header", r"model.safetensors is truncated or corrupted"),
    ("non-finite-weights", r"hold values that are not finite numbers \(1 tensors"),
    ("weights-of-another-family", r"the body weights of '.*model' did not load \(\d+ missing, e.g. model.layers"),
    ("weights-of-another-size", r"do not load into a decoder classifier \(.*size"),
    (
        "config-with-fewer-layers-than-weights",
        r"hold \d+ body tensors its config.json has no place for \(e.g. "
        r"model.layers.1\..*restore the config.json saved with them",
    ),
    ("vocabulary-smaller-than-tokenizer", r"the tokenizer has 512 tokens but the model config has vocab_size=300"),
    ("special-token-ids-differ", r"the tokenizer's pad_token_id is 0 but the model config's is 7"),
    (
        "damaged-tokenizer",
        r"the tokenizer in .* cannot be loaded \(tokenizer.json is not valid JSON: .*copy the folder",
    ),
    ("index-with-empty-weight-map", r"model.safetensors.index.json lists no weight files \(its weight_map is empty\)"),
    (
        "index-pointing-at-a-pickle",
        r"model.safetensors.index.json points at 'pytorch_model.bin', not a safetensors "
        r"file beside it; seqlab loads only safetensors",
    ),
    ("special-tokens-map-not-json", r"special_tokens_map.json is not valid JSON"),  # the export adds its own words
    (
        "unknown-model-type",
        r"config.json: model_type 'seqlab_mamba' is not a seqlab family; seqlab trains "
        r"seqlab_recurrent",
    ),
    (
        "position-table-mismatch",
        r"do not load into a decoder classifier \(size mismatch: model.safetensors holds "
        r"model.embed_positions.weight of shape \[64, 32\], config.json implies \[128, 32\]",
    ),
]


@pytest.mark.parametrize("how, match", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_bad_model_folder(how, match, lm_folder, tokenizer, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(lm_folder, folder)
    _damage(folder, how, tokenizer)
    refused(run_finetuning, finetune_recipe(folder, tmp_path / "out"), match)


EXPORT_CASES = [
    "index-with-empty-weight-map",
    "index-pointing-at-a-pickle",
    "special-tokens-map-not-json",
    "unknown-model-type",
    "position-table-mismatch",
]


@pytest.mark.parametrize("how", EXPORT_CASES)
def test_bad_model_folder_is_refused_by_the_export(how, lm_folder, tokenizer, tmp_path):
    from seqlab.hub import export_for_hub

    folder = tmp_path / "model"
    shutil.copytree(lm_folder, folder)
    _damage(folder, how, tokenizer)
    match = dict(MODEL_CASES)[how].replace("decoder classifier", "DecoderForCausalLM")
    with pytest.raises(SeqlabUsageError, match=match) as caught:
        export_for_hub(folder, tmp_path / "export", "someone/model")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "export").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.fixture(scope="module")
def checkpointed_run(tokenizer, model_yaml, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("ckpt")
    recipe = pretrain_recipe(tokenizer, model_yaml, folder / "run", max_steps=4, save_steps=2)
    with debug_hooks(stop_after_steps=2):  # test hook: stop after step 2 as if killed
        run_pretraining(recipe)
    return recipe


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "how, match",
    [
        (
            "truncated-checkpoint",
            r"checkpoint '.*step-2': model.safetensors is truncated or corrupted.*earlier checkpoint",
        ),
        (
            "checkpoint-of-another-model",
            r"checkpoint '.*step-2' does not fit this model: its model\.\S+ has shape "
            r"\[\d+, 32\], the model built from the recipe has \[\d+, 48\]",
        ),
        (
            "scheduler-file-missing",
            r"checkpoint '.*step-2': lr_scheduler.bin is missing, truncated or not a torch archive",
        ),
        (
            "optimizer-with-a-pickle-payload",
            r"checkpoint '.*step-2': optimizer.bin cannot be loaded safely \(UnpicklingError: "
            r".*getcwd",
        ),
    ],
    ids=[
        "truncated-checkpoint",
        "checkpoint-of-another-model",
        "scheduler-file-missing",
        "optimizer-with-a-pickle-payload",
    ],
)
def test_bad_checkpoint_is_refused_and_the_run_folder_left_as_it_was(how, match, checkpointed_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(checkpointed_run["output_dir"], run)
    recipe = {**checkpointed_run, "output_dir": str(run), "resume_from_checkpoint": "latest"}
    checkpoint = run / "checkpoints" / "step-2"
    if how == "truncated-checkpoint":
        weights = checkpoint / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-100])
    elif how == "scheduler-file-missing":
        (checkpoint / "lr_scheduler.bin").unlink()
    elif how == "optimizer-with-a-pickle-payload":
        state = torch.load(checkpoint / "optimizer.bin", weights_only=True)
        torch.save({**state, "payload": _Payload()}, checkpoint / "optimizer.bin")
    else:
        recipe["model"] = {"hidden_size": 48}
    before = _snapshot(run)
    with pytest.raises(SeqlabUsageError, match=match) as caught:
        run_pretraining(recipe)
    assert "\n" not in str(caught.value), "the message spans several lines"
    assert _snapshot(run) == before  # recipe.yaml included: a refusal rewrites nothing


class _Payload:
    """Unpickling this would call a function (a harmless one): what a malicious file does with a worse one."""

    def __reduce__(self):
        return os.getcwd, ()


@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1600 vs 1536"),  # torch's zip writer
    ],
    ids=["oserror-enospc", "torch-zip-writer"],
)
def test_disk_full_at_a_checkpoint_is_one_line_and_keeps_the_previous_checkpoint(
    failure, tokenizer, model_yaml, tmp_path, monkeypatch
):
    from accelerate import Accelerator

    from seqlab.training.checkpointing import check_checkpoint, list_checkpoints

    real_save_state = Accelerator.save_state

    def save_state(self, output_dir, **kwargs):  # the second checkpoint runs out of space half-way
        if "step-4" not in str(output_dir):
            return real_save_state(self, output_dir, **kwargs)
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "model.safetensors").write_bytes(b"\0" * 100)
        raise failure

    monkeypatch.setattr(Accelerator, "save_state", save_state)
    run = tmp_path / "run"
    with pytest.raises(
        SeqlabUsageError,
        match=r"could not write checkpoint step-4 in .*checkpoints \(.*\); the previous "
        r"checkpoint .*step-2 is intact: free disk space .* --resume_from_checkpoint "
        r"latest",
    ) as caught:
        run_pretraining(pretrain_recipe(tokenizer, model_yaml, run, max_steps=6, save_steps=2))
    assert "\n" not in str(caught.value)
    assert [p.name for p in list_checkpoints(run)] == ["step-2"] and check_checkpoint(run / "checkpoints" / "step-2")
    assert not list((run / "checkpoints").glob(".tmp-*"))  # the half-written checkpoint is gone


def test_finetuning_refuses_to_resume_from_a_pretraining_checkpoint(checkpointed_run, lm_folder, tmp_path):
    checkpoint = Path(checkpointed_run["output_dir"]) / "checkpoints" / "step-2"
    recipe = finetune_recipe(lm_folder, tmp_path / "out", resume_from_checkpoint=str(checkpoint))
    refused(
        run_finetuning,
        recipe,
        r"checkpoint '.*step-2' does not fit this model: it has no classifier\.\S+, which "
        r"the model built from the recipe needs; .* pass its folder as --model_name_or_path",
    )


@pytest.mark.parametrize(
    "change, match",
    [
        ({"learning_rate": 0.01}, r"records other settings than this run's \(learning_rate 0.001 -> 0.01\)"),
        ({"per_device_train_batch_size": 2}, r"\(per_device_train_batch_size 4 -> 2\)"),
        ({"max_steps": None, "max_train_tokens": 5000}, r"\(max_steps 4 -> None, max_train_tokens None -> 5000\)"),
    ],
    ids=["resume-with-another-learning-rate", "resume-with-another-batch-size", "resume-with-another-budget"],
)
def test_resume_with_changed_settings_is_refused(change, match, checkpointed_run, tmp_path):
    """A resume continues its checkpoint's optimizer, schedule and data position: its settings cannot change
    under it (recipe.yaml and the model card would claim what the run never did)."""
    run = tmp_path / "run"
    shutil.copytree(checkpointed_run["output_dir"], run)
    before = _snapshot(run)
    with pytest.raises(SeqlabUsageError, match=match + r".*only logging_steps, .* may change.*another --output_dir"):
        run_pretraining({**checkpointed_run, "output_dir": str(run), "resume_from_checkpoint": "latest", **change})
    assert _snapshot(run) == before


def test_resume_applies_bookkeeping_changes_and_records_them(checkpointed_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(checkpointed_run["output_dir"], run)
    metrics = run_pretraining(
        {
            **checkpointed_run,
            "output_dir": str(run),
            "resume_from_checkpoint": "latest",
            "logging_steps": 1,
            "save_steps": 1,
        }
    )
    assert metrics["step"] == 4
    recorded = yaml.safe_load((run / "recipe.yaml").read_text())
    assert recorded["logging_steps"] == 1 and recorded["save_steps"] == 1  # what the continuation did
    assert recorded["learning_rate"] == checkpointed_run.get("learning_rate", 1e-3)  # unchanged: nothing else may be
    assert [
        json.loads(line)["step"]
        for line in (run / "train_log.jsonl").read_text().splitlines()
        if "loss" in json.loads(line)
    ][-2:] == [3, 4]  # logged every step after the resume


_HOLD_LOCK = """
import sys, time
from seqlab.training.lock import OutputDirLock
lock = OutputDirLock(sys.argv[1])
lock.acquire(create=True)
print("locked", flush=True)
time.sleep(120)
"""


def test_output_dir_in_use_is_refused_and_a_killed_holder_blocks_nothing(
    checkpointed_run, repo_root, tmp_path, monkeypatch, capsys
):
    """Two runs on one output folder (two `--resume_from_checkpoint latest` jobs, say) would interleave their
    logs and checkpoints: the second is refused, naming the first; the lock dies with its process (kill -9)."""
    import signal

    from seqlab.training.lock import OutputDirLock

    run = tmp_path / "run"
    shutil.copytree(checkpointed_run["output_dir"], run)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root / "src"), os.environ.get("PYTHONPATH")])),
    }
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _snapshot(run)
        argv = [
            f"--{key}={value}"
            for key, value in checkpointed_run.items()
            if key not in ("datasets", "output_dir") and value is not None
        ]
        argv += ["--datasets", "tinyshakespeare", "--output_dir", str(run), "--resume_from_checkpoint", "latest"]
        code, err = run_script(repo_root, "pretrain.py", argv, monkeypatch, capsys)
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1, err
        assert re.match(
            rf"error: output_dir '.*run' is in use by another run \(pid {holder.pid} on host \S+, started "
            r".*\); wait for it to finish or stop it, or pass another --output_dir",
            lines[0],
        ), lines[0]
        assert _snapshot(run) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    lock = OutputDirLock(run)  # no stale lock: the kernel released it with the killed process
    lock.acquire(create=True)
    assert lock.held
    lock.release()


# ----------------------------------------------------------------------------------------------
# Generation arguments
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_decoder():
    config = DecoderConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
    )
    return DecoderForCausalLM(config).eval()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_new_tokens": 10}, r"Sequence length 17 .* exceeds max_position_embeddings=16 .* lower max_new_tokens"),
        ({"max_length": 40}, r"exceeds max_position_embeddings=16"),
        ({"max_new_tokens": 0}, r"`max_new_tokens` must be greater than 0, but is 0"),
    ],
    ids=["max-new-tokens-beyond-positions", "max-length-beyond-positions", "max-new-tokens-zero"],
)
def test_bad_generation_arguments(kwargs, match, short_decoder):
    prompt = torch.randint(5, 64, (1, 10))
    with pytest.raises(ValueError, match=match):
        short_decoder.generate(prompt, do_sample=False, eos_token_id=None, pad_token_id=0, **kwargs)


@pytest.fixture(scope="module")
def short_lstm():
    from seqlab import RecurrentForCausalLM

    config = RecurrentConfig(
        cell_type="lstm",
        vocab_size=64,
        hidden_size=16,
        embedding_size=16,
        num_hidden_layers=1,
        max_position_embeddings=16,
    )
    return RecurrentForCausalLM(config).eval()


@pytest.mark.parametrize("family", ["decoder", "lstm"])
def test_generation_from_an_empty_prompt_is_a_clear_error(family, short_decoder, short_lstm):
    model = {"decoder": short_decoder, "lstm": short_lstm}[family]
    with pytest.raises(
        ValueError,
        match=r"Model got an empty input \(0 tokens, e.g. input_ids of shape \(1, 0\)\): pass "
        r"at least one token",
    ):
        model.generate(
            torch.zeros((1, 0), dtype=torch.long), max_new_tokens=3, do_sample=False, eos_token_id=None, pad_token_id=0
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"max_new_tokens": 10**9},
            r"Sequence length 1000000010 \(10 prompt \+ 1000000000 new tokens\) exceeds "
            r"max_position_embeddings=16 of this recurrent model",
        ),
        ({"max_new_tokens": 7}, r"Sequence length 17 \(10 prompt \+ 7 new tokens\) exceeds max_position_embeddings=16"),
        ({"max_length": 40}, r"Sequence length 40 \(max_length\) exceeds max_position_embeddings=16"),
    ],
    ids=["lstm-max-new-tokens-absurd", "lstm-max-new-tokens-beyond-positions", "lstm-max-length-beyond-positions"],
)
def test_recurrent_generation_is_bounded_like_the_decoder(kwargs, match, short_lstm):
    prompt = torch.randint(5, 64, (1, 10))
    with pytest.raises(ValueError, match=match):  # refused before any step runs: 10**9 never starts
        short_lstm.generate(prompt, do_sample=False, eos_token_id=None, pad_token_id=0, **kwargs)
    assert short_lstm.generate(prompt, do_sample=False, eos_token_id=None, pad_token_id=0, max_new_tokens=6).shape == (
        1,
        16,
    )  # up to the bound itself


def test_encoder_input_longer_than_its_positions():
    config = EncoderConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
    )
    with pytest.raises(ValueError, match=r"Sequence length 20 exceeds max_position_embeddings=16.*truncation=True"):
        EncoderForSequenceClassification(config)(torch.randint(5, 64, (1, 20)))


# ----------------------------------------------------------------------------------------------
# Real processes: exit status, one error line, no traceback, nothing written
# ----------------------------------------------------------------------------------------------


def _cli(repo_root: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root / "src"), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(repo_root / "scripts" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_pretrain_refuses_a_file_that_is_not_utf8(repo_root, tokenizer, model_yaml, tmp_path):
    corpus = write(tmp_path / "latin1.txt", ("Ol\xe9, se\xf1or.\n" * 50).encode("latin-1"))
    out = tmp_path / "out"
    result = _cli(
        repo_root,
        "pretrain.py",
        "--model_config",
        model_yaml,
        "--tokenizer_path",
        tokenizer.saved_folder,
        "--datasets",
        corpus,
        "--max_seq_length",
        "32",
        "--max_steps",
        "2",
        "--output_dir",
        str(out),
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {corpus}: not UTF-8 text (line 1")
    assert "Traceback" not in result.stderr and not out.exists()


def test_cli_finetune_refuses_a_truncated_model(repo_root, lm_folder, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(lm_folder, folder)
    _damage(folder, "truncated-safetensors", None)
    out = tmp_path / "out"
    result = _cli(repo_root, "finetune.py", "--model_name_or_path", str(folder), "--output_dir", str(out))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: model_name_or_path")
    assert "model.safetensors is truncated or corrupted" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
