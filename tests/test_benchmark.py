"""The benchmark suite: every suite runs (--quick, CPU) and writes well-formed results; the
references match seqlab's sizes; the timing interleaves candidates. Timings themselves are not
asserted: they depend on the machine."""

import importlib.util
import json
import math

import pytest
import torch

from seqlab import DecoderForCausalLM, EncoderForMaskedLM, RecurrentForCausalLM
from seqlab.benchmark import resolve_settings, run_benchmark
from seqlab.benchmark.references import bert_reference, gpt2_reference, lstm_reference
from seqlab.benchmark.report import markdown_table
from seqlab.benchmark.settings import load_model_config
from seqlab.benchmark.timing import interleaved_seconds, peak_step_bytes, tensor_bytes
from seqlab.errors import SeqlabUsageError
from seqlab.tokenizer import token_config_kwargs

ENTRY_KEYS = {
    "name", "seqlab_model", "reference_model", "seqlab_tokens_per_s", "reference_tokens_per_s", "ratio",
    "cpu_time_ratio", "seqlab_peak_memory_bytes", "reference_peak_memory_bytes", "seqlab", "reference",
    "config", "device", "versions", "target", "meets_target", "paired_ratio_quartiles",
}  # fmt: skip


def _load_script(repo_root):
    spec = importlib.util.spec_from_file_location("benchmark_script", repo_root / "scripts" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_document(document: dict, suite: str, names: set[str], repeats: int, memory: bool) -> None:
    assert document["suite"] == suite
    assert document["gpu_measured"] is False
    assert document["settings"]["device"] == "cpu" and document["settings"]["quick"] is True
    provenance = document["provenance"]
    assert {"date", "hardware", "versions", "git_commit"} <= set(provenance)
    assert provenance["versions"]["torch"] and provenance["hardware"]["cpu_count"] >= 1
    assert {entry["name"] for entry in document["entries"]} == names
    for entry in document["entries"]:
        assert ENTRY_KEYS <= set(entry), ENTRY_KEYS - set(entry)
        assert entry["device"].startswith("cpu")
        assert entry["versions"]["transformers"] and entry["versions"]["torch"]
        seqlab, reference = entry["seqlab_tokens_per_s"], entry["reference_tokens_per_s"]
        assert seqlab > 0 and reference > 0 and math.isfinite(seqlab) and math.isfinite(reference)
        assert entry["ratio"] == pytest.approx(seqlab / reference)
        assert len(entry["seqlab"]["runs"]) == repeats and len(entry["reference"]["runs"]) == repeats
        assert entry["target"] is None and entry["meets_target"] is None  # quick shapes are not the target's
        assert isinstance(entry["config"], dict) and entry["config"]
        for side in ("seqlab", "reference"):
            peak = entry[f"{side}_peak_memory_bytes"]
            assert (isinstance(peak, int) and peak > 0) if memory else peak is None


def test_train_suite_runs_every_family_and_writes_json(tokenizer, tmp_path, repo_root):
    settings = resolve_settings("train", quick=True, tokenizer_path=tokenizer.saved_folder, profile=True)
    out = tmp_path / "train.json"
    document = run_benchmark(settings, out)
    assert json.loads(out.read_text()) == json.loads(json.dumps(document))
    names = {"decoder-train-eager", "encoder-train-eager", "recurrent-train-eager"}
    _check_document(document, "train", names, settings.repeats, memory=True)
    by_name = {entry["name"]: entry for entry in document["entries"]}
    assert by_name["decoder-train-eager"]["reference_model"] == "GPT2LMHeadModel"
    assert by_name["encoder-train-eager"]["reference_model"] == "BertForMaskedLM"
    assert by_name["recurrent-train-eager"]["reference_model"] == "PlainLSTMLanguageModel"
    for entry in document["entries"]:
        assert entry["config"]["batch_size"] == settings.shape.batch_size
        assert entry["config"]["seq_len"] == settings.shape.seq_len
        assert entry["cpu_time_ratio"] > 0
        # resident memory alone (weights + two AdamW moments) is at least 3x the weights
        assert entry["seqlab_peak_memory_bytes"] >= 3 * 4 * entry["seqlab"]["parameters"]
        top = entry["seqlab"]["profile"]
        assert top and all(row["operator"] and row["self_ms_per_step"] >= 0 for row in top)
        assert any(row["operator"].startswith("aten::") for row in top)
    assert "| decoder-train-eager | DecoderForCausalLM |" in markdown_table(document)


def test_generate_suite_compares_cache_and_gpt2(tokenizer):
    settings = resolve_settings("generate", quick=True, tokenizer_path=tokenizer.saved_folder)
    document = run_benchmark(settings)
    names = {"decoder-generate-vs-gpt2", "decoder-generate-cache", "recurrent-generate-cache"}
    _check_document(document, "generate", names, settings.repeats, memory=True)
    by_name = {entry["name"]: entry for entry in document["entries"]}
    assert by_name["decoder-generate-cache"]["reference"]["use_cache"] is False
    assert by_name["decoder-generate-vs-gpt2"]["reference_model"] == "GPT2LMHeadModel (cached)"
    assert all(entry["config"]["new_tokens"] == settings.new_tokens for entry in document["entries"])


def test_generate_suite_widens_learned_positions_to_the_new_tokens():
    # 256 new tokens after a 32-token prompt do not fit decoder-tiny's 256 learned positions: the suite builds the
    # decoder (and GPT-2 beside it) with 288, rather than decoding fewer tokens than asked
    from seqlab.benchmark.generate import _fit_positions

    settings = resolve_settings("generate", new_tokens=256)
    assert (settings.prompt_len, settings.new_tokens) == (32, 256)  # the CPU default: the cache targets' setting
    config = load_model_config("decoder", "tiny", settings.config_dir, vocab_size=512)
    assert _fit_positions(config, settings) == 256 and config.max_position_embeddings == 288
    assert gpt2_reference(config).config.n_positions == 288
    assert _fit_positions(config, settings) is None  # already long enough
    sinusoidal = load_model_config(
        "decoder", "tiny", settings.config_dir, vocab_size=512, position_embedding_type="sinusoidal"
    )
    assert _fit_positions(sinusoidal, settings) is None


def test_data_suite_through_the_script(tokenizer, tmp_path, repo_root):
    out = tmp_path / "data.json"
    script = _load_script(repo_root)
    script.main(["--suite", "data", "--quick", "--tokenizer", tokenizer.saved_folder, "--json", str(out)])
    document = json.loads(out.read_text())
    _check_document(document, "data", {"data-tokenize-pack-procs1"}, 2, memory=False)
    entry = document["entries"][0]
    assert entry["config"]["num_proc"] == 1 and entry["config"]["sources"] == ["tinyshakespeare"]
    assert (
        entry["seqlab"]["packed_tokens"] > 0 and entry["seqlab"]["packed_tokens"] % entry["config"]["block_size"] == 0
    )


def test_script_refuses_cuda_without_a_gpu(repo_root, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    script = _load_script(repo_root)
    with pytest.raises(SystemExit) as exit_info:
        from seqlab.errors import run_cli

        run_cli(script.main, ["--suite", "train", "--device", "cuda", "--quick"])
    assert exit_info.value.code == 1
    assert "--device cpu" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs,message",
    [({"suite": "speed"}, "--suite"), ({"suite": "train", "size": "huge"}, "--size"),
     ({"suite": "train", "repeats": 0}, "--repeats"), ({"suite": "data", "num_proc": [0]}, "--num_proc")],
)  # fmt: skip
def test_settings_name_the_bad_argument(kwargs, message):
    with pytest.raises(SeqlabUsageError, match=message):
        resolve_settings(**kwargs)


def test_settings_use_the_fast_paths_on_cuda_only():
    gpu = resolve_settings("train", device="cuda", size="small")
    assert gpu.precision == "bf16" and gpu.compile_modes == ("eager", "compile")
    assert (gpu.shape.batch_size, gpu.shape.seq_len, gpu.shape.vocab_size) == (64, 256, 16000)
    cpu = resolve_settings("train")
    assert cpu.precision == "fp32" and cpu.compile_modes == ("eager",)
    assert resolve_settings("train", compile=True).compile_modes == ("eager", "compile")
    assert resolve_settings("generate", device="cuda", size="small").new_tokens == 256


def _parameters(model) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_references_have_seqlab_sizes(tokenizer, repo_root, size):
    config_dir = repo_root / "configs" / "models"
    kwargs = token_config_kwargs(tokenizer)
    decoder = load_model_config("decoder", size, config_dir, **kwargs)
    gpt2 = gpt2_reference(decoder)
    assert gpt2.config._attn_implementation == "sdpa"
    assert (gpt2.config.n_layer, gpt2.config.n_embd, gpt2.config.n_head, gpt2.config.n_inner) == (
        decoder.num_hidden_layers, decoder.hidden_size, decoder.num_attention_heads, decoder.intermediate_size
    )  # fmt: skip
    assert _parameters(gpt2) == _parameters(DecoderForCausalLM(decoder))

    encoder = load_model_config("encoder", size, config_dir, **kwargs)
    bert = bert_reference(encoder)
    assert bert.config._attn_implementation == "sdpa"
    # BERT's only extra weights: the two token-type embeddings
    assert _parameters(bert) - _parameters(EncoderForMaskedLM(encoder)) == 2 * encoder.hidden_size

    recurrent = load_model_config("recurrent", size, config_dir, **kwargs)
    lstm = lstm_reference(recurrent)
    assert lstm.lstm.num_layers == recurrent.num_hidden_layers and lstm.output.weight is lstm.embedding.weight
    assert _parameters(lstm) == _parameters(RecurrentForCausalLM(recurrent))


def test_plain_lstm_loss_is_next_token_cross_entropy(tokenizer, repo_root):
    config = load_model_config("recurrent", "tiny", repo_root / "configs" / "models", **token_config_kwargs(tokenizer))
    model = lstm_reference(config).eval()
    ids = torch.randint(5, len(tokenizer), (2, 9))
    output = model(ids, labels=ids)
    expected = torch.nn.functional.cross_entropy(
        output.logits[:, :-1].reshape(-1, len(tokenizer)), ids[:, 1:].reshape(-1)
    )
    assert output.logits.shape == (2, 9, len(tokenizer))
    assert torch.allclose(output.loss, expected)


def test_model_config_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="decoder-tiny.yaml"):
        load_model_config("decoder", "tiny", tmp_path)
    (tmp_path / "decoder-tiny.yaml").write_text("family: encoder\nhidden_size: 32\n")
    with pytest.raises(SeqlabUsageError, match="family"):
        load_model_config("decoder", "tiny", tmp_path)


def test_interleaving_alternates_the_order_after_warmup():
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in ("a", "b")}
    timings = interleaved_seconds(steps, repeats=3, warmup=2, steps_per_repeat=2, device="cpu")
    assert calls == ["a", "a", "b", "b"] + ["a", "a", "b", "b"] + ["b", "b", "a", "a"] + ["a", "a", "b", "b"]
    assert all(len(timings.wall[n]) == 3 and len(timings.cpu[n]) == 3 for n in ("a", "b"))


def test_peak_memory_sees_a_temporary_tensor_on_cpu():
    size = 4 * 2**20
    kept = []

    def step():
        temporary = torch.ones(size // 4)  # float32: `size` bytes, freed when the step returns
        kept.append(float(temporary[0]))

    peak = peak_step_bytes(step, "cpu", resident=123)
    assert size + 123 <= peak < 2 * size + 123
    weight = torch.zeros(10, 10)
    assert tensor_bytes([weight, weight, weight.t()]) == 400  # one storage, counted once


def test_offline_bundle_refuses_a_missing_data_folder_and_leaves_nothing(repo_root, tmp_path):
    import subprocess

    bundle = tmp_path / "bundle"
    result = subprocess.run(
        ["bash", str(repo_root / "scripts" / "offline_bundle.sh"), str(bundle), "no_such_folder"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SEQLAB_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 1
    assert "no data folder" in result.stderr and "no_such_folder" in result.stderr
    assert not bundle.exists() and not (tmp_path / "bundle.partial").exists()
