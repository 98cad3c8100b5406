"""Checks shared by the generation tests of the decoder and the recurrent family.

They compare what generation *computes* (the logits of every step, `output_logits=True`), not only the
tokens it picks: an untrained model's greedy tokens barely depend on context, so a cache that is silently
ignored can still give the same tokens.
"""

from contextlib import contextmanager
from dataclasses import fields

import torch
from transformers.modeling_outputs import CausalLMOutputWithPast

# the cache's name in this transformers: `cache` from 5.24 on, `past_key_values` before (written out here rather
# than imported from seqlab, so that the tests judge the models by transformers' own convention)
CACHE = "cache" if "cache" in {f.name for f in fields(CausalLMOutputWithPast)} else "past_key_values"

# what generate returns when asked for every step's raw logits and processed scores
SCORED = dict(output_logits=True, output_scores=True, return_dict_in_generate=True)


def cache_of(outputs):
    """The cache a forward returned, under this transformers' field name."""
    return getattr(outputs, CACHE)


@contextmanager
def input_lengths(model):
    """Records the number of positions each forward call of `model` is fed (a forward pre-hook)."""
    lengths = []

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        lengths.append(ids.shape[1] if ids is not None else kwargs["inputs_embeds"].shape[1])

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield lengths
    finally:
        handle.remove()


def assert_same_logits(got, want, atol=1e-4, rtol=1e-4):
    """Step-by-step logits (tuples from `generate(..., output_logits=True)`) agree."""
    assert len(got) == len(want)
    for step, (a, b) in enumerate(zip(got, want)):
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=lambda m, step=step: f"step {step}: {m}")
