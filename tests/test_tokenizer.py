"""The shared tokenizer: special ids, <s>-only post-processing, exact round trips, saving, the CLI."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from seqlab.errors import SeqlabUsageError
from seqlab.tokenizer import (
    SPECIAL_TOKENS,
    check_vocab_compatible,
    load_tokenizer,
    token_config_kwargs,
    train_tokenizer,
    train_tokenizer_from_sources,
)

UNICODE_SAMPLE = "Naïve café — 日本語のテキスト, emoji 🙂, tabs\tand  double  spaces.\nNew line: ÆØÅ ß ∑ ≤ ∞"


@pytest.fixture(scope="module")
def training_lines(data_dir):
    text = (data_dir / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()][:2000] + [UNICODE_SAMPLE] * 3


@pytest.fixture(scope="module")
def tokenizers_by_kind(tokenizer, training_lines):
    return {
        "bpe": tokenizer,
        "wordpiece": train_tokenizer(training_lines, vocab_size=400, kind="wordpiece"),
        "char": train_tokenizer(training_lines, vocab_size=200, kind="char"),
    }


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "char"])
def test_special_tokens_have_ids_0_to_4_in_every_kind(tokenizers_by_kind, kind):
    tok = tokenizers_by_kind[kind]
    assert tok.convert_tokens_to_ids(SPECIAL_TOKENS) == [0, 1, 2, 3, 4]
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id, tok.mask_token_id) == (
        0,
        1,
        2,
        3,
        4,
    )
    assert tok.padding_side == "right"


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "char"])
def test_bos_is_prepended_and_eos_is_not_appended(tokenizers_by_kind, kind):
    tok = tokenizers_by_kind[kind]
    ids = tok("To be, or not to be")["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert tok.bos_token_id not in ids[1:]
    assert tok.eos_token_id not in ids
    assert "token_type_ids" not in tok("To be")
    pair = tok("To be", "or not")["input_ids"]
    assert pair[0] == tok.bos_token_id and pair.count(tok.eos_token_id) == 1
    assert tok("To be", add_special_tokens=False)["input_ids"][0] != tok.bos_token_id


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=80).filter(lambda t: not any(s in t for s in SPECIAL_TOKENS)))
def test_bpe_round_trip_is_exact_for_any_text(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids  # byte-level: every character encodes
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_bpe_round_trip_of_unicode_and_whitespace(tokenizer):
    ids = tokenizer(UNICODE_SAMPLE)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == UNICODE_SAMPLE
    assert tokenizer.decode(ids).startswith("<s>")


def test_char_tokenizer_has_one_token_per_character(tokenizers_by_kind, training_lines):
    tok = tokenizers_by_kind["char"]
    ids = tok(UNICODE_SAMPLE, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(UNICODE_SAMPLE)
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == UNICODE_SAMPLE
    assert len(tok) == len(SPECIAL_TOKENS) + len(set("".join(training_lines)))
    assert tok("\u2603", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]  # a snowman never seen


def test_char_vocab_size_keeps_the_most_frequent_characters(training_lines):
    tok = train_tokenizer(training_lines, vocab_size=15, kind="char")
    assert len(tok) == 15
    assert tok.convert_ids_to_tokens(tok(" e", add_special_tokens=False)["input_ids"]) == [" ", "e"]


def test_wordpiece_splits_words_and_decodes_them(tokenizers_by_kind, training_lines):
    tok = tokenizers_by_kind["wordpiece"]
    text = "To be, or not to be, that is the question."
    tokens = tok.convert_ids_to_tokens(tok(text, add_special_tokens=False)["input_ids"])
    assert tokens[:3] == ["To", "be", ","]
    assert all(" " not in token for token in tokens)
    assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text
    assert tok.unk_token_id in tok("\u2603")["input_ids"]
    assert len(tok) == 400
    assert len(train_tokenizer(training_lines, vocab_size=60, kind="wordpiece")) == 60  # alphabet capped to fit


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "char"])
def test_saved_folder_loads_with_autotokenizer_and_gives_the_same_ids(tokenizers_by_kind, kind, tmp_path):
    tok = tokenizers_by_kind[kind]
    folder = tok.saved_folder if kind == "bpe" else tmp_path / kind
    if kind != "bpe":
        tok.save_pretrained(folder)
    for loaded in (AutoTokenizer.from_pretrained(str(folder)), load_tokenizer(folder)):
        assert loaded(UNICODE_SAMPLE)["input_ids"] == tok(UNICODE_SAMPLE)["input_ids"]
        assert loaded.convert_tokens_to_ids(SPECIAL_TOKENS) == [0, 1, 2, 3, 4]
        assert loaded.mask_token == "<mask>" and loaded.padding_side == "right"
        assert len(loaded) == len(tok)


def test_load_tokenizer_explains_a_missing_or_empty_folder(tmp_path):
    with pytest.raises(SeqlabUsageError, match="train_tokenizer.py"):
        load_tokenizer(tmp_path / "no-such-folder")
    with pytest.raises(SeqlabUsageError, match="holds no tokenizer"):
        load_tokenizer(tmp_path)


def test_train_tokenizer_refuses_unknown_kind_and_tiny_vocab(training_lines):
    with pytest.raises(ValueError, match=r"'sentencepiece'.*bpe, wordpiece, char"):
        train_tokenizer(training_lines, kind="sentencepiece")
    with pytest.raises(ValueError, match=r"vocab_size=100 .* at least 261"):
        train_tokenizer(training_lines, vocab_size=100, kind="bpe")
    with pytest.raises(ValueError, match=r"vocab_size=5 .* at least 6"):
        train_tokenizer(training_lines, vocab_size=5, kind="char")
    with pytest.raises(SeqlabUsageError, match="no texts"):
        train_tokenizer([], vocab_size=300)


def test_token_config_kwargs_takes_every_id_from_the_tokenizer(tokenizer):
    assert token_config_kwargs(tokenizer) == {
        "vocab_size": 512,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    assert token_config_kwargs(tokenizer, include_mask=True)["mask_token_id"] == 4


def test_check_vocab_compatible_names_both_numbers(tokenizer):
    good = SimpleNamespace(**token_config_kwargs(tokenizer))
    check_vocab_compatible(tokenizer, good)
    check_vocab_compatible(tokenizer, SimpleNamespace(**{**vars(good), "vocab_size": 576}))  # padded is fine
    with pytest.raises(SeqlabUsageError, match=r"512 tokens .* vocab_size=300.*token_config_kwargs"):
        check_vocab_compatible(tokenizer, SimpleNamespace(**{**vars(good), "vocab_size": 300}))
    with pytest.raises(SeqlabUsageError, match=r"eos_token_id is 2 .* config's is 0"):
        check_vocab_compatible(tokenizer, SimpleNamespace(**{**vars(good), "eos_token_id": 0}))
    with pytest.raises(SeqlabUsageError, match="mask_token_id"):
        check_vocab_compatible(tokenizer, SimpleNamespace(**vars(good), mask_token_id=3))


def test_train_from_sources_refuses_evaluation_splits_and_existing_folders(tmp_path):
    with pytest.raises(SeqlabUsageError, match="evaluation texts never enter pretraining"):
        train_tokenizer_from_sources(["sst2:validation"], tmp_path / "tok", vocab_size=300)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("x")
    with pytest.raises(SeqlabUsageError, match="--overwrite"):
        train_tokenizer_from_sources(["tinyshakespeare"], tmp_path / "taken", vocab_size=300, max_texts=10)
    assert not (tmp_path / "tok").exists()


def _run_script(repo_root, *args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(repo_root / "src"), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "train_tokenizer.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo_root,
        timeout=300,
    )


def test_script_trains_and_saves_a_loadable_tokenizer(repo_root, tmp_path):
    output = tmp_path / "runs" / "tok"
    result = _run_script(
        repo_root,
        "--dataset",
        "tinyshakespeare",
        "--dataset",
        "sst2_sentence",
        "--vocab_size",
        "300",
        "--max_texts",
        "400",
        "--output_dir",
        str(output),
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in output.parent.iterdir()) == ["tok"]  # no staging folder left behind
    loaded = load_tokenizer(output)
    assert len(loaded) == 300
    assert (
        loaded.decode(loaded("Good morrow, cousin!")["input_ids"], skip_special_tokens=True) == "Good morrow, cousin!"
    )


def test_script_reports_a_missing_key_without_traceback_or_output(repo_root, tmp_path):
    output = tmp_path / "tok"
    result = _run_script(repo_root, "--dataset", "no_such_key", "--vocab_size", "300", "--output_dir", str(output))
    assert result.returncode == 1
    assert result.stderr.startswith("error: unknown dataset 'no_such_key'")
    assert "sst2" in result.stderr and "Traceback" not in result.stderr
    assert not output.exists()


# ----------------------------------------------------------------------------------------------
# model_max_length: a tokenizer truncates where the model it is saved with needs it
# ----------------------------------------------------------------------------------------------


def _saved_length(folder) -> int:
    import json

    return json.loads((folder / "tokenizer_config.json").read_text())["model_max_length"]


def test_script_takes_model_max_length_from_the_model_config(repo_root, tmp_path):
    common = ["--dataset", "tinyshakespeare", "--vocab_size", "300", "--max_texts", "200"]
    for name, extra, expected in [
        ("default", [], 256),  # the tiny models' position table, not 1024
        ("tiny", ["--model_config", "configs/models/decoder-tiny.yaml"], 256),
        ("small", ["--model_config", "configs/models/encoder-small.yaml"], 512),
        ("shorter", ["--model_config", "configs/models/decoder-small.yaml", "--model_max_length", "128"], 128),
    ]:
        result = _run_script(repo_root, *common, *extra, "--output_dir", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        assert _saved_length(tmp_path / name) == expected, name

    refused = _run_script(
        repo_root,
        *common,
        "--model_config",
        "configs/models/decoder-tiny.yaml",
        "--model_max_length",
        "1024",
        "--output_dir",
        str(tmp_path / "long"),
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (
        "error: --model_max_length 1024 exceeds max_position_embeddings=256 of configs/models/decoder-tiny.yaml: "
        "the model would reject what the tokenizer lets through; lower --model_max_length or leave it out"
    )
    assert not (tmp_path / "long").exists()


def test_model_max_length_must_be_a_length(training_lines):
    with pytest.raises(SeqlabUsageError, match=r"model_max_length=0 must be an integer >= 2"):
        train_tokenizer(training_lines[:50], vocab_size=300, model_max_length=0)


def test_model_positions_reads_yaml_folder_and_overrides(repo_root, tmp_path, tokenizer):
    from seqlab.models import DecoderConfig
    from seqlab.training.runtime import model_positions

    tiny = repo_root / "configs" / "models" / "decoder-tiny.yaml"
    assert model_positions(tiny) == 256
    assert model_positions(tiny, {"max_position_embeddings": 64}) == 64
    DecoderConfig(max_position_embeddings=96, hidden_size=16, num_attention_heads=2).save_pretrained(tmp_path)
    assert model_positions(tmp_path) == 96
    with pytest.raises(SeqlabUsageError, match="neither a model YAML nor a model folder"):
        model_positions(tmp_path / "missing.yaml")


def test_trainer_saved_folder_truncates_long_inputs_in_a_pipeline(repo_root, training_lines, tmp_path):
    """Trainer.save_model writes the tokenizer as it was given: with the old default (1024) a pipeline fed a
    long text with truncation=True passed 1024 tokens to a 256-position model and failed."""
    import torch
    from transformers import Trainer, TrainingArguments, pipeline

    from seqlab.models import DecoderConfig, DecoderForSequenceClassification
    from seqlab.tokenizer import token_config_kwargs

    tokenizer = train_tokenizer(training_lines, vocab_size=300)  # defaults, as train_tokenizer.py without options
    config = DecoderConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=256,
        num_labels=2,
        **token_config_kwargs(tokenizer),
    )
    torch.manual_seed(0)
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), report_to=[], use_cpu=True)
    trainer = Trainer(model=DecoderForSequenceClassification(config), args=args, processing_class=tokenizer)
    trainer.save_model(str(tmp_path / "folder"))

    classify = pipeline("text-classification", model=str(tmp_path / "folder"))
    long_text = " ".join(training_lines[:400])
    assert len(tokenizer(long_text)["input_ids"]) > 1024
    assert classify(long_text, truncation=True)[0]["label"] in {"LABEL_0", "LABEL_1"}
