"""Generation on both ends of the supported transformers range (5.17 .. the newest that installs).

transformers 5.24 renamed the cache (`past_key_values` -> `cache`, as `generate`'s argument and as the output
field it reads back). These tests hold on every supported version: the saved folders' own code generates the
same logits as seqlab in a fresh process without seqlab, the position limit is the model's clear ValueError
under every entry point, and no deprecation warning comes from seqlab's code. CI runs the suite on both ends.
"""

import logging
import warnings

import pytest
import torch
import transformers
from generation_helpers import CACHE, SCORED, assert_same_logits, cache_of
from remote_code import generate_without_seqlab
from transformers import pipeline
from transformers.utils.deprecation import deprecate_kwarg

import seqlab
from seqlab.tokenizer import token_config_kwargs

TINY = {
    "recurrent": dict(
        cell_type="lstm",
        embedding_size=24,
        hidden_size=32,
        num_hidden_layers=2,
        embedding_dropout_prob=0.0,
        hidden_dropout_prob=0.0,
        output_dropout_prob=0.0,
    ),
    "decoder": dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=0.2,
    ),
}


def make_lm(family, tokenizer, seed=0, **overrides):
    config_class, heads = seqlab.models.FAMILIES[family].config_class, seqlab.models.FAMILIES[family].auto_classes
    kwargs = {**TINY[family], **token_config_kwargs(tokenizer), "max_position_embeddings": 64, **overrides}
    torch.manual_seed(seed)
    return heads["AutoModelForCausalLM"](config_class(**kwargs)).eval()


# --- the warning filter ---------------------------------------------------------------------------


def _call_from_module(module_name, function):
    """Call `function` from a frame whose module is `module_name`, as code in that module would."""
    namespace = {"__name__": module_name, "function": function}
    exec(compile("function(past_key_values=1)", f"<{module_name}>", "exec"), namespace)


def test_future_warnings_raised_in_seqlab_modules_are_errors():
    # pyproject's filterwarnings turns a FutureWarning attributed to a seqlab module into an error: the kind
    # transformers' `deprecate_kwarg` raises (stacklevel=2: blamed on the caller) when seqlab uses an old name
    @deprecate_kwarg("past_key_values", "99.0.0", new_name="cache")
    def takes_cache(cache=None):
        return cache

    with pytest.raises(FutureWarning, match="`past_key_values` is deprecated"):
        _call_from_module("seqlab.models.decoder.modeling_decoder", takes_cache)
    with pytest.raises(FutureWarning):
        _call_from_module("seqlab", takes_cache)
    with warnings.catch_warnings(record=True) as caught:  # the same call from elsewhere stays a warning
        warnings.simplefilter("default")
        _call_from_module("seqlab_elsewhere", takes_cache)  # (the filter matches `seqlab` and its submodules)
        _call_from_module("someone_else", takes_cache)
    assert [w.category for w in caught] == [FutureWarning, FutureWarning]


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("family", ["recurrent", "decoder"])
def test_forward_and_generate_raise_no_deprecation(tokenizer, family):
    """Not a FutureWarning from anywhere, nor transformers' logged `past_key_values/cache_params are deprecated`."""
    model = make_lm(family, tokenizer)
    ids = tokenizer(["Good morrow", "Now is the winter of"], return_tensors="pt", padding=True, padding_side="left")
    records = _Records()
    logger = logging.getLogger("transformers")
    logging.Logger.warning_once.cache_clear()  # transformers logs each message once per process
    logger.addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = model(**ids, use_cache=True)
            model(ids["input_ids"][:, -1:], **{CACHE: cache_of(out)})
            for kwargs in (dict(), dict(use_cache=False), dict(num_beams=2), dict(do_sample=True, top_k=5)):
                model.generate(**ids, max_new_tokens=3, eos_token_id=None, **SCORED, **kwargs)
    finally:
        logger.removeHandler(records)
    assert not [str(w.message) for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    assert not [m for m in records.messages if "deprecat" in m.lower()]


# --- the position limit ---------------------------------------------------------------------------


def test_text_generation_pipeline_beyond_the_positions_is_a_clear_error(tmp_path, tokenizer):
    model = make_lm("decoder", tokenizer)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    generator = pipeline("text-generation", model=str(tmp_path), device="cpu")
    message = r"exceeds max_position_embeddings=64 of this decoder's learned positional encodings"
    with pytest.raises(ValueError, match=message):
        generator("Good morrow, sweet", max_new_tokens=100, do_sample=False, eos_token_id=None)
    with pytest.raises(ValueError, match=message):
        generator("Good morrow, sweet", max_new_tokens=100, do_sample=False, eos_token_id=None, use_cache=False)
    assert generator("Good morrow, sweet", max_new_tokens=8, do_sample=False)[0]["generated_text"]


# --- saved folders' own code, in a fresh process ---------------------------------------------------


@pytest.mark.parametrize("family", ["recurrent", "decoder"])
def test_saved_language_model_generates_the_same_logits_without_seqlab(tmp_path, tokenizer, family):
    model = make_lm(family, tokenizer, seed=3)
    model.save_pretrained(tmp_path)
    inputs = dict(
        tokenizer(
            ["Good morrow, sweet", "Now is the winter of our"], return_tensors="pt", padding=True, padding_side="left"
        )
    )
    kwargs = dict(max_new_tokens=6, do_sample=False, eos_token_id=None, pad_token_id=tokenizer.pad_token_id)
    remote = generate_without_seqlab(tmp_path, inputs, kwargs)
    assert remote["transformers"] == transformers.__version__
    prompt = inputs["input_ids"].shape[1]
    assert remote[True]["lengths"] == [prompt] + [1] * 5  # the folder's code uses its cache
    assert remote[False]["lengths"] == list(range(prompt, prompt + 6))
    local = model.generate(**inputs, **kwargs, **SCORED)
    for use_cache in (True, False):
        assert torch.equal(remote[use_cache]["sequences"], local.sequences), use_cache
        assert_same_logits(list(remote[use_cache]["logits"]), local.logits)
