"""Gradient flow through time: how much of the loss at the last position reaches position t.

The seeds say that in backpropagation through time (BPTT) the gradient of a vanilla RNN is multiplied
by one Jacobian ∂h_t/∂h_{t-1} per step and so vanishes (or explodes) with the distance T - t, that the
LSTM's and GRU's gates keep it alive, and that self-attention reaches any distance in one step. This
module measures, on seqlab's own models, the norms of

- ∂L_T/∂x_t: the gradient of the loss at the last position T with respect to the input embedding at
  position t (every family has one; for the decoder x_t is the token embedding before positions
  are added);
- ∂L_T/∂h_t: the gradient with respect to the hidden state of the last recurrent layer at time t,
  the δh_t of the seeds' BPTT. For the decoder, h_t is the residual stream entering the last block:
  the last block's own output at t < T never reaches L_T, because a Transformer carries no state
  along time.

L_T is the cross-entropy of the next-token prediction at the last position, so both gradients
vanish exactly for t > T and are measured at distances 0 .. T-1.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..models.recurrent import RecurrentForCausalLM
from .config import DiagnosticsConfig, GradientFlowConfig
from .models import MODEL_PRESETS, build_model, count_parameters
from .report import markdown_table, provenance, provenance_markdown, pyplot, scientific, write_outputs

VANISHED = 1e-2  # a ratio g(far)/g(1) below this is "orders of magnitude" of decay
PHASES = ("initialisation", "trained")
WHEN = {"initialisation": "at initialisation", "trained": "after training"}


# --- the text -----------------------------------------------------------------------------------


def load_char_corpus(source: str, max_texts: int, vocab_size: int):
    """Read a text (data key or file), train seqlab's char-level tokenizer on it, return (tokenizer, ids).

    Characters are the seeds' tokens ("predict the next letter"); documents are joined by a blank line.
    """
    from ..data.sources import iter_texts  # imports `datasets`: only when a text is needed
    from ..tokenizer import train_tokenizer

    documents = list(iter_texts(source, max_texts=max_texts))
    tokenizer = train_tokenizer(documents, vocab_size=vocab_size, kind="char")
    tokenizer.model_max_length = max(len(d) for d in documents) + 1  # whole documents, then windows
    separator = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
    encoded = tokenizer(documents, add_special_tokens=False)["input_ids"]
    ids: list[int] = []
    for document in encoded:
        ids.extend(document)
        ids.extend(separator)
    return tokenizer, torch.tensor(ids, dtype=torch.long)


def random_windows(ids: torch.Tensor, count: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """`count` windows of `length` consecutive tokens from `ids`, at random starts."""
    if ids.numel() < length + 1:
        raise ValueError(
            f"the text has {ids.numel()} tokens, fewer than one window of {length}: "
            "raise gradient_flow.max_texts or lower sequence_length"
        )
    starts = torch.randint(0, ids.numel() - length, (count,), generator=generator)
    return torch.stack([ids[s : s + length] for s in starts.tolist()])


# --- the measurement ----------------------------------------------------------------------------


def unroll_recurrent_lm(model: RecurrentForCausalLM, inputs_embeds: torch.Tensor):
    """Run the model's own recurrent layers one time step at a time; return (logits, [h_t of the last layer]).

    nn.RNN/LSTM/GRU fuse the recurrence into one kernel, so the gradient autograd gives for their
    output at t holds only the direct path to the head, not the path through h_{t+1}, ..., h_T.
    Feeding each step's h_t back as the next step's state makes h_t one tensor on both paths, and
    its gradient the full ∂L/∂h_t of BPTT. Dropout is skipped: call this on a model in eval mode.
    """
    if model.training:
        raise ValueError("unroll_recurrent_lm measures the deterministic model: call model.eval() first")
    x = inputs_embeds
    steps: list[torch.Tensor] = []
    for layer in model.model.layers:
        state = None
        steps = []
        for t in range(x.size(1)):
            out, new_state = layer(x[:, t : t + 1], state)
            h = out[:, 0]
            # the LSTM's cell state c_t still comes from the kernel; h_t is the tensor we own
            state = (h.unsqueeze(0), new_state[1]) if isinstance(new_state, tuple) else h.unsqueeze(0)
            steps.append(h)
        x = torch.stack(steps, dim=1)
    if model.projection is not None:
        x = model.projection(x)
    return model.lm_head(x), steps


def last_position_gradients(model: nn.Module, sequences: torch.Tensor) -> dict[str, torch.Tensor]:
    """Norms of ∂L_T/∂x_t and ∂L_T/∂h_t, shape (batch, T) indexed by distance T - t (0 = last position).

    `sequences` holds T + 1 tokens per row: T inputs and the token that L_T scores. The loss is summed
    over rows, so each row's gradient is that of its own L_T.
    """
    model.eval()
    inputs, targets = sequences[:, :-1], sequences[:, -1]
    embeds = model.get_input_embeddings()(inputs).detach().requires_grad_(True)
    if isinstance(model, RecurrentForCausalLM):
        logits, steps = unroll_recurrent_lm(model, embeds)
        with torch.no_grad():
            _check_unroll(logits, model(inputs_embeds=embeds).logits)
        for h in steps:
            h.retain_grad()
    else:
        out = model(inputs_embeds=embeds, output_hidden_states=True)
        logits, steps = out.logits, None
        stream = out.hidden_states[-2]  # the residual stream the last block reads
        stream.retain_grad()
    loss = F.cross_entropy(logits[:, -1].float(), targets, reduction="sum")
    loss.backward()
    if steps is not None:
        hidden_norms = torch.stack([h.grad.norm(dim=-1) for h in steps], dim=1)
    else:
        hidden_norms = stream.grad.norm(dim=-1)
    input_norms = embeds.grad.norm(dim=-1)
    model.zero_grad(set_to_none=True)
    return {"input": input_norms.flip(1).detach().cpu(), "hidden": hidden_norms.flip(1).detach().cpu()}


def _check_unroll(unrolled: torch.Tensor, fused: torch.Tensor) -> None:
    scale = fused.abs().max().item() + 1e-6
    difference = (unrolled - fused).abs().max().item()
    if difference > 1e-3 * scale + 1e-5:
        raise RuntimeError(
            f"the step-by-step unroll differs from RecurrentForCausalLM's forward by {difference:.2e}: "
            "the gradient-flow diagnostic no longer mirrors the model and must be updated"
        )


# --- training -----------------------------------------------------------------------------------


def train_language_model(
    model: nn.Module, ids: torch.Tensor, config: GradientFlowConfig, generator: torch.Generator, device
) -> dict[str, Any]:
    """A short next-token training run (AdamW, gradient clipping at 1) on random windows of the text."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0)
    losses = []
    started = time.perf_counter()
    for _ in range(config.train_steps):
        batch = random_windows(ids, config.batch_size, config.sequence_length, generator).to(device)
        loss = model(batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    window = max(1, min(20, len(losses) // 2))
    return {
        "steps": config.train_steps,
        "seconds": round(time.perf_counter() - started, 1),
        "first_loss": round(sum(losses[:window]) / window, 4) if losses else None,
        "last_loss": round(sum(losses[-window:]) / window, 4) if losses else None,
    }


@torch.no_grad()
def held_out_loss(model: nn.Module, sequences: torch.Tensor) -> float:
    model.eval()
    return round(model(sequences, labels=sequences).loss.item(), 4)


# --- the diagnostic -----------------------------------------------------------------------------


def run_gradient_flow(
    config: DiagnosticsConfig, output_dir: str | Path, device: torch.device, command: str
) -> dict[str, Any]:
    """Measure, plot and summarise; writes gradient_flow.json, gradient_flow.png and summary.md."""
    started = time.perf_counter()
    flow = config.gradient_flow
    tokenizer, ids = load_char_corpus(flow.text, flow.max_texts, flow.char_vocab_size)
    split = int(ids.numel() * 0.9)  # gradients are measured on text the training never saw
    train_ids, held_out_ids = ids[:split], ids[split:]
    measure_generator = torch.Generator().manual_seed(config.seed + 1)
    sequences = random_windows(held_out_ids, flow.num_sequences, flow.sequence_length + 1, measure_generator)
    sequences = sequences.to(device)

    results = {}
    for name in flow.models:
        model = build_model(
            name, len(tokenizer), flow.hidden_size, flow.shape, flow.sequence_length + 1, config.seed
        ).to(device)
        entry: dict[str, Any] = {
            "label": MODEL_PRESETS[name].label,
            "hidden_size": flow.hidden_size,
            "parameters": count_parameters(model),
            "initializer_range": model.config.initializer_range,  # std of the embeddings at initialisation
        }
        for phase in PHASES:
            if phase == "trained":
                generator = torch.Generator().manual_seed(config.seed + 2)
                entry["training"] = train_language_model(model, train_ids, flow, generator, device)
            norms = last_position_gradients(model, sequences)
            entry[phase] = {
                "held_out_loss": held_out_loss(model, sequences),
                "input_gradient_norm": _mean_over_sequences(norms["input"]),
                "hidden_gradient_norm": _mean_over_sequences(norms["hidden"]),
            }
        results[name] = entry

    payload = {
        "diagnostic": "gradient_flow",
        "description": "mean over held-out sequences of ||dL_T/dx_t|| and ||dL_T/dh_t|| against the distance T - t",
        "distance": list(range(flow.sequence_length)),
        "text": flow.text,
        "tokenizer": {"kind": "char", "vocab_size": len(tokenizer)},
        "text_tokens": {"train": int(train_ids.numel()), "held_out": int(held_out_ids.numel())},
        "config": config.to_dict()["gradient_flow"] | {"seed": config.seed},
        "models": results,
    }
    payload["key_numbers"] = key_numbers(payload)
    payload["provenance"] = provenance(device, command, time.perf_counter() - started)
    write_outputs(
        Path(output_dir), "gradient_flow", payload, gradient_flow_summary(payload), plot_gradient_flow(payload)
    )
    return payload


def _mean_over_sequences(norms: torch.Tensor) -> list[float]:
    return [float(v) for v in norms.double().mean(dim=0)]


def _distances(payload: dict[str, Any]) -> list[int]:
    length = len(payload["distance"])
    return [d for d in payload["config"]["report_distances"] if d < length]


def key_numbers(payload: dict[str, Any]) -> dict[str, Any]:
    """Per model and phase: norms at the report distances and the decay ratio g(far) / g(1)."""
    distances = _distances(payload)
    far = max(distances) if distances else None
    numbers: dict[str, Any] = {"far_distance": far}
    for name, entry in payload["models"].items():
        numbers[name] = {}
        for phase in PHASES:
            for kind in ("input", "hidden"):
                series = entry[phase][f"{kind}_gradient_norm"]
                values = {str(d): series[d] for d in distances}
                ratio = series[far] / series[1] if far is not None and series[1] > 0 else None
                numbers[name][f"{phase}_{kind}"] = {"at_distance": values, "ratio_far_to_1": ratio}
    return numbers


def _ratio(numbers: dict[str, Any], name: str, phase: str, kind: str = "input") -> float | None:
    return numbers.get(name, {}).get(f"{phase}_{kind}", {}).get("ratio_far_to_1")


def _verdict(ratio: float | None) -> str:
    if ratio is None:
        return "n/a"
    if ratio < VANISHED:
        return "vanished" if ratio > 0 else "vanished below float32's range"
    return "grew: exploding" if ratio > 10 else "kept its size"


def claim_findings(payload: dict[str, Any]) -> list[str]:
    """The seeds' claims, each checked against the measured ratios g(far)/g(1); Markdown bullet lines."""
    numbers = payload["key_numbers"]
    far = numbers["far_distance"]
    if far is None or far < 2:
        return ["- The sequences are too short for a distance-based verdict."]
    models = payload["models"]

    def ratio_text(name: str, phase: str, kind: str) -> str:
        ratio = _ratio(numbers, name, phase, kind)
        return f"{'n/a' if ratio is None else scientific(ratio)} ({_verdict(ratio)})"

    def both(name: str, phase: str) -> str:
        return f"{WHEN[phase]} x_t {ratio_text(name, phase, 'input')}, h_t {ratio_text(name, phase, 'hidden')}"

    lines = []
    vanilla = [name for name in ("rnn_tanh", "rnn_tanh_torch_init") if name in models]
    if vanilla:
        lines.append(f"- *Vanilla-RNN gradients vanish through BPTT.* Measured g({far})/g(1):")
        lines += [f"  - {models[n]['label']}: " + "; ".join(both(n, p) for p in PHASES) + "." for n in vanilla]
    gated = [name for name in ("lstm", "gru", "irnn") if name in models]
    if gated and "rnn_tanh" in models:
        lines.append(
            f"- *LSTM and GRU gates keep the gradient alive.* g({far})/g(1) of ||dL_T/dx_t||, against "
            "the tanh RNN with the same (seqlab) initialisation:"
        )
        for name in gated:
            parts = []
            for phase in PHASES:
                mine, plain = _ratio(numbers, name, phase), _ratio(numbers, "rnn_tanh", phase)
                if mine is None or plain is None:
                    continue
                pair = f"{scientific(mine)} vs {scientific(plain)}"
                if mine > 10:
                    parts.append(f"{WHEN[phase]} it grows with distance ({pair})")
                elif mine >= VANISHED and plain >= VANISHED:
                    parts.append(f"{WHEN[phase]} neither decays by orders of magnitude ({pair})")
                else:
                    parts.append(
                        f"{WHEN[phase]} it decays {'less' if mine > plain else 'more'} than the tanh RNN ({pair})"
                    )
            lines.append(f"  - {models[name]['label']}: " + "; ".join(parts) + ".")
    if "decoder" in models:
        lines.append(
            f"- *Attention reaches any distance in one step.* {models['decoder']['label']}: "
            + "; ".join(both("decoder", p) for p in PHASES)
            + ". (Distance 0 is larger because x_T also reaches the output through the residual path.)"
        )
    return lines


def initialisation_reading(models: dict[str, Any]) -> str:
    """Why the initialisation rows look as they do, from the update equations (not a measurement)."""
    recurrent = [e for name, e in models.items() if MODEL_PRESETS[name].family == "recurrent"]
    scale = f"N(0, {recurrent[0]['initializer_range']:g})" if recurrent else "their initial scale"
    return (
        "Reading the initialisation rows (from the update equations, not measured): in a tanh RNN "
        "dh_t/dh_{t-1} = diag(1 - h_t^2) W_hh. An orthogonal W_hh keeps the gradient's size only while the "
        f"units stay in tanh's linear range; seqlab's recurrent embeddings start as {scale}, and the state "
        "they accumulate through W_hh can leave that range, where 1 - h^2 < 1 shrinks the gradient at every "
        "step. PyTorch's uniform W_hh (spectral radius about 0.58) shrinks it further. With zero biases the "
        "GRU's update gate starts near z = 0.5, so one step passes on at most about 0.5 + 0.25 = 0.75 of the "
        "gradient; the LSTM's forget bias of 1 gives f = 0.73 on the cell path, plus the h path."
    )


def gradient_flow_summary(payload: dict[str, Any]) -> str:
    numbers = payload["key_numbers"]
    distances = _distances(payload)
    far = numbers["far_distance"]
    models = payload["models"]
    config = payload["config"]
    header = ["model", "phase", "held-out loss"] + [f"g({d})" for d in distances] + [f"g({far})/g(1)"]

    def rows(kind: str):
        for name, entry in models.items():
            for phase in PHASES:
                values = numbers[name][f"{phase}_{kind}"]
                ratio = values["ratio_far_to_1"]
                yield (
                    [entry["label"], WHEN[phase], entry[phase]["held_out_loss"]]
                    + [scientific(values["at_distance"][str(d)]) for d in distances]
                    + ["n/a" if ratio is None else scientific(ratio)]
                )

    params = markdown_table(
        ["model", "hidden size", "parameters (non-embedding)", "training loss first -> last", "training time"],
        [
            [
                e["label"],
                e["hidden_size"],
                f"{e['parameters']['total']:,} ({e['parameters']['non_embedding']:,})",
                f"{e['training']['first_loss']} -> {e['training']['last_loss']}",
                f"{e['training']['seconds']} s",
            ]
            for e in models.values()
        ],
    )
    text = [
        "# Gradient flow through time",
        "",
        "What was measured: the norm of the gradient of the loss at the last position, L_T (next-token "
        "cross-entropy), with respect to the input embedding x_t (g = ||dL_T/dx_t||) and to the hidden "
        "state h_t of the last recurrent layer (||dL_T/dh_t||, the seeds' BPTT delta; for the decoder the "
        "residual stream entering its last block), against the distance T - t. "
        f"Mean over {config['num_sequences']} held-out windows of {config['sequence_length']} characters "
        f"of `{payload['text']}` (char-level tokenizer, {payload['tokenizer']['vocab_size']} tokens), for "
        f"{config['shape']['num_hidden_layers']}-layer models of hidden size {config['hidden_size']}, "
        f"at initialisation (seqlab's, except the row marked PyTorch default init) and after "
        f"{config['train_steps']} AdamW steps (lr "
        f"{config['learning_rate']}, batch {config['batch_size']} x {config['sequence_length']}).",
        "",
        "![gradient flow](gradient_flow.png)",
        "",
        "## What the seeds claim, against the numbers",
        "",
        *claim_findings(payload),
        "",
        f"A ratio g({far})/g(1) below {VANISHED:g} is counted as vanished (orders of magnitude of decay), above 10 "
        "as exploding. A norm printed as 0 underflowed float32 (below about 1e-45).",
        "",
        "## ||dL_T/dx_t|| (input embeddings)",
        "",
        markdown_table(header, list(rows("input"))),
        "## ||dL_T/dh_t|| (last layer's hidden state; decoder: residual stream into the last block)",
        "",
        markdown_table(header, list(rows("hidden"))),
        "## Models",
        "",
        params,
        "Notes: seqlab initialises W_hh orthogonally (identity for the IRNN) and the LSTM forget-gate bias "
        "to 1; `rnn_tanh_torch_init` re-initialises the recurrent layers with PyTorch's default "
        "uniform(-1/sqrt(H), 1/sqrt(H)), the textbook setting. The short training is not a converged "
        "language model: it shows the direction training moves the Jacobians, not their final state.",
        "",
        initialisation_reading(models),
        "",
        provenance_markdown(payload["provenance"]),
    ]
    return "\n".join(text)


def plot_gradient_flow(payload: dict[str, Any]):
    plt = pyplot()
    figure, axes = plt.subplots(2, 2, figsize=(12, 8.5), sharex=True)
    distance = payload["distance"]
    for column, phase in enumerate(PHASES):
        for row, (kind, title) in enumerate((("input", "||dL_T/dx_t||"), ("hidden", "||dL_T/dh_t||"))):
            ax = axes[row][column]
            for entry in payload["models"].values():
                series = [
                    v if v > 0 and math.isfinite(v) else float("nan") for v in entry[phase][f"{kind}_gradient_norm"]
                ]
                ax.plot(distance, series, label=entry["label"], linewidth=1.4)
            ax.set_yscale("log")
            ax.set_title(f"{title} {WHEN[phase]}")
            ax.grid(True, which="major", alpha=0.3)
            if row == 1:
                ax.set_xlabel("distance T - t")
    axes[0][0].legend(fontsize=8)
    figure.suptitle("Gradient of the last position's loss against distance (log scale)")
    figure.tight_layout()
    return figure
