"""The computations behind each tab: classify, generate, fill the mask, and look inside the models.

Models load with the Auto classes. Where seqlab is importable its registered classes are used; elsewhere (a
Space) each folder's own configuration and modeling files are (``trust_remote_code``: the code ships beside
the weights and nothing is downloaded).
"""

import functools
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from .runfolder import DemoMessage, RunFolder

try:
    import seqlab  # noqa: F401  (registers the families with the Auto classes)

    _REMOTE_CODE = False
except ImportError:
    _REMOTE_CODE = True

MAX_CHARS = 1000
_AUTO = {
    "causal": AutoModelForCausalLM,
    "masked": AutoModelForMaskedLM,
    "classifier": AutoModelForSequenceClassification,
}


@functools.lru_cache(maxsize=32)
def load(path: Path, head: str):
    """(model in eval mode, tokenizer) of a saved folder, loaded once per process."""
    model = _AUTO[head].from_pretrained(path, trust_remote_code=_REMOTE_CODE).eval()
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=_REMOTE_CODE)
    return model, tokenizer


def position_limit(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", 0) or 10**9)


def encode(text: str, tokenizer, limit: int, room: int = 0) -> torch.Tensor:
    """Token ids (1, L) of ``text`` with the tokenizer's ``<s>``, or a message for empty or too long text."""
    if not text or not text.strip():
        raise DemoMessage("Type some text first: the box is empty.")
    if len(text) > MAX_CHARS:
        raise DemoMessage(f"The text is {len(text)} characters long; the demo takes at most {MAX_CHARS}. Shorten it.")
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    if ids.shape[1] + room > limit:
        extra = f" plus {room} new tokens" if room else ""
        raise DemoMessage(
            f"The text is {ids.shape[1]} tokens{extra}; these models take at most {limit} "
            "(max_position_embeddings). Shorten it" + (" or ask for fewer tokens." if room else ".")
        )
    return ids


def classify(run: RunFolder, text: str, budget: str) -> tuple[list[str], list[list]]:
    """Columns and one row per kept classifier: family, arm, prediction, a probability per label, its scores."""
    rows, labels = [], None
    for classifier in run.classifiers_for(budget):
        model, tokenizer = load(classifier.path, "classifier")
        ids = encode(text, tokenizer, position_limit(model))
        with torch.no_grad():
            probs = model(input_ids=ids).logits.softmax(-1)[0]
        names = [model.config.id2label[i] for i in range(probs.numel())]
        labels = labels or names
        best = int(probs.argmax())
        kept = classifier.kept
        rows.append(
            [
                classifier.family,
                classifier.arm,
                names[best],
                *[round(float(p), 4) for p in probs],
                _rounded(kept.get("metrics", {}).get("accuracy")),
                kept.get("seed"),
                kept.get("learning_rate"),
            ]
        )
    columns = [
        "family",
        "arm",
        "prediction",
        *[f"P({name})" for name in labels],
        "validation accuracy of this run",
        "seed",
        "learning rate",
    ]
    return columns, rows


def _rounded(value):
    return round(value, 4) if isinstance(value, float) else value


def generate(run: RunFolder, prompt: str, sampled: bool, max_new_tokens: int, seed: int) -> list[dict]:
    """The recurrent LM's and the decoder's continuations (cached generation) with their speed."""
    out = []
    for kind in ("recurrent", "decoder"):
        lm = run.language_model(kind)
        model, tokenizer = load(lm.path, "causal")
        ids = encode(prompt, tokenizer, position_limit(model), room=max_new_tokens)
        torch.manual_seed(int(seed))  # a sampled continuation repeats for the same seed
        options = dict(do_sample=True, top_k=50, temperature=1.0) if sampled else dict(do_sample=False)
        started = time.perf_counter()
        with torch.no_grad():
            sequences = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                use_cache=True,
                max_new_tokens=int(max_new_tokens),
                pad_token_id=tokenizer.pad_token_id,
                **options,
            )
        seconds = time.perf_counter() - started
        new = sequences[0, ids.shape[1] :]
        out.append(
            {
                "family": lm.title,
                "text": tokenizer.decode(new, skip_special_tokens=True),
                "new_tokens": int(new.numel()),
                "seconds": seconds,
                "tokens_per_s": new.numel() / seconds if seconds > 0 else float("nan"),
            }
        )
    return out


def fill_mask(run: RunFolder, text: str, top_k: int = 5) -> tuple[str, list[list]]:
    """The encoder's top-k tokens at each mask: (text with the best ones filled in, rows)."""
    lm = run.language_model("encoder")
    model, tokenizer = load(lm.path, "masked")
    mask = tokenizer.mask_token
    text = (text or "").replace("[MASK]", mask)
    if text.strip() and mask not in text:
        raise DemoMessage(f"Put {mask} (or [MASK]) where the encoder should fill in a word.")
    ids = encode(text, tokenizer, position_limit(model))
    where = (ids[0] == tokenizer.mask_token_id).nonzero().flatten()
    with torch.no_grad():
        probs = model(input_ids=ids).logits[0, where].softmax(-1)
    rows, filled = [], ids[0].clone()
    for n, (position, p) in enumerate(zip(where.tolist(), probs)):
        top = p.topk(top_k)
        filled[position] = top.indices[0]
        for rank, (token_id, prob) in enumerate(zip(top.indices.tolist(), top.values.tolist()), start=1):
            rows.append([n + 1, rank, tokenizer.decode([token_id]), round(prob, 4)])
    return tokenizer.decode(filled, skip_special_tokens=True), rows


def _tokens(tokenizer, ids: torch.Tensor) -> list[str]:
    return [tokenizer.decode([i]) for i in ids[0].tolist()]


def last_position_gradients(run: RunFolder, text: str) -> dict:
    """For each language model: the norm of the gradient of the last token's loss with respect to the input
    embedding at each earlier position (causal models predict the last token from the ones before it; the
    encoder predicts it masked, from both sides). How far back a family "looks", on the user's own text."""
    out = {}
    for lm in run.language_models:
        model, tokenizer = load(lm.path, "masked" if lm.kind == "encoder" else "causal")
        ids = encode(text, tokenizer, position_limit(model))
        if ids.shape[1] < 3:
            raise DemoMessage("Type at least two words: the last token is predicted from the ones before it.")
        target = ids[0, -1]
        inputs = ids.clone()
        if lm.kind == "encoder":
            inputs[0, -1] = tokenizer.mask_token_id
        embeds = model.get_input_embeddings()(inputs).detach().requires_grad_(True)
        logits = model(inputs_embeds=embeds).logits
        # a causal model predicts token t from position t-1; the encoder predicts the masked position itself
        predicting = logits[0, -1] if lm.kind == "encoder" else logits[0, -2]
        F.cross_entropy(predicting[None], target[None]).backward()
        norms = embeds.grad[0].norm(dim=-1)[:-1]  # positions before the predicted token
        out[lm.title] = {
            "tokens": _tokens(tokenizer, ids)[:-1],
            "norms": norms.tolist(),
            "target": _tokens(tokenizer, ids)[-1],
        }
    return out


def decoder_attention(run: RunFolder, text: str) -> dict:
    """The decoder's attention weights, per layer averaged over heads: (layers, L, L)."""
    lm = run.language_model("decoder")
    model, tokenizer = load(lm.path, "causal")
    ids = encode(text, tokenizer, position_limit(model))
    with torch.no_grad():
        attentions = model(input_ids=ids, output_attentions=True).attentions
    return {
        "title": lm.title,
        "tokens": _tokens(tokenizer, ids),
        "weights": torch.stack([a[0].mean(0) for a in attentions]).tolist(),
    }


def recurrent_hidden_norms(run: RunFolder, text: str) -> dict:
    """The norm of the recurrent model's hidden state at each position, per layer: (layers, L)."""
    lm = run.language_model("recurrent")
    model, tokenizer = load(lm.path, "causal")
    ids = encode(text, tokenizer, position_limit(model))
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[1:]  # [0] is the embedding
    return {"title": lm.title, "tokens": _tokens(tokenizer, ids), "norms": [h[0].norm(dim=-1).tolist() for h in hidden]}
