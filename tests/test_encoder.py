"""The BERT-style encoder as a transformers model: bidirectional attention, masked LM, save/load."""

import ast
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

import seqlab
from seqlab import EncoderConfig, EncoderForMaskedLM, EncoderForSequenceClassification, EncoderModel

VOCAB = 96
TINY = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=32,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)
PAD, MASK = 0, 4


def make(model_class=EncoderForMaskedLM, seed=0, **overrides):
    torch.manual_seed(seed)
    return model_class(EncoderConfig(**{**TINY, "initializer_range": 0.2, **overrides})).eval()


def random_ids(batch, length, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(5, VOCAB, (batch, length), generator=generator)  # ids 0..4 are special tokens


def pad_batch(sequences, side):
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), PAD)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(0, len(seq)) if side == "right" else slice(width - len(seq), width)
        ids[row, span] = seq
        mask[row, span] = 1
    return ids, mask


def masked_lm_labels(ids, positions):
    labels = torch.full_like(ids, -100)
    inputs = ids.clone()
    for row, column in positions:
        labels[row, column] = ids[row, column]
        inputs[row, column] = MASK
    return inputs, labels


# --- configuration -----------------------------------------------------------------------------------


def test_config_defaults_follow_the_shared_tokenizer_and_declare_tying():
    config = EncoderConfig()
    assert config.model_type == "seqlab_encoder"
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id, config.mask_token_id) == (0, 1, 2, 4)
    assert config.tie_word_embeddings is True
    restored = EncoderConfig.from_dict(config.to_dict())
    assert restored.to_dict() == config.to_dict()


@pytest.mark.parametrize(
    "overrides, words",
    [
        (dict(hidden_size=30, num_attention_heads=4), ["hidden_size=30", "num_attention_heads=4", "divisible"]),
        (dict(max_position_embeddings=0), ["max_position_embeddings", "0", "positive"]),
        (dict(num_attention_heads=-2), ["num_attention_heads", "-2"]),
        (dict(hidden_dropout_prob=1.5), ["hidden_dropout_prob", "1.5", "[0, 1)"]),
        (dict(classifier_dropout=1.0), ["classifier_dropout", "1.0"]),
        (dict(position_embedding_type="relative"), ["position_embedding_type", "relative", "learned", "sinusoidal"]),
        (dict(mask_token_id=500), ["mask_token_id=500", "vocabulary"]),
    ],
)
def test_config_validation_names_field_value_and_allowed(overrides, words):
    with pytest.raises(ValueError) as error:
        EncoderConfig(**{**TINY, **overrides})
    for word in words:
        assert word in str(error.value)


def test_modeling_file_imports_only_torch_transformers_and_its_config():
    import seqlab.models.encoder.modeling_encoder as modeling

    tree = ast.parse(Path(modeling.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add("." + node.module if node.level else node.module.split(".")[0])
    assert roots <= {"math", "torch", "transformers", ".configuration_encoder"}, roots


# --- forward -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("position_embedding_type", ["learned", "sinusoidal"])
def test_forward_shapes_hidden_states_and_attentions(position_embedding_type):
    model = make(position_embedding_type=position_embedding_type)
    ids = random_ids(3, 10)
    out = model(ids, output_hidden_states=True, output_attentions=True)
    assert out.logits.shape == (3, 10, VOCAB)
    assert len(out.hidden_states) == TINY["num_hidden_layers"] + 1
    assert all(h.shape == (3, 10, TINY["hidden_size"]) for h in out.hidden_states)
    assert len(out.attentions) == TINY["num_hidden_layers"]
    assert out.attentions[0].shape == (3, TINY["num_attention_heads"], 10, 10)
    assert torch.equal(model(ids, return_dict=False)[0], model(ids).logits)


def test_sinusoidal_positions_are_not_weights_and_have_no_length_limit():
    model = make(position_embedding_type="sinusoidal")
    assert not any("position" in name for name in model.state_dict())
    assert model(random_ids(1, 40)).logits.shape == (1, 40, VOCAB)


def test_learned_positions_reject_too_long_input_with_a_clear_error():
    with pytest.raises(ValueError, match=r"Sequence length 33 exceeds max_position_embeddings=32"):
        make()(random_ids(1, 33))


def test_attention_is_bidirectional():
    model = make(EncoderModel)
    ids = random_ids(1, 10)
    changed = ids.clone()
    changed[0, 8] = (ids[0, 8] + 1 - 5) % (VOCAB - 5) + 5
    before, after = model(ids).last_hidden_state, model(changed).last_hidden_state
    assert not torch.allclose(before[:, :8], after[:, :8])  # earlier tokens see the later change


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_pad_tokens_do_not_change_the_outputs_of_real_tokens(side, attn_implementation):
    model = make(EncoderModel)
    model.set_attn_implementation(attn_implementation)
    sequences = [random_ids(1, 9, seed=2)[0], random_ids(1, 5, seed=3)[0]]
    ids, mask = pad_batch(sequences, side)
    batched = model(ids, attention_mask=mask).last_hidden_state
    for row, seq in enumerate(sequences):
        alone = model(seq[None]).last_hidden_state[0]
        assert torch.allclose(batched[row][mask[row].bool()], alone, atol=1e-5), row


def test_sdpa_and_eager_agree_with_padding():
    model = make()
    ids, mask = pad_batch([random_ids(1, 9, seed=2)[0], random_ids(1, 4, seed=3)[0]], "right")
    model.set_attn_implementation("sdpa")
    sdpa = model(ids, attention_mask=mask).logits
    model.set_attn_implementation("eager")
    eager = model(ids, attention_mask=mask).logits
    assert torch.allclose(sdpa, eager, atol=1e-5)


def test_output_attentions_under_sdpa_falls_back_to_eager_and_ignores_pads():
    model = make()
    assert model.config._attn_implementation == "sdpa"
    ids, mask = pad_batch([random_ids(1, 7, seed=2)[0], random_ids(1, 4, seed=3)[0]], "right")
    out = model(ids, attention_mask=mask, output_attentions=True)
    assert model.config._attn_implementation == "sdpa"
    weights = out.attentions[-1]
    assert torch.allclose(weights.sum(-1), torch.ones(2, 2, 7), atol=1e-5)
    assert torch.all(weights[1, :, :, 4:] == 0)  # no token attends to padding
    assert torch.allclose(out.logits, model(ids, attention_mask=mask).logits, atol=1e-5)


# --- masked language modelling -----------------------------------------------------------------------


def test_masked_lm_returns_full_logits_by_default_and_sparse_ones_when_the_config_asks():
    model = make()
    ids = random_ids(2, 12)
    inputs, labels = masked_lm_labels(ids, [(0, 1), (0, 7), (1, 3), (1, 4), (1, 11)])
    full = model(inputs).logits
    dense = model(inputs, labels=labels)
    assert full.shape == dense.logits.shape == (2, 12, VOCAB)  # what Trainer's compute_metrics recipes index
    model.config.sparse_prediction = True
    sparse = model(inputs, labels=labels)
    assert sparse.logits.shape == (5, VOCAB)
    torch.testing.assert_close(sparse.logits, full[labels != -100])
    manual = F.cross_entropy(full.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
    for out in (sparse, dense):
        torch.testing.assert_close(out.loss, manual)
    summed = model(inputs, labels=labels, num_items_in_batch=10).loss
    torch.testing.assert_close(summed, manual * 5 / 10)


@pytest.mark.parametrize("num_items_in_batch", [None, 12])
def test_sparse_prediction_changes_neither_the_loss_nor_any_gradient(num_items_in_batch):
    inputs, labels = masked_lm_labels(random_ids(3, 10), [(0, 0), (0, 9), (1, 4), (2, 2), (2, 3), (2, 8)])
    results = []
    for sparse in (False, True):
        model = make(sparse_prediction=sparse, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1).train()
        torch.manual_seed(3)  # the same dropout masks on both paths
        loss = model(inputs, labels=labels, num_items_in_batch=num_items_in_batch).loss
        loss.backward()
        results.append((loss.detach(), {name: p.grad for name, p in model.named_parameters()}))
    (dense_loss, dense_grads), (sparse_loss, sparse_grads) = results
    torch.testing.assert_close(sparse_loss, dense_loss)
    assert dense_grads.keys() == sparse_grads.keys()
    for name, grad in dense_grads.items():
        torch.testing.assert_close(sparse_grads[name], grad, msg=name)


def test_sparse_prediction_must_be_a_boolean():
    with pytest.raises(ValueError, match="sparse_prediction must be true or false"):
        EncoderConfig(**TINY, sparse_prediction="yes")


def test_masked_lm_with_nothing_masked_gives_a_zero_loss_that_backpropagates():
    model = make()
    model.train()
    ids = random_ids(2, 6)
    for sparse, shape in ((True, (0, VOCAB)), (False, (2, 6, VOCAB))):
        model.config.sparse_prediction = sparse
        model.zero_grad()
        out = model(ids, labels=torch.full_like(ids, -100))
        assert out.logits.shape == shape and out.loss.item() == 0.0
        out.loss.backward()
        assert model.lm_head.dense.weight.grad is not None


def test_masked_lm_learns_to_fill_the_mask():
    torch.manual_seed(0)
    model = make(initializer_range=0.02)
    model.train()
    ids = random_ids(4, 8)
    inputs, labels = masked_lm_labels(ids, [(row, 5) for row in range(4)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = model(inputs, labels=labels).loss
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 4


# --- save / load -------------------------------------------------------------------------------------


def assert_same_weights(loaded, original):
    expected = original.state_dict()
    loaded_state = loaded.state_dict()
    assert set(loaded_state) == set(expected)
    for name, tensor in loaded_state.items():
        assert torch.equal(tensor, expected[name]), name


@pytest.mark.parametrize(
    "model_class, auto_class",
    [
        (EncoderForMaskedLM, AutoModelForMaskedLM),
        (EncoderForSequenceClassification, AutoModelForSequenceClassification),
        (EncoderModel, AutoModel),
    ],
)
def test_save_load_round_trip_is_bit_exact(tmp_path, model_class, auto_class):
    model = make(model_class, num_labels=3, initializer_range=0.02)
    model.save_pretrained(tmp_path)
    ids, mask = pad_batch([random_ids(1, 6)[0], random_ids(1, 3)[0]], "right")
    for loader in (model_class, auto_class):
        loaded = loader.from_pretrained(tmp_path).eval()
        assert type(loaded) is model_class
        assert_same_weights(loaded, model)
        assert torch.equal(loaded(ids, attention_mask=mask)[0], model(ids, attention_mask=mask)[0])


def test_tied_decoder_stays_tied_after_loading(tmp_path):
    model = make()
    assert model.lm_head.decoder.weight is model.model.embed_tokens.weight
    model.save_pretrained(tmp_path)
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert loaded.lm_head.decoder.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()
    assert torch.equal(loaded.lm_head.decoder.bias, model.lm_head.decoder.bias)


def test_masked_lm_checkpoint_feeds_the_body_and_the_classifier(tmp_path):
    mlm = make()
    mlm.save_pretrained(tmp_path)
    body = AutoModel.from_pretrained(tmp_path)
    assert type(body) is EncoderModel
    assert_same_weights(body, mlm.model)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    assert torch.equal(classifier.model.embed_tokens.weight, mlm.model.embed_tokens.weight)
    assert classifier.classifier.out_proj.weight.shape == (2, TINY["hidden_size"])
    # every parameter the classifier adds is under `classifier`, the name PEFT saves with an adapter
    body = {f"model.{name}" for name in mlm.model.state_dict()}
    new = {name for name in classifier.state_dict() if name not in body}
    assert new and all(name.startswith("classifier.") for name in new), sorted(new)


def test_classifier_saved_with_the_earlier_head_layout_loads_and_saves_the_new_names(tmp_path):
    from safetensors.torch import load_file, save_file

    model = make(EncoderForSequenceClassification, num_labels=3, initializer_range=0.2)
    model.save_pretrained(tmp_path / "old")
    weights = tmp_path / "old" / "model.safetensors"
    earlier = {  # the layout before the head moved under `classifier`: pooler.dense + classifier
        name.replace("classifier.dense.", "pooler.dense.").replace("classifier.out_proj.", "classifier."): tensor
        for name, tensor in load_file(weights).items()
    }
    assert "pooler.dense.weight" in earlier and "classifier.weight" in earlier
    save_file(earlier, weights, metadata={"format": "pt"})
    ids, mask = pad_batch([random_ids(1, 6)[0], random_ids(1, 3)[0]], "right")
    loaded, info = AutoModelForSequenceClassification.from_pretrained(tmp_path / "old", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert_same_weights(loaded, model)
    loaded.save_pretrained(tmp_path / "new")
    assert set(load_file(tmp_path / "new" / "model.safetensors")) == set(model.state_dict())
    again = EncoderForSequenceClassification.from_pretrained(tmp_path / "new").eval()
    assert torch.equal(again(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits)


# --- sequence classification -------------------------------------------------------------------------


def test_classifier_pools_the_first_real_token_under_left_and_right_padding():
    model = make(EncoderForSequenceClassification, num_labels=3)
    sequences = [random_ids(1, 8, seed=5)[0], random_ids(1, 4, seed=6)[0]]
    alone = torch.cat([model(seq[None]).logits for seq in sequences])
    for side in ("right", "left"):
        ids, mask = pad_batch(sequences, side)
        assert torch.allclose(model(ids, attention_mask=mask).logits, alone, atol=1e-5), side
    ids, _ = pad_batch(sequences, "left")  # no mask: the pad id tells where each sentence starts
    assert model._first_token_index(ids, None, 2, ids.device).tolist() == [0, 4]
    hidden = model.model(sequences[0][None]).last_hidden_state
    pooled = torch.tanh(model.classifier.dense(hidden[:, 0]))
    assert torch.allclose(model.classifier.out_proj(pooled), alone[:1], atol=1e-6)


def test_classifier_loss_is_cross_entropy():
    model = make(EncoderForSequenceClassification, num_labels=3)
    ids, mask = pad_batch([random_ids(1, 6, seed=7)[0], random_ids(1, 3, seed=8)[0]], "right")
    labels = torch.tensor([2, 0])
    out = model(ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (2, 3)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, labels), atol=1e-6)


def test_package_registers_the_encoder_with_auto_classes():
    config_class, heads = seqlab.models.FAMILIES["encoder"].config_class, seqlab.models.FAMILIES["encoder"].auto_classes
    assert config_class is EncoderConfig
    assert heads == {
        "AutoModel": EncoderModel,
        "AutoModelForMaskedLM": EncoderForMaskedLM,
        "AutoModelForSequenceClassification": EncoderForSequenceClassification,
    }
