"""Every family as a transformers user meets it: Auto classes, pipelines, remote code, generation."""

import json

import pytest
import torch
from remote_code import load_without_seqlab
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    pipeline,
)

import seqlab
from seqlab.tokenizer import token_config_kwargs

TINY = {
    "recurrent": dict(cell_type="lstm", embedding_size=24, hidden_size=32, num_hidden_layers=2),
    "decoder": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    "encoder": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
}
NO_DROPOUT = {
    "recurrent": dict(
        embedding_dropout_prob=0.0, hidden_dropout_prob=0.0, output_dropout_prob=0.0, classifier_dropout_prob=0.0
    ),
    "decoder": dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
    "encoder": dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
}
HEADS = [
    ("recurrent", "AutoModel"),
    ("recurrent", "AutoModelForCausalLM"),
    ("recurrent", "AutoModelForSequenceClassification"),
    ("decoder", "AutoModel"),
    ("decoder", "AutoModelForCausalLM"),
    ("decoder", "AutoModelForSequenceClassification"),
    ("encoder", "AutoModel"),
    ("encoder", "AutoModelForMaskedLM"),
    ("encoder", "AutoModelForSequenceClassification"),
]
AUTO = {
    "AutoModel": AutoModel,
    "AutoModelForCausalLM": AutoModelForCausalLM,
    "AutoModelForMaskedLM": AutoModelForMaskedLM,
    "AutoModelForSequenceClassification": AutoModelForSequenceClassification,
}
LABELS = {"id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}


def make_model(family, auto_name, tokenizer, seed=0):
    config_class, heads = seqlab.models.FAMILIES[family].config_class, seqlab.models.FAMILIES[family].auto_classes
    kwargs = {**TINY[family], **NO_DROPOUT[family], **token_config_kwargs(tokenizer), "max_position_embeddings": 64}
    if auto_name == "AutoModelForSequenceClassification":
        kwargs.update(num_labels=2, **LABELS)
    torch.manual_seed(seed)
    return heads[auto_name](config_class(**kwargs)).eval()


def encode(tokenizer, texts):
    return tokenizer(texts, return_tensors="pt", padding=True)


def first_output(outputs):
    return outputs.logits if getattr(outputs, "logits", None) is not None else outputs.last_hidden_state


def test_import_registers_every_family():
    for config_class, heads in ((f.config_class, f.auto_classes) for f in seqlab.models.FAMILIES.values()):
        config = AutoConfig.for_model(config_class.model_type)
        assert isinstance(config, config_class)
        for auto_name, model_class in heads.items():
            assert type(AUTO[auto_name].from_config(config)) is model_class


@pytest.mark.parametrize("family, auto_name", HEADS)
def test_auto_class_round_trip_is_bit_exact(tmp_path, tokenizer, family, auto_name):
    model = make_model(family, auto_name, tokenizer)
    model.save_pretrained(tmp_path)
    loaded = AUTO[auto_name].from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    expected = model.state_dict()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    batch = encode(tokenizer, ["To be, or not to be", "that is"])
    # weights are bit-exact; outputs may differ in the last bit because CPU kernels vectorise by alignment
    torch.testing.assert_close(first_output(loaded(**batch)), first_output(model(**batch)), rtol=1e-5, atol=1e-6)


def test_saved_folder_carries_its_code_and_auto_map(tmp_path, tokenizer):
    model = make_model("decoder", "AutoModelForCausalLM", tokenizer)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_decoder.DecoderForCausalLM"
    assert config["auto_map"]["AutoConfig"] == "configuration_decoder.DecoderConfig"
    assert (tmp_path / "modeling_decoder.py").is_file() and (tmp_path / "configuration_decoder.py").is_file()


@pytest.mark.parametrize(
    "family, auto_name",
    [
        ("recurrent", "AutoModelForCausalLM"),
        ("decoder", "AutoModelForSequenceClassification"),
        ("encoder", "AutoModelForMaskedLM"),
    ],
)
def test_remote_code_loads_without_seqlab_in_a_fresh_process(tmp_path, tokenizer, family, auto_name):
    model = make_model(family, auto_name, tokenizer)
    model.save_pretrained(tmp_path)
    batch = dict(encode(tokenizer, ["Now is the winter of our discontent", "Made glorious"]))
    remote = load_without_seqlab(tmp_path, auto_name, batch)
    with torch.no_grad():
        expected = first_output(model(**batch))
    torch.testing.assert_close(remote, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "family, lm_head",
    [("recurrent", "AutoModelForCausalLM"), ("decoder", "AutoModelForCausalLM"), ("encoder", "AutoModelForMaskedLM")],
)
def test_saved_language_model_loads_as_any_head_without_seqlab(tmp_path, tokenizer, family, lm_head):
    """A published LM is a starting point for fine-tuning: its auto_map lists every head of the family."""
    model = make_model(family, lm_head, tokenizer)
    model.save_pretrained(tmp_path)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {"AutoConfig", *seqlab.models.FAMILIES[family].auto_classes}
    batch = dict(encode(tokenizer, ["Once more unto the breach", "dear friends"]))
    body = load_without_seqlab(tmp_path, "AutoModel", batch)
    with torch.no_grad():
        expected = model.base_model(**batch).last_hidden_state
    torch.testing.assert_close(body, expected, rtol=1e-5, atol=1e-6)
    classifier_logits = load_without_seqlab(tmp_path, "AutoModelForSequenceClassification", batch)
    assert classifier_logits.shape == (2, 2)


# --- pipelines ---------------------------------------------------------------------------------------


def test_prompt_never_ends_in_end_of_sequence(tokenizer):
    ids = tokenizer("Good morrow, sweet lady")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] != tokenizer.eos_token_id


@pytest.mark.parametrize("family", ["recurrent", "decoder"])
def test_text_generation_pipeline_continues_the_prompt(tmp_path, tokenizer, family):
    model = make_model(family, "AutoModelForCausalLM", tokenizer)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    generator = pipeline("text-generation", model=str(tmp_path), device="cpu")
    prompt = "Good morrow, sweet"
    out = generator(prompt, max_new_tokens=8, do_sample=False, eos_token_id=None)[0]["generated_text"]
    assert out.startswith(prompt) and len(out) > len(prompt)
    # the same continuation as generate() on the model itself
    ids = tokenizer(prompt, return_tensors="pt")
    direct = model.generate(**ids, max_new_tokens=8, do_sample=False, eos_token_id=None)
    assert out == prompt + tokenizer.decode(direct[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def test_fill_mask_pipeline(tmp_path, tokenizer):
    model = make_model("encoder", "AutoModelForMaskedLM", tokenizer)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    fill = pipeline("fill-mask", model=str(tmp_path), device="cpu")
    results = fill(f"To be or not to {tokenizer.mask_token}", top_k=3)
    assert len(results) == 3
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)


@pytest.mark.parametrize("family", ["recurrent", "decoder", "encoder"])
def test_text_classification_and_feature_extraction_pipelines(tmp_path, tokenizer, family):
    classifier_dir, body_dir = tmp_path / "classifier", tmp_path / "body"
    classifier = make_model(family, "AutoModelForSequenceClassification", tokenizer)
    classifier.save_pretrained(classifier_dir)
    tokenizer.save_pretrained(classifier_dir)
    classify = pipeline("text-classification", model=str(classifier_dir), device="cpu")
    results = classify(["a gorgeous, witty film", "a dull mess", "fine"])
    assert [set(r) for r in results] == [{"label", "score"}] * 3
    assert {r["label"] for r in results} <= {"negative", "positive"}
    batch = encode(tokenizer, ["a dull mess"])
    with torch.no_grad():
        probs = classifier(**batch).logits.softmax(-1)[0]
    assert classify("a dull mess")[0]["score"] == pytest.approx(probs.max().item(), abs=1e-5)

    body = make_model(family, "AutoModel", tokenizer)
    body.save_pretrained(body_dir)
    tokenizer.save_pretrained(body_dir)
    extract = pipeline("feature-extraction", model=str(body_dir), device="cpu")
    features = torch.tensor(extract("a dull mess")[0])
    n_tokens = len(tokenizer("a dull mess")["input_ids"])
    width = body.config.hidden_size
    assert features.shape == (n_tokens, width)


def test_tokenizer_loads_with_auto_tokenizer(tokenizer):
    loaded = AutoTokenizer.from_pretrained(tokenizer.saved_folder)
    text = "O Romeo, Romeo! wherefore art thou Romeo?"
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]


@pytest.mark.parametrize(
    "family,auto_name",
    [
        ("recurrent", "AutoModelForCausalLM"),
        ("decoder", "AutoModelForCausalLM"),
        ("encoder", "AutoModelForMaskedLM"),
    ],
)
def test_packed_batches_without_a_mask_train_exactly_like_an_all_ones_mask(tokenizer, family, auto_name):
    # the language-modelling collators leave out the all-ones mask of packed blocks (the fast path);
    # the loss and every gradient must be the same as with the mask
    from seqlab.data import CausalLMCollator, MaskedLMCollator

    ids = torch.randint(5, len(tokenizer), (3, 20), generator=torch.Generator().manual_seed(1))
    collator = MaskedLMCollator(tokenizer, seed=0) if family == "encoder" else CausalLMCollator(tokenizer.pad_token_id)
    batch = collator([{"input_ids": row} for row in ids])
    assert "attention_mask" not in batch
    results = []
    for extra in ({}, {"attention_mask": torch.ones_like(ids)}):
        model = make_model(family, auto_name, tokenizer).train()
        loss = model(**batch, **extra).loss
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.equal(loss_a, loss_b)
    assert len(grads_a) == len(grads_b) > 0
    assert all(torch.allclose(a, b, atol=1e-7, rtol=0) for a, b in zip(grads_a, grads_b))
