"""The recurrent family: the seed's worked example, state handling, padding, generation, saving."""

import pytest
import torch
from generation_helpers import CACHE, SCORED, assert_same_logits, cache_of, input_lengths

from seqlab import (
    RecurrentConfig,
    RecurrentForCausalLM,
    RecurrentForSequenceClassification,
    RecurrentModel,
)
from seqlab.diagnostics.worked_example import build_worked_example_model
from seqlab.models.recurrent.modeling_recurrent import RecurrentState

CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", None), ("gru", None)]


def tiny_config(cell_type="lstm", nonlinearity=None, **overrides):
    kwargs = dict(
        vocab_size=40,
        embedding_size=12,
        hidden_size=16,
        num_hidden_layers=2,
        cell_type=cell_type,
        nonlinearity=nonlinearity,
        embedding_dropout_prob=0.0,
        hidden_dropout_prob=0.0,
        output_dropout_prob=0.0,
        classifier_dropout_prob=0.0,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    kwargs.update(overrides)
    return RecurrentConfig(**kwargs)


def build(model_class, cell_type="lstm", nonlinearity=None, seed=0, **overrides):
    torch.manual_seed(seed)
    return model_class(tiny_config(cell_type, nonlinearity, **overrides)).eval()


# --- the seed's worked example (000, Part 1) -------------------------------------------------------


def test_worked_example_reproduces_the_seed_numbers():
    model = build_worked_example_model()  # the seed's W_xh, W_hh, W_hy, zero biases, one-hot inputs
    assert model.projection is None and model.lm_head.weight.shape == (4, 2)
    a, b, c, d = range(4)
    out = model(
        torch.tensor([[a, b, c, d]]),
        labels=torch.tensor([[-100, -100, -100, d]]),  # only "C -> D" is scored
        output_hidden_states=True,
    )
    h = out.hidden_states[1][0]
    tol = 1e-3  # the seed rounds along the way
    torch.testing.assert_close(h[0], torch.tensor([0.0997, 0.4621]), atol=tol, rtol=0)
    torch.testing.assert_close(h[1], torch.tensor([0.2935, 0.6729]), atol=tol, rtol=0)
    torch.testing.assert_close(h[2], torch.tensor([0.4339, 0.7843]), atol=tol, rtol=0)
    logits_at_c = out.logits[0, 2]
    torch.testing.assert_close(logits_at_c, torch.tensor([0.20025, 0.44389, 0.68753, 0.93117]), atol=tol, rtol=0)
    assert logits_at_c.softmax(-1)[d].item() == pytest.approx(0.3473, abs=tol)
    assert out.loss.item() == pytest.approx(1.057, abs=tol)


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"cell_type": "transformer"}, "cell_type"),
        ({"cell_type": "lstm", "nonlinearity": "relu"}, "nonlinearity"),
        ({"cell_type": "rnn", "nonlinearity": "sigmoid"}, "nonlinearity"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"num_hidden_layers": -1}, "num_hidden_layers"),
        ({"hidden_dropout_prob": 1.0}, "hidden_dropout_prob"),
        ({"embedding_dropout_prob": -0.1}, "embedding_dropout_prob"),
        ({"pooling": "attention"}, "pooling"),
        ({"recurrent_init": "zeros"}, "recurrent_init"),
    ],
)
def test_config_validation_names_the_field(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        RecurrentConfig(**kwargs)


def test_config_defaults_and_round_trip(tmp_path):
    config = RecurrentConfig(cell_type="rnn", hidden_size=8, embedding_size=4)
    assert config.nonlinearity == "tanh" and config.model_type == "seqlab_recurrent"
    config.save_pretrained(tmp_path)
    loaded = RecurrentConfig.from_pretrained(tmp_path)
    assert (loaded.cell_type, loaded.nonlinearity, loaded.embedding_size) == ("rnn", "tanh", 4)


# --- initialisation -----------------------------------------------------------------------------


def test_initialisation_is_explicit():
    lstm = build(RecurrentModel, "lstm").layers[0]
    hidden = lstm.hidden_size
    forget_bias = lstm.bias_ih_l0[hidden : 2 * hidden] + lstm.bias_hh_l0[hidden : 2 * hidden]
    assert torch.all(forget_bias == 1.0)
    other_gates = torch.cat([lstm.bias_ih_l0[:hidden], lstm.bias_ih_l0[2 * hidden :]])
    assert torch.all(other_gates == 0.0)
    for cell in ("rnn", "lstm", "gru"):
        layer = build(RecurrentModel, cell).layers[1]
        for gate in layer.weight_hh_l0.detach().split(layer.hidden_size):
            torch.testing.assert_close(gate @ gate.T, torch.eye(layer.hidden_size), atol=1e-5, rtol=0)
    irnn = build(RecurrentModel, "rnn", "relu", recurrent_init="identity").layers[0]
    assert torch.equal(irnn.weight_hh_l0.detach(), torch.eye(irnn.hidden_size))


# --- forward, loss, hidden states ----------------------------------------------------------------


@pytest.mark.parametrize("cell_type, nonlinearity", CELLS)
def test_loss_is_shifted_cross_entropy(cell_type, nonlinearity):
    model = build(RecurrentForCausalLM, cell_type, nonlinearity)
    ids = torch.randint(5, 40, (3, 9))
    labels = ids.clone()
    labels[0, 4] = -100
    out = model(ids, labels=labels, output_hidden_states=True)
    assert out.logits.shape == (3, 9, 40)
    assert len(out.hidden_states) == 3  # embeddings + one per layer
    expected = torch.nn.functional.cross_entropy(
        out.logits[:, :-1].reshape(-1, 40), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    torch.testing.assert_close(out.loss, expected)
    assert isinstance(cache_of(out), RecurrentState)
    assert cache_of(out).get_seq_length() == 9


@pytest.mark.parametrize("name", ["cache", "past_key_values"])
def test_state_continues_the_sequence(name):
    # `cache` is transformers 5.24's name, `past_key_values` the older one: the model takes both on every version
    model = build(RecurrentForCausalLM, "lstm")
    ids = torch.randint(5, 40, (2, 10))
    full = model(ids).logits
    first = model(ids[:, :6], use_cache=True)
    rest = model(ids[:, 6:], **{name: cache_of(first)})
    torch.testing.assert_close(torch.cat([first.logits, rest.logits], 1), full, atol=1e-6, rtol=1e-5)
    assert cache_of(rest).get_seq_length() == 10


def test_state_is_a_transformers_cache_of_recurrent_layers():
    from transformers.cache_utils import Cache, LinearAttentionLayer

    model = build(RecurrentForCausalLM, "lstm")
    state = cache_of(model(torch.randint(5, 40, (3, 4)), use_cache=True))
    assert isinstance(state, Cache) and len(state) == 2
    assert all(isinstance(layer, LinearAttentionLayer) for layer in state.layers) and all(state.is_linear)
    h, c = state.layer_state(1)
    assert h.shape == c.shape == (1, 3, 16)
    beams = torch.tensor([2, 0, 0])
    state.reorder_cache(beams)  # what beam search calls
    assert torch.equal(state.layer_state(1)[0][0], h[0, beams]) and torch.equal(state.layer_state(1)[1][0], c[0, beams])
    assert not state.is_compileable  # generate must not try to compile around the recurrent kernel
    state.reset()
    assert state.get_seq_length() == 0 and state.layer_state(0) is None


@pytest.mark.parametrize("cell_type,nonlinearity", CELLS)
def test_stacked_kernel_call_equals_the_layer_by_layer_loop(cell_type, nonlinearity):
    # unpadded input runs all layers in one multi-layer call; output_hidden_states forces the per-layer loop.
    # Same weights, same maths, same dropout stream: the loss and every gradient are bit-identical.
    model = build(RecurrentForCausalLM, cell_type, nonlinearity, num_hidden_layers=3, hidden_dropout_prob=0.4).train()
    ids = torch.randint(3, 40, (3, 11), generator=torch.Generator().manual_seed(0))
    results = []
    for per_layer in (False, True):
        torch.manual_seed(7)
        out = model(ids, labels=ids, output_hidden_states=per_layer, use_cache=True)
        out.loss.backward()
        results.append((out, [p.grad.clone() for p in model.parameters()]))
        model.zero_grad()
    (stacked, grads_stacked), (looped, grads_looped) = results
    assert torch.equal(stacked.logits, looped.logits)
    assert all(torch.equal(a, b) for a, b in zip(grads_stacked, grads_looped))
    for i in range(3):
        a, b = cache_of(stacked).layer_state(i), cache_of(looped).layer_state(i)
        pairs = zip(a, b) if isinstance(a, tuple) else [(a, b)]
        assert all(x.shape == (1, 3, 16) and torch.equal(x, y) for x, y in pairs)


def test_stacked_call_is_taken_and_keeps_the_checkpoint_layout(monkeypatch):
    model = build(RecurrentForCausalLM, "lstm")
    layer_keys = [name for name in model.state_dict() if ".layers." in name]
    assert layer_keys == [
        f"model.layers.{i}.{w}_l0" for i in (0, 1) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    ]
    calls = []
    original = torch.nn.LSTM.forward
    kernel = model.model._stacked.kernel
    assert kernel is torch.lstm  # the kernel nn.LSTM.forward calls

    def spy(self, *args, **kwargs):
        calls.append(("layer", self.num_layers))
        return original(self, *args, **kwargs)

    def kernel_spy(*args):
        calls.append(("stacked", args[4]))  # the number of layers
        return kernel(*args)

    monkeypatch.setattr(torch.nn.LSTM, "forward", spy)
    monkeypatch.setattr(model.model._stacked, "kernel", kernel_spy)
    ids = torch.randint(3, 40, (2, 6))
    model(ids)
    assert calls == [("stacked", 2)]  # one call for both layers
    calls.clear()
    model(ids, attention_mask=torch.tensor([[0, 1, 1, 1, 1, 1], [1] * 6]))  # padding: layer by layer
    assert calls == [("layer", 1), ("layer", 1)]
    assert build(RecurrentModel, "lstm", num_hidden_layers=1)._stacked is None


def test_hooks_on_a_layer_keep_the_layer_by_layer_loop():
    # the stacked call bypasses each layer's forward; accelerate's offload/device-map hooks and user hooks
    # live there, so a hooked stack runs layer by layer (same numbers) and the hooks fire
    from accelerate.hooks import ModelHook, add_hook_to_module, remove_hook_from_module

    model = build(RecurrentForCausalLM, "lstm")
    ids = torch.randint(3, 40, (2, 6))
    expected = model(ids).logits
    seen = []
    handle = model.model.layers[0].register_forward_hook(lambda module, args, out: seen.append("user"))
    assert torch.equal(model(ids).logits, expected) and seen == ["user"]
    handle.remove()

    class Counting(ModelHook):
        def pre_forward(self, module, *args, **kwargs):
            seen.append("accelerate")
            return args, kwargs

    add_hook_to_module(model.model.layers[1], Counting())
    assert torch.equal(model(ids).logits, expected) and seen == ["user", "accelerate"]
    remove_hook_from_module(model.model.layers[1])
    model(ids)
    assert seen == ["user", "accelerate"]  # no hook left: the stacked call again


def test_flatten_together_binds_the_layers_weights_once_per_storage(monkeypatch):
    # on CUDA the stacked call first puts every layer's weights into one cuDNN buffer; checked here on CPU
    # with the template's flatten_parameters spied on (on CPU it would return without flattening)
    model = build(RecurrentModel, "lstm")
    stacked = model._stacked
    bound = []
    monkeypatch.setattr(stacked.module, "flatten_parameters", lambda: bound.append(list(stacked.module._flat_weights)))
    weights = stacked.weights(model.layers)
    assert list(weights) == [f"{w}_l{i}" for i in (0, 1) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert stacked.flatten_together(weights) is True
    assert len(bound) == 1 and all(a is b for a, b in zip(bound[0], weights.values()))  # the layers' own tensors
    assert all(w.is_meta for w in stacked.module._flat_weights)  # restored: the template owns no weights
    assert stacked.flatten_together(weights) is False  # same storage: nothing to do
    with torch.no_grad():
        model.layers[1].weight_hh_l0.set_(model.layers[1].weight_hh_l0.clone())  # what .to() or loading does
    assert stacked.flatten_together(stacked.weights(model.layers)) is True and len(bound) == 2
    borrowed = dict(weights, weight_hh_l1=weights["weight_hh_l1"].view(-1).view(weights["weight_hh_l1"].shape))
    stacked.flat_signature = None
    assert stacked.flatten_together(borrowed) is False  # a view into someone else's storage (FSDP): left alone


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
def test_padding_on_either_side_does_not_touch_the_state(cell_type):
    model = build(RecurrentModel, cell_type)
    ids = torch.randint(5, 40, (1, 6))
    alone = model(ids, use_cache=True)
    pad = torch.zeros(1, 3, dtype=torch.long)
    ones, zeros = torch.ones(1, 6, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long)
    right = model(torch.cat([ids, pad], 1), attention_mask=torch.cat([ones, zeros], 1), use_cache=True)
    left = model(torch.cat([pad, ids], 1), attention_mask=torch.cat([zeros, ones], 1), use_cache=True)
    torch.testing.assert_close(right.last_hidden_state[:, :6], alone.last_hidden_state, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(left.last_hidden_state[:, 3:], alone.last_hidden_state, atol=1e-6, rtol=1e-5)
    for padded in (right, left):
        for i in range(2):
            got, want = cache_of(padded).layer_state(i), cache_of(alone).layer_state(i)
            got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
            for g, w in zip(got, want):
                torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-5)


def test_inputs_embeds_matches_input_ids():
    model = build(RecurrentForCausalLM, "gru")
    ids = torch.randint(5, 40, (2, 5))
    embeds = model.get_input_embeddings()(ids)
    torch.testing.assert_close(model(inputs_embeds=embeds).logits, model(ids).logits)
    with pytest.raises(ValueError, match="exactly one"):
        model.model()


# --- generation ----------------------------------------------------------------------------------


NO_STOP = dict(pad_token_id=0, eos_token_id=None)


@pytest.mark.parametrize("cell_type, nonlinearity", CELLS)
def test_greedy_with_and_without_state_is_identical(cell_type, nonlinearity):
    model = build(RecurrentForCausalLM, cell_type, nonlinearity, seed=1)
    ids = torch.randint(5, 40, (2, 5))
    kwargs = dict(max_new_tokens=12, do_sample=False, **NO_STOP, **SCORED)
    cached = model.generate(ids, use_cache=True, **kwargs)
    uncached = model.generate(ids, use_cache=False, **kwargs)
    assert cached.sequences.shape == (2, 17)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert_same_logits(cached.logits, uncached.logits)


@pytest.mark.parametrize(
    "mode, kwargs",
    [
        ("greedy", dict(do_sample=False)),
        ("sampling", dict(do_sample=True, top_k=10)),
        ("beam search", dict(do_sample=False, num_beams=3)),
    ],
)
def test_generate_feeds_only_the_new_token_once_the_state_exists(mode, kwargs):
    model = build(RecurrentForCausalLM, "lstm")
    with input_lengths(model) as lengths:
        model.generate(torch.randint(5, 40, (2, 7)), max_new_tokens=5, **kwargs, **NO_STOP)
    assert lengths == [7, 1, 1, 1, 1], mode
    with input_lengths(model) as lengths:
        model.generate(torch.randint(5, 40, (2, 7)), max_new_tokens=5, use_cache=False, **kwargs, **NO_STOP)
    assert lengths == [7, 8, 9, 10, 11], mode  # without the state, the whole sequence every step


def test_generate_continues_from_a_returned_state():
    model = build(RecurrentForCausalLM, "gru", seed=5)
    ids = torch.randint(5, 40, (1, 6))
    kwargs = dict(do_sample=False, **NO_STOP, **SCORED)
    whole = model.generate(ids, max_new_tokens=8, **kwargs)
    first = model.generate(ids, max_new_tokens=4, **kwargs)
    with input_lengths(model) as lengths:
        rest = model.generate(first.sequences, max_new_tokens=4, **{CACHE: getattr(first, CACHE)}, **kwargs)
    assert lengths == [1, 1, 1, 1]  # the state has seen all but the last generated token
    assert torch.equal(rest.sequences, whole.sequences)
    assert_same_logits(first.logits + rest.logits, whole.logits)


def test_left_padded_batch_generation_equals_single_prompts():
    model = build(RecurrentForCausalLM, "lstm", seed=2)
    short, long = torch.randint(5, 40, (1, 3)), torch.randint(5, 40, (1, 6))
    batch = torch.cat([torch.cat([torch.zeros(1, 3, dtype=torch.long), short], 1), long])
    mask = (torch.arange(6) >= torch.tensor([[3], [0]])).long()
    kwargs = dict(max_new_tokens=6, do_sample=False, **NO_STOP, **SCORED)
    out = model.generate(batch, attention_mask=mask, **kwargs)
    alone_short = model.generate(short, **kwargs)
    alone_long = model.generate(long, **kwargs)
    assert torch.equal(out.sequences[0, 6:], alone_short.sequences[0, 3:])
    assert torch.equal(out.sequences[1, 6:], alone_long.sequences[0, 6:])
    assert_same_logits([step[0:1] for step in out.logits], alone_short.logits)
    assert_same_logits([step[1:2] for step in out.logits], alone_long.logits)


def test_beam_search_reorders_the_state():
    model = build(RecurrentForCausalLM, "gru", seed=3)
    ids = torch.randint(5, 40, (2, 4))
    kwargs = dict(max_new_tokens=6, num_beams=3, num_return_sequences=2, do_sample=False, **NO_STOP, **SCORED)
    cached = model.generate(ids, use_cache=True, **kwargs)
    uncached = model.generate(ids, use_cache=False, **kwargs)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert_same_logits(cached.logits, uncached.logits)  # every beam at every step: the state followed its beam
    torch.testing.assert_close(cached.sequences_scores, uncached.sequences_scores, atol=1e-4, rtol=1e-4)


def test_sampling_is_reproducible_with_a_seed():
    model = build(RecurrentForCausalLM, "rnn", "tanh")
    ids = torch.randint(5, 40, (2, 4))
    torch.manual_seed(7)
    first = model.generate(ids, max_new_tokens=8, do_sample=True, top_k=10, **NO_STOP)
    torch.manual_seed(7)
    second = model.generate(ids, max_new_tokens=8, do_sample=True, top_k=10, **NO_STOP)
    assert first.shape == (2, 12) and torch.equal(first, second)


@pytest.mark.parametrize("cell_type, nonlinearity", CELLS)
def test_seeded_sampling_with_state_equals_sampling_without(cell_type, nonlinearity):
    model = build(RecurrentForCausalLM, cell_type, nonlinearity, seed=6)
    ids = torch.randint(5, 40, (2, 4))
    kwargs = dict(max_new_tokens=10, do_sample=True, top_k=10, temperature=1.5, **NO_STOP, **SCORED)
    torch.manual_seed(8)
    cached = model.generate(ids, use_cache=True, **kwargs)
    torch.manual_seed(8)
    uncached = model.generate(ids, use_cache=False, **kwargs)
    assert_same_logits(cached.logits, uncached.logits)
    assert_same_logits(cached.scores, uncached.scores)  # after temperature and top-k
    assert torch.equal(cached.sequences, uncached.sequences)


@pytest.mark.parametrize("assistance", ["assistant_model", "prompt_lookup_num_tokens"])
def test_assisted_decoding_is_refused_as_stateful(assistance):
    # transformers 5.17-5.24 refuse it for `_is_stateful` models; from 5.25 on the model refuses it itself
    model = build(RecurrentForCausalLM, "lstm")
    assert model._is_stateful
    option = {"assistant_model": build(RecurrentForCausalLM, "lstm"), "prompt_lookup_num_tokens": 2}[assistance]
    with pytest.raises(ValueError, match="assisted generation is not supported with stateful models"):
        model.generate(
            torch.randint(5, 40, (1, 4)), **{assistance: option}, max_new_tokens=3, do_sample=False, **NO_STOP
        )


# --- classification pooling -----------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "concat"])
def test_pooling_respects_padding_on_either_side(pooling):
    model = build(RecurrentForSequenceClassification, "lstm", pooling=pooling, num_labels=3)
    ids = torch.randint(5, 40, (1, 5))
    alone = model(ids).logits
    pad, ones, zeros = torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 5), torch.zeros(1, 4)
    right = model(torch.cat([ids, pad], 1), attention_mask=torch.cat([ones, zeros], 1)).logits
    left = model(torch.cat([pad, ids], 1), attention_mask=torch.cat([zeros, ones], 1)).logits
    torch.testing.assert_close(right, alone, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(left, alone, atol=1e-6, rtol=1e-5)
    # without a mask, pad_token_id marks the padding
    torch.testing.assert_close(model(torch.cat([ids, pad], 1)).logits, alone, atol=1e-6, rtol=1e-5)


def test_classification_loss_and_width():
    model = build(RecurrentForSequenceClassification, "gru", pooling="concat", num_labels=2)
    assert model.classifier.in_features == 3 * 16
    ids = torch.randint(5, 40, (4, 6))
    labels = torch.tensor([0, 1, 1, 0])
    out = model(ids, labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))


def test_classification_loss_follows_problem_type_as_the_decoder_and_encoder_do():
    ids = torch.randint(5, 40, (4, 6))
    # num_labels == 1: regression, the mean squared error, for labels of shape (batch,) or (batch, 1)
    regressor = build(RecurrentForSequenceClassification, "lstm", num_labels=1)
    targets = torch.tensor([0.5, -1.0, 2.0, 0.0])
    out = regressor(ids, labels=targets)
    by_hand = ((out.logits[:, 0] - targets) ** 2).mean()
    torch.testing.assert_close(out.loss, by_hand)
    torch.testing.assert_close(regressor(ids, labels=targets[:, None]).loss, by_hand)
    # float labels with several outputs: multi-label, a sigmoid and binary cross entropy per label
    multi = build(RecurrentForSequenceClassification, "gru", num_labels=3)
    flags = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    out = multi(ids, labels=flags)
    x = out.logits
    by_hand = -(flags * torch.nn.functional.logsigmoid(x) + (1 - flags) * torch.nn.functional.logsigmoid(-x)).mean()
    torch.testing.assert_close(out.loss, by_hand)
    # the type is inferred per call and not written back, as in the decoder and encoder ...
    assert regressor.config.problem_type is None and multi.config.problem_type is None
    # ... and a problem_type set in the config decides, as in transformers: one logit scored as a binary label
    binary = build(RecurrentForSequenceClassification, "rnn", num_labels=1, problem_type="multi_label_classification")
    labels = torch.tensor([[1.0], [0.0], [0.0], [1.0]])
    out = binary(ids, labels=labels)
    x = out.logits
    by_hand = -(labels * torch.nn.functional.logsigmoid(x) + (1 - labels) * torch.nn.functional.logsigmoid(-x)).mean()
    torch.testing.assert_close(out.loss, by_hand)


def test_lm_loss_with_num_items_in_batch_is_the_sum_over_that_count():
    """Trainer passes the count of targets of all accumulated batches: the loss is then a sum divided by it."""
    model = build(RecurrentForCausalLM, "gru")
    ids = torch.randint(5, 40, (3, 9))
    labels = ids.clone()
    labels[0, 4] = -100
    out = model(ids, labels=labels)
    targets = labels[:, 1:]  # position t is scored on token t + 1
    scored = targets != -100
    log_probs = out.logits[:, :-1].log_softmax(-1)
    nll = -log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)[scored]
    assert nll.numel() == 3 * 8 - 1
    torch.testing.assert_close(out.loss, nll.mean())
    torch.testing.assert_close(model(ids, labels=labels, num_items_in_batch=10).loss, nll.sum() / 10)
    torch.testing.assert_close(model(ids, labels=labels, num_items_in_batch=torch.tensor(10)).loss, nll.sum() / 10)


# --- tying and saving -----------------------------------------------------------------------------


def test_tied_head_with_projection_when_widths_differ():
    model = build(RecurrentForCausalLM, "lstm")  # embedding 12, hidden 16
    assert model.projection.weight.shape == (12, 16)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    untied = build(RecurrentForCausalLM, "lstm", tie_word_embeddings=False)
    assert untied.projection is None and untied.lm_head.weight.shape == (40, 16)
    assert untied.lm_head.weight.data_ptr() != untied.model.embed_tokens.weight.data_ptr()


@pytest.mark.parametrize("cell_type", ["rnn", "lstm", "gru"])
def test_save_load_round_trip_is_bit_exact(tmp_path, cell_type):
    model = build(RecurrentForCausalLM, cell_type)
    with torch.no_grad():  # move every weight away from any value initialisation could produce
        for param in model.parameters():
            param.add_(torch.randn_like(param))
    model.save_pretrained(tmp_path)
    loaded = RecurrentForCausalLM.from_pretrained(tmp_path).eval()
    expected = model.state_dict()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()
    ids = torch.randint(5, 40, (2, 6))
    assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_generate_from_inputs_embeds_matches_input_ids():
    model = build(RecurrentForCausalLM, "lstm", seed=4)
    ids = torch.randint(5, 40, (2, 5))
    embeds = model.get_input_embeddings()(ids).detach()
    kwargs = dict(max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None, **SCORED)
    expected = model.generate(ids, use_cache=False, **kwargs)
    for use_cache in (True, False):
        with input_lengths(model) as lengths:
            out = model.generate(inputs_embeds=embeds, use_cache=use_cache, **kwargs)
        assert lengths == [5, 1, 1, 1, 1, 1]  # from embeddings transformers always decodes with the cache
        assert torch.equal(out.sequences, expected.sequences[:, 5:])
        assert_same_logits(out.logits, expected.logits)
