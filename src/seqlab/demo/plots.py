"""Matplotlib figures for the "Inside the model" tab, rendered to RGB arrays (no display needed)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_MAX_TICKS = 40  # token labels beyond this are unreadable; the axes keep positions only


def _to_array(fig) -> np.ndarray:
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def gradients_figure(grads: dict) -> np.ndarray:
    """Gradient norm against distance back from the predicted token, each family scaled to its own maximum."""
    fig, ax = plt.subplots(figsize=(7.5, 3.8), dpi=100)
    for title, g in grads.items():
        norms = np.asarray(g["norms"], dtype=float)
        distance = np.arange(len(norms), 0, -1)  # the position just before the target is 1 step back
        ax.plot(distance, norms / max(norms.max(), 1e-30), marker="o", markersize=3, label=title)
    ax.set_yscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("steps back from the predicted (last) token")
    ax.set_ylabel("‖∂ loss / ∂ embedding‖ (÷ max)")
    target = next(iter(grads.values()))["target"] if grads else ""
    ax.set_title(f"How far back each model looks to predict {target!r}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _to_array(fig)


def _token_ticks(ax, tokens: list[str], axis: str) -> None:
    if len(tokens) > _MAX_TICKS:
        return
    labels = [t.replace("\n", "⏎") for t in tokens]
    if axis in ("x", "both"):
        ax.set_xticks(range(len(tokens)), labels, rotation=90, fontsize=7)
    if axis in ("y", "both"):
        ax.set_yticks(range(len(tokens)), labels, fontsize=7)


def attention_and_hidden_figure(attention: dict, hidden: dict) -> np.ndarray:
    """The decoder's last-layer attention map (mean over heads) beside the recurrent hidden-state norms."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), dpi=100)
    weights = np.asarray(attention["weights"][-1])
    shown = left.imshow(weights, cmap="viridis", vmin=0.0)
    _token_ticks(left, attention["tokens"], "both")
    left.set_xlabel("attended position (key)")
    left.set_ylabel("position (query)")
    left.set_title(f"{attention['title']}: attention, last layer")
    fig.colorbar(shown, ax=left, fraction=0.046)
    for layer, norms in enumerate(hidden["norms"], start=1):
        right.plot(norms, marker="o", markersize=3, label=f"layer {layer}")
    _token_ticks(right, hidden["tokens"], "x")
    right.set_ylabel("‖h_t‖")
    right.set_title(f"{hidden['title']}: hidden-state norm per position")
    right.grid(alpha=0.3)
    right.legend()
    fig.tight_layout()
    return _to_array(fig)
