"""The GPT-style decoder as a transformers model: masked self-attention, generation, save/load."""

import ast
from pathlib import Path

import pytest
import torch
from generation_helpers import CACHE, SCORED, assert_same_logits, cache_of, input_lengths
from torch.nn import functional as F
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

import seqlab
from seqlab import DecoderConfig, DecoderForCausalLM, DecoderForSequenceClassification, DecoderModel

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
PAD = 0


def make(model_class=DecoderForCausalLM, seed=0, **overrides):
    torch.manual_seed(seed)
    # a wider initialisation than the default gives a random model confident, varied predictions,
    # so that comparisons of generated tokens are not decided by near-ties
    config = DecoderConfig(**{**TINY, "initializer_range": 0.2, **overrides})
    return model_class(config).eval()


def random_ids(batch, length, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(5, VOCAB, (batch, length), generator=generator)  # ids 0..4 are special tokens


def left_pad(sequences):
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), PAD)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = seq
        mask[row, width - len(seq) :] = 1
    return ids, mask


def right_pad(sequences):
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), PAD)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


# --- configuration -----------------------------------------------------------------------------------


def test_config_defaults_follow_the_shared_tokenizer_and_declare_tying():
    config = DecoderConfig()
    assert config.model_type == "seqlab_decoder"
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (0, 1, 2)
    assert config.tie_word_embeddings is True and config.use_cache is True
    assert config.position_embedding_type == "learned"
    restored = DecoderConfig.from_dict(config.to_dict())
    assert restored.to_dict() == config.to_dict()


@pytest.mark.parametrize(
    "overrides, words",
    [
        (dict(hidden_size=30, num_attention_heads=4), ["hidden_size=30", "num_attention_heads=4", "divisible"]),
        (dict(num_hidden_layers=0), ["num_hidden_layers", "0", "positive"]),
        (dict(intermediate_size=-8), ["intermediate_size", "-8"]),
        (dict(vocab_size=0), ["vocab_size", "0"]),
        (dict(hidden_dropout_prob=1.0), ["hidden_dropout_prob", "1.0", "[0, 1)"]),
        (dict(attention_probs_dropout_prob=-0.1), ["attention_probs_dropout_prob", "-0.1"]),
        (dict(position_embedding_type="rotary"), ["position_embedding_type", "rotary", "learned", "sinusoidal"]),
    ],
)
def test_config_validation_names_field_value_and_allowed(overrides, words):
    with pytest.raises(ValueError) as error:
        DecoderConfig(**{**TINY, **overrides})
    for word in words:
        assert word in str(error.value)


def test_modeling_file_imports_only_torch_transformers_and_its_config():
    import seqlab.models.decoder.modeling_decoder as modeling

    tree = ast.parse(Path(modeling.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add("." + node.module if node.level else node.module.split(".")[0])
    assert roots <= {"math", "torch", "transformers", ".configuration_decoder"}, roots


# --- forward -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("position_embedding_type", ["learned", "sinusoidal"])
def test_forward_shapes_hidden_states_and_attentions(position_embedding_type):
    model = make(position_embedding_type=position_embedding_type)
    ids = random_ids(3, 10)
    out = model(ids, output_hidden_states=True, output_attentions=True)
    assert out.logits.shape == (3, 10, VOCAB)
    assert len(out.hidden_states) == TINY["num_hidden_layers"] + 1
    assert all(h.shape == (3, 10, TINY["hidden_size"]) for h in out.hidden_states)
    body = model.model(ids)  # sdpa here, eager above (attentions): equal up to rounding
    assert torch.allclose(out.hidden_states[-1], body.last_hidden_state, atol=1e-5)
    assert len(out.attentions) == TINY["num_hidden_layers"]
    assert out.attentions[0].shape == (3, TINY["num_attention_heads"], 10, 10)
    as_tuple = model(ids, return_dict=False)
    assert torch.equal(as_tuple[0], model(ids).logits)


def test_sinusoidal_positions_are_not_weights():
    learned = make().state_dict()
    sinusoidal = make(position_embedding_type="sinusoidal").state_dict()
    assert "model.embed_positions.weight" in learned
    assert not any("position" in name for name in sinusoidal)
    assert set(sinusoidal) < set(learned)


def test_loss_is_next_token_cross_entropy_ignoring_minus_100():
    model = make()
    ids = random_ids(2, 9)
    labels = ids.clone()
    labels[0, 4] = -100
    out = model(ids, labels=labels)
    manual = F.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(out.loss, manual, atol=1e-6)
    summed = model(ids, labels=labels, num_items_in_batch=5).loss
    assert torch.allclose(summed, manual * 15 / 5, atol=1e-5)  # 16 targets, one ignored


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_changing_a_future_token_leaves_earlier_logits_unchanged(attn_implementation):
    model = make()
    model.set_attn_implementation(attn_implementation)
    ids = random_ids(1, 12)
    changed = ids.clone()
    changed[0, 7] = (ids[0, 7] + 1 - 5) % (VOCAB - 5) + 5
    before, after = model(ids).logits, model(changed).logits
    assert torch.equal(before[:, :7], after[:, :7])
    assert not torch.allclose(before[:, 7:], after[:, 7:])


def test_sdpa_and_eager_agree_with_and_without_padding():
    model = make()
    ids, mask = left_pad([random_ids(1, 9, seed=2)[0], random_ids(1, 5, seed=3)[0]])
    for kwargs in (dict(input_ids=ids), dict(input_ids=ids, attention_mask=mask)):
        model.set_attn_implementation("sdpa")
        sdpa = model(**kwargs).logits
        model.set_attn_implementation("eager")
        eager = model(**kwargs).logits
        real = mask.bool() if "attention_mask" in kwargs else torch.ones_like(mask).bool()
        assert torch.isfinite(sdpa[real]).all()
        assert torch.allclose(sdpa[real], eager[real], atol=1e-5)


def test_output_attentions_under_sdpa_falls_back_to_eager_for_that_call():
    model = make()
    assert model.config._attn_implementation == "sdpa"
    ids = random_ids(2, 8)
    out = model(ids, output_attentions=True)
    assert model.config._attn_implementation == "sdpa"
    weights = out.attentions[0]
    assert torch.allclose(weights.sum(-1), torch.ones(2, 2, 8), atol=1e-5)
    assert torch.all(weights.triu(diagonal=1) == 0)  # causal: nothing attends to the future
    assert torch.allclose(out.logits, model(ids).logits, atol=1e-5)


def test_learned_positions_reject_too_long_input_with_a_clear_error():
    model = make()
    with pytest.raises(ValueError, match=r"Sequence length 33 .*max_position_embeddings=32"):
        model(random_ids(1, 33))
    prompt = random_ids(1, 30)
    # with the cache the 33rd position is reached one token at a time; without it, by the whole sequence
    with pytest.raises(
        ValueError, match=r"Sequence length 33 \(32 cached \+ 1 new tokens\).*max_position_embeddings=32"
    ):
        model.generate(prompt, max_new_tokens=5, do_sample=False, eos_token_id=None)
    with pytest.raises(
        ValueError, match=r"Sequence length 33 \(0 cached \+ 33 new tokens\).*max_position_embeddings=32"
    ):
        model.generate(prompt, max_new_tokens=5, do_sample=False, eos_token_id=None, use_cache=False)
    out = model(prompt[:, :20], use_cache=True)
    with pytest.raises(ValueError, match=r"Sequence length 33 \(20 cached \+ 13 new tokens\)"):
        model(random_ids(1, 13), **{CACHE: cache_of(out)})
    sinusoidal = make(position_embedding_type="sinusoidal")
    assert sinusoidal(random_ids(1, 40)).logits.shape == (1, 40, VOCAB)


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
        (DecoderForCausalLM, AutoModelForCausalLM),
        (DecoderForSequenceClassification, AutoModelForSequenceClassification),
        (DecoderModel, AutoModel),
    ],
)
def test_save_load_round_trip_is_bit_exact(tmp_path, model_class, auto_class):
    model = make(model_class, num_labels=3, initializer_range=0.02)
    model.save_pretrained(tmp_path)
    ids = random_ids(2, 6)
    for loader in (model_class, auto_class):
        loaded = loader.from_pretrained(tmp_path).eval()
        assert type(loaded) is model_class
        assert_same_weights(loaded, model)
        assert torch.equal(loaded(ids)[0], model(ids)[0])


def test_tied_head_stays_tied_after_loading_and_untied_when_asked(tmp_path):
    model = make()
    assert model.lm_head.weight is model.model.embed_tokens.weight
    model.save_pretrained(tmp_path / "tied")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "tied")
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()

    untied = make(tie_word_embeddings=False)
    assert untied.lm_head.weight.data_ptr() != untied.model.embed_tokens.weight.data_ptr()
    untied.save_pretrained(tmp_path / "untied")
    loaded = DecoderForCausalLM.from_pretrained(tmp_path / "untied")
    assert_same_weights(loaded, untied)


def test_language_model_checkpoint_feeds_the_body_and_the_classifier(tmp_path):
    lm = make()
    lm.save_pretrained(tmp_path)
    body = AutoModel.from_pretrained(tmp_path)
    assert type(body) is DecoderModel
    assert_same_weights(body, lm.model)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    assert torch.equal(classifier.model.embed_tokens.weight, lm.model.embed_tokens.weight)
    assert classifier.classifier.weight.shape == (2, TINY["hidden_size"])


# --- generation --------------------------------------------------------------------------------------


GREEDY = dict(do_sample=False, max_new_tokens=10, eos_token_id=None, pad_token_id=PAD)


@pytest.mark.parametrize("position_embedding_type", ["learned", "sinusoidal"])
def test_cached_greedy_equals_uncached_greedy(position_embedding_type):
    model = make(position_embedding_type=position_embedding_type)
    prompt = random_ids(1, 6)
    with input_lengths(model) as lengths:
        cached = model.generate(prompt, use_cache=True, **GREEDY, **SCORED)
    uncached = model.generate(prompt, use_cache=False, **GREEDY, **SCORED)
    assert lengths == [6] + [1] * 9  # the cached run is fed one token per step...
    assert_same_logits(cached.logits, uncached.logits)  # ...and computes what a full recompute computes
    assert cached.sequences.shape == (1, 16)
    assert torch.equal(cached.sequences, uncached.sequences)
    if position_embedding_type == "learned":  # (random sinusoidal models tend to repeat one token)
        assert len(set(cached.sequences[0, 6:].tolist())) > 1  # a real continuation, not one repeated token


@pytest.mark.parametrize("name", ["cache", "past_key_values"])
@pytest.mark.parametrize("position_embedding_type", ["learned", "sinusoidal"])
def test_feeding_tokens_one_by_one_through_the_cache_reproduces_the_full_forward(position_embedding_type, name):
    # `cache` is transformers 5.24's name, `past_key_values` the older one: the model takes both on every version
    model = make(position_embedding_type=position_embedding_type)
    ids = random_ids(2, 9)
    full = model(ids).logits
    out = model(ids[:, :4], use_cache=True)
    steps = [out.logits]
    for position in range(4, 9):
        out = model(ids[:, position : position + 1], use_cache=True, **{name: cache_of(out)})
        steps.append(out.logits)
    assert cache_of(out).get_seq_length() == 9
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_both_cache_names_at_once_are_refused():
    model = make()
    cache = cache_of(model(random_ids(1, 3), use_cache=True))
    with pytest.raises(ValueError, match="not both"):
        model(random_ids(1, 1), cache=cache, past_key_values=cache)


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_left_padded_batch_generation_equals_each_prompt_alone(attn_implementation):
    model = make()
    model.set_attn_implementation(attn_implementation)
    prompts = [random_ids(1, n, seed=n)[0] for n in (7, 3, 5)]
    ids, mask = left_pad(prompts)
    batched = model.generate(ids, attention_mask=mask, **GREEDY, **SCORED)
    for row, prompt in enumerate(prompts):
        alone = model.generate(prompt[None], **GREEDY, **SCORED)
        assert torch.equal(batched.sequences[row, ids.shape[1] :], alone.sequences[0, len(prompt) :]), row
        assert_same_logits([step[row : row + 1] for step in batched.logits], alone.logits)


def test_beam_search_with_cache_equals_beam_search_without():
    model = make()
    prompt = random_ids(1, 5)
    kwargs = dict(num_beams=3, num_return_sequences=3, **SCORED, **GREEDY)
    cached = model.generate(prompt, **kwargs)
    uncached = model.generate(prompt, use_cache=False, **kwargs)
    assert cached.sequences.shape == (3, 15)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert_same_logits(cached.logits, uncached.logits)  # every beam's logits at every step
    torch.testing.assert_close(cached.sequences_scores, uncached.sequences_scores, atol=1e-4, rtol=1e-4)
    assert torch.equal(cached.sequences[:, :5], prompt.expand(3, -1))
    scores = cached.sequences_scores.tolist()
    assert scores == sorted(scores, reverse=True)


def test_sampling_is_seeded_and_stays_in_the_vocabulary():
    model = make()
    prompt = random_ids(2, 4)
    kwargs = dict(do_sample=True, top_k=20, temperature=1.3, max_new_tokens=12, eos_token_id=None, pad_token_id=PAD)
    torch.manual_seed(3)
    first = model.generate(prompt, **kwargs)
    torch.manual_seed(3)
    second = model.generate(prompt, **kwargs)
    torch.manual_seed(4)
    third = model.generate(prompt, **kwargs)
    assert first.shape == (2, 16) and torch.equal(first, second) and not torch.equal(first, third)
    assert int(first.min()) >= 0 and int(first.max()) < VOCAB


def test_seeded_sampling_with_cache_equals_sampling_without():
    model = make()
    prompt = random_ids(2, 4)
    kwargs = dict(do_sample=True, top_k=20, temperature=1.3, max_new_tokens=12, eos_token_id=None, pad_token_id=PAD)
    torch.manual_seed(5)
    cached = model.generate(prompt, use_cache=True, **kwargs, **SCORED)
    torch.manual_seed(5)
    uncached = model.generate(prompt, use_cache=False, **kwargs, **SCORED)
    assert_same_logits(cached.logits, uncached.logits)
    assert_same_logits(cached.scores, uncached.scores)  # after temperature and top-k
    assert torch.equal(cached.sequences, uncached.sequences)


# --- sequence classification -------------------------------------------------------------------------


def test_classifier_pools_the_last_real_token_under_left_and_right_padding():
    model = make(DecoderForSequenceClassification, num_labels=3)
    sequences = [random_ids(1, 8, seed=5)[0], random_ids(1, 4, seed=6)[0]]
    alone = torch.cat([model(seq[None]).logits for seq in sequences])
    for pad in (right_pad, left_pad):
        ids, mask = pad(sequences)
        assert torch.allclose(model(ids, attention_mask=mask).logits, alone, atol=1e-5), pad.__name__
    ids, _ = right_pad(sequences)  # no mask: the pad id tells where each sentence ends
    assert torch.allclose(model(ids).logits, alone, atol=1e-5)


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "concat"])
def test_classifier_pooling_summarises_only_the_real_tokens(pooling):
    model = make(DecoderForSequenceClassification, num_labels=3, pooling=pooling)
    sequences = [random_ids(1, 8, seed=5)[0], random_ids(1, 4, seed=6)[0]]
    # the summary computed by hand from each sentence's hidden states alone
    expected = []
    for seq in sequences:
        hidden = model.model(seq[None]).last_hidden_state[0]
        parts = {"last": hidden[-1], "mean": hidden.mean(0), "max": hidden.max(0).values}
        summary = torch.cat([parts["last"], parts["mean"], parts["max"]]) if pooling == "concat" else parts[pooling]
        expected.append(model.classifier(summary))
    expected = torch.stack(expected)
    assert model.classifier.in_features == 32 * (3 if pooling == "concat" else 1)
    for pad in (right_pad, left_pad):
        ids, mask = pad(sequences)
        torch.testing.assert_close(model(ids, attention_mask=mask).logits, expected, atol=1e-5, rtol=1e-5)
    ids, _ = right_pad(sequences)  # no mask: the pad id tells which tokens are real
    torch.testing.assert_close(model(ids).logits, expected, atol=1e-5, rtol=1e-5)


def test_classifier_pooling_must_be_known():
    with pytest.raises(ValueError, match="pooling must be one of"):
        DecoderConfig(**TINY, pooling="attention")


def test_classifier_loss_is_cross_entropy_and_regression_is_mse():
    model = make(DecoderForSequenceClassification, num_labels=3)
    ids, mask = right_pad([random_ids(1, 6, seed=7)[0], random_ids(1, 3, seed=8)[0]])
    labels = torch.tensor([2, 0])
    out = model(ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (2, 3)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, labels), atol=1e-6)
    regressor = make(DecoderForSequenceClassification, num_labels=1)
    targets = torch.tensor([0.5, -1.0])
    out = regressor(ids, attention_mask=mask, labels=targets)
    assert torch.allclose(out.loss, F.mse_loss(out.logits.squeeze(-1), targets), atol=1e-6)


def test_package_registers_the_decoder_with_auto_classes():
    config_class, heads = seqlab.models.FAMILIES["decoder"].config_class, seqlab.models.FAMILIES["decoder"].auto_classes
    assert config_class is DecoderConfig
    assert heads == {
        "AutoModel": DecoderModel,
        "AutoModelForCausalLM": DecoderForCausalLM,
        "AutoModelForSequenceClassification": DecoderForSequenceClassification,
    }
