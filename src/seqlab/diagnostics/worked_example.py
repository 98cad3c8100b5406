"""The seed's worked example (000, Part 1) run through the real RecurrentForCausalLM.

The seed predicts "D" after "A B C" with a vanilla RNN: one-hot inputs (n_x = 4), a 2-unit tanh hidden
state, W_xh, W_hh, W_hy given, zero biases. It prints h_1, h_2, h_3, the output scores o_3, the softmax
probability of "D", the cross-entropy loss and the output gradient δo_3, then describes the rest of
backpropagation through time (δW_hy = δo_3 h_3ᵀ, δb_y = δo_3, δh_3 = W_hyᵀ δo_3, then back to earlier
steps) in words. Here the same numbers come from the model's forward pass and from autograd; the
gradients the seed only describes are evaluated from its formulas on its printed numbers.

The mapping onto the model: the embedding matrix is the 4x4 identity (an embedding lookup of a
one-hot vector is the vector itself), the single RNN layer holds W_xh and W_hh, the LM head holds W_hy
and b_y (untied), and the model's own loss scores only the position of "C" (labels -100 elsewhere).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.recurrent import RecurrentConfig, RecurrentForCausalLM
from .gradient_flow import unroll_recurrent_lm
from .report import provenance, provenance_markdown

LETTERS = "ABCD"
W_XH = [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]]
W_HH = [[0.1, 0.2], [0.3, 0.4]]
W_HY = [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]]
TOLERANCE = 1e-3  # the seed rounds its intermediate numbers to 4-5 decimals

# The numbers the seed prints (000, Part 1, sections 5-8).
SEED_PRINTED = {
    "h_1": [0.0997, 0.4621],
    "a_2": [0.30239, 0.81476],
    "h_2": [0.2935, 0.6729],
    "a_3": [0.46393, 1.05721],
    "h_3": [0.4339, 0.7843],
    "o_3": [0.20025, 0.44389, 0.68753, 0.93117],
    "softmax(o_3)": [0.1672, 0.2133, 0.2722, 0.3473],  # δo_3 + y_true: the probabilities the seed used
    "P(D)": 0.3473,
    "loss": 1.057,
    "dL/do_3": [0.1672, 0.2133, 0.2722, -0.6527],
}


def build_worked_example_model() -> RecurrentForCausalLM:
    """A RecurrentForCausalLM holding exactly the seed's weights."""
    config = RecurrentConfig(
        vocab_size=4,
        embedding_size=4,
        hidden_size=2,
        num_hidden_layers=1,
        cell_type="rnn",
        nonlinearity="tanh",
        tie_word_embeddings=False,
        embedding_dropout_prob=0.0,
        hidden_dropout_prob=0.0,
        output_dropout_prob=0.0,
        pad_token_id=None,
        bos_token_id=None,
        eos_token_id=None,
    )
    model = RecurrentForCausalLM(config).eval()
    rnn = model.model.layers[0]
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(4))
        rnn.weight_ih_l0.copy_(torch.tensor(W_XH))
        rnn.weight_hh_l0.copy_(torch.tensor(W_HH))
        rnn.bias_ih_l0.zero_()
        rnn.bias_hh_l0.zero_()
        model.lm_head.weight.copy_(torch.tensor(W_HY))
        model.lm_head.bias.zero_()
    return model


@dataclass
class Step:
    name: str
    model: torch.Tensor  # computed by the model / autograd
    seed: torch.Tensor  # printed by the seed, or its formula evaluated on its printed numbers
    source: str  # where the seed's number comes from

    @property
    def difference(self) -> float:
        return (self.model - self.seed).abs().max().item()


def walk_through() -> list[Step]:
    """Every quantity of the example, as (model value, seed value) pairs."""
    model = build_worked_example_model()
    ids = torch.tensor([[0, 1, 2, 3]])  # A B C D: the model reads "A B C" and is scored on "D" at C
    m = _model_quantities(model, ids)
    states = _unrolled_states(model, ids)
    s = {key: torch.tensor(value) for key, value in SEED_PRINTED.items()}
    seed = _seed_gradients(s)

    printed = "printed by the seed"
    in_words = "Step 4 (described in words), evaluated on the seed's numbers"
    return [
        Step("h_1 = tanh(W_xh x_1)", m["h"][0], s["h_1"], printed),
        Step("a_2 = W_xh x_2 + W_hh h_1", m["a_2"], s["a_2"], printed),
        Step("h_2 = tanh(a_2)", m["h"][1], s["h_2"], printed),
        Step("a_3 = W_xh x_3 + W_hh h_2", m["a_3"], s["a_3"], printed),
        Step("h_3 = tanh(a_3)", m["h"][2], s["h_3"], printed),
        Step("o_3 = W_hy h_3 + b_y (logits)", m["o_3"], s["o_3"], printed),
        Step("softmax(o_3)", m["softmax"], s["softmax(o_3)"], "printed by the seed (as δo_3 + y_true and P(D))"),
        Step("P(D) = softmax(o_3)[D]", m["softmax"][3], s["P(D)"], printed),
        Step("loss = -log P(D) (the model's own loss)", m["loss"], s["loss"], printed),
        Step("dL/do_3 = y_pred - y_true", m["dL/do_3"], s["dL/do_3"], printed),
        Step(
            "dL/dW_hy = δo_3 h_3ᵀ",
            m["grads"]["lm_head.weight"],
            torch.outer(s["dL/do_3"], s["h_3"]),
            "the seed's formula (Step 2) on its printed δo_3 and h_3",
        ),
        Step("dL/db_y = δo_3", m["grads"]["lm_head.bias"], s["dL/do_3"], "the seed's formula (Step 2)"),
        Step("dL/dh_3 = W_hyᵀ δo_3", states[2].grad[0], seed["dh_3"], "the seed's formula (Step 3) on its numbers"),
        Step("dL/dh_2 = W_hhᵀ [(1 - h_3²) ⊙ δh_3]", states[1].grad[0], seed["dh_2"], in_words),
        Step("dL/dh_1 = W_hhᵀ [(1 - h_2²) ⊙ δh_2]", states[0].grad[0], seed["dh_1"], in_words),
        Step("dL/dW_hh = Σ_t δa_t h_{t-1}ᵀ", m["grads"]["model.layers.0.weight_hh_l0"], seed["dW_hh"], in_words),
        Step("dL/dW_xh = Σ_t δa_t x_tᵀ", m["grads"]["model.layers.0.weight_ih_l0"], seed["dW_xh"], in_words),
    ]


def _model_quantities(model: RecurrentForCausalLM, ids: torch.Tensor) -> dict:
    """The forward pass and autograd's gradients of the model's own loss, which scores only "D" at C."""
    rnn = model.model.layers[0]
    labels = torch.tensor([[-100, -100, -100, 3]])
    out = model(ids, labels=labels, output_hidden_states=True)
    out.logits.retain_grad()
    out.loss.backward()
    h = out.hidden_states[-1][0].detach()
    o_3 = out.logits[0, 2]
    probabilities = o_3.detach().softmax(-1)
    # the pre-activations a_t are not a model output: recompute them from the layer's weights and h_{t-1}
    with torch.no_grad():
        a_2 = rnn.weight_ih_l0[:, 1] + rnn.weight_hh_l0 @ h[0]
        a_3 = rnn.weight_ih_l0[:, 2] + rnn.weight_hh_l0 @ h[1]
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)  # the unrolled pass accumulates into the same parameters
    return {
        "h": h,
        "a_2": a_2,
        "a_3": a_3,
        "o_3": o_3.detach(),
        "softmax": probabilities,
        "loss": out.loss.detach(),
        "dL/do_3": out.logits.grad[0, 2],
        "grads": grads,
    }


def _unrolled_states(model: RecurrentForCausalLM, ids: torch.Tensor) -> list[torch.Tensor]:
    """h_1, h_2, ... of the last layer, each holding its full BPTT gradient δh_t in ``.grad``."""
    # δh_t of BPTT: the fused kernel hides h_t's path through time, so unroll the same layer step by step
    embeds = model.get_input_embeddings()(ids).detach()
    logits, states = unroll_recurrent_lm(model, embeds)
    for state in states:
        state.retain_grad()
    torch.nn.functional.cross_entropy(logits[0, 2:3], ids[0, 3:4]).backward()
    return states


def _seed_gradients(s: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The gradients the seed only describes (Steps 3-4), from its formulas on its printed numbers."""
    w_hy, w_hh = torch.tensor(W_HY), torch.tensor(W_HH)
    dh3 = w_hy.T @ s["dL/do_3"]
    da3 = (1 - s["h_3"] ** 2) * dh3  # through tanh: tanh'(a) = 1 - tanh(a)^2
    dh2 = w_hh.T @ da3
    da2 = (1 - s["h_2"] ** 2) * dh2
    dh1 = w_hh.T @ da2
    da1 = (1 - s["h_1"] ** 2) * dh1
    one_hot = torch.eye(4)
    return {
        "dh_3": dh3,
        "dh_2": dh2,
        "dh_1": dh1,
        "dW_hh": torch.outer(da3, s["h_2"]) + torch.outer(da2, s["h_1"]),  # h_0 = 0 adds nothing
        "dW_xh": torch.outer(da3, one_hot[2]) + torch.outer(da2, one_hot[1]) + torch.outer(da1, one_hot[0]),
    }


def seed_slips() -> list[str]:
    """Where the seed's own printed numbers disagree with each other (h_t should be tanh(a_t))."""
    notes = []
    for t in (2, 3):
        a, h = torch.tensor(SEED_PRINTED[f"a_{t}"]), torch.tensor(SEED_PRINTED[f"h_{t}"])
        slip = (a.tanh() - h).abs()
        if slip.max() > 1e-4:
            unit = int(slip.argmax())
            notes.append(
                f"Note: the seed prints h_{t}[{unit}] = {h[unit]:.4f}, but tanh(a_{t}[{unit}]) = tanh({a[unit]:.5f}) = "
                f"{a[unit].tanh():.4f}; the slip carries into its later numbers, hence differences of a few 1e-4."
            )
    return notes


def _format(value: torch.Tensor) -> str:
    value = value.detach()
    if value.ndim == 0:
        return f"{value.item():.5f}"
    if value.ndim == 1:
        return "[" + ", ".join(f"{v + 0.0:.5f}" for v in value.tolist()) + "]"  # + 0.0 turns -0 into 0
    return "[" + ", ".join(_format(row) for row in value) + "]"


def render(steps: list[Step]) -> str:
    """The walkthrough as text: each quantity, the model's value, the seed's, and the difference."""
    lines = [
        "The seed's worked example (000, Part 1): predict 'D' after 'A B C' with a vanilla RNN,",
        "run through seqlab's RecurrentForCausalLM (cell_type='rnn', nonlinearity='tanh', hidden_size=2,",
        "embeddings = the 4x4 identity so x_t is one-hot, W_xh/W_hh in the RNN layer, W_hy in the LM head).",
        "",
    ]
    for step in steps:
        lines += [
            step.name,
            f"  model: {_format(step.model)}",
            f"  seed:  {_format(step.seed)}   ({step.source})",
            f"  max |difference|: {step.difference:.1e}",
        ]
    lines += ["", *seed_slips()]
    worst = max(steps, key=lambda step: step.difference)
    verdict = "all within" if worst.difference <= TOLERANCE else "NOT all within"
    lines += ["", f"{verdict} {TOLERANCE:g} of the seed (largest difference {worst.difference:.1e}, {worst.name})."]
    return "\n".join(lines)


def write_worked_example(steps: list[Step], text: str, output_dir: Path, command: str, seconds: float) -> None:
    """worked_example.json (every quantity, model and seed) and summary.md (the printout, with provenance)."""
    prov = provenance(torch.device("cpu"), command, seconds)
    payload = {
        "diagnostic": "worked_example",
        "description": "the seed's worked example (000, Part 1) computed by RecurrentForCausalLM and autograd",
        "tolerance": TOLERANCE,
        "steps": [
            {
                "name": step.name,
                "model": step.model.detach().tolist(),
                "seed": step.seed.tolist(),
                "seed_source": step.source,
                "max_abs_difference": step.difference,
            }
            for step in steps
        ],
        "provenance": prov,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "worked_example.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    summary = [
        "# The seed's worked example, computed by the model",
        "",
        "What was computed: the forward pass (h_1, h_2, h_3, logits, softmax, loss) and the first BPTT "
        "gradients of the seed's 'A B C -> D' vanilla RNN (000, Part 1), by seqlab's RecurrentForCausalLM "
        "holding the seed's weights and by autograd, next to the numbers the seed prints (or its formulas "
        "evaluated on them).",
        "",
        "```text",
        text,
        "```",
        "",
        provenance_markdown(prov),
    ]
    (output_dir / "summary.md").write_text("\n".join(summary), encoding="utf-8")
