"""Long-range memory: recall a key token seen k positions before the question.

The seeds say an RNN's memory of early tokens decays while attention compares any two tokens
directly. The task makes that measurable. A sequence is

    [p random fillers] KEY [k - 1 random fillers] QUERY

and at QUERY the model must output KEY (one of `num_keys` tokens; chance is 1 / num_keys). The answer
depends only on the token k positions back, and nothing between tells what it was. Every family gets
the same budget of non-embedding parameters, the same number of layers, the same training batches
(k drawn uniformly from the distances at each step, all rows of a batch share k), and stops early
once a validation set is solved at every k. Accuracy is then measured on fresh test sequences.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from .config import DiagnosticsConfig, LongRangeConfig
from .models import MODEL_PRESETS, build_model, count_parameters, matched_hidden_size
from .report import markdown_table, plural, provenance, provenance_markdown, pyplot, write_outputs

HOLDS = 0.9  # accuracy at which a model is said to hold a distance
_EVAL_CHUNK = 64


@dataclass(frozen=True)
class RecallTask:
    """Token ids: keys 0..K-1, fillers K..K+F-1, then the query token."""

    num_keys: int
    num_fillers: int
    max_prefix: int

    @property
    def query_token(self) -> int:
        return self.num_keys + self.num_fillers

    @property
    def vocab_size(self) -> int:
        return self.query_token + 1

    def max_length(self, distances: list[int]) -> int:
        return self.max_prefix + max(distances) + 1

    def batch(self, distance: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`size` sequences whose query is `distance` positions after the key; returns (ids, keys)."""
        prefix = int(torch.randint(0, self.max_prefix + 1, (1,), generator=generator))
        keys = torch.randint(0, self.num_keys, (size,), generator=generator)
        fillers = torch.randint(self.num_keys, self.query_token, (size, prefix + distance - 1), generator=generator)
        query = torch.full((size, 1), self.query_token, dtype=torch.long)
        ids = torch.cat([fillers[:, :prefix], keys[:, None], fillers[:, prefix:], query], dim=1)
        return ids, keys


def answer_logits(model, ids: torch.Tensor) -> torch.Tensor:
    """The model's prediction at the query (the last position)."""
    return model(ids, logits_to_keep=1, use_cache=False).logits[:, -1]


@torch.no_grad()
def accuracy_by_distance(model, task: RecallTask, distances: list[int], size: int, seed: int, device) -> list[float]:
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    accuracies = []
    for distance in distances:
        correct = 0
        for start in range(0, size, _EVAL_CHUNK):  # chunks, so that the prefix length varies too
            ids, keys = task.batch(distance, min(_EVAL_CHUNK, size - start), generator)
            correct += (answer_logits(model, ids.to(device)).argmax(dim=-1).cpu() == keys).sum().item()
        accuracies.append(round(correct / size, 4))
    return accuracies


def train_recall(
    name: str, hidden_size: int, learning_rate: float, task: RecallTask, config: LongRangeConfig, seed: int, device
) -> tuple[Any, dict[str, Any]]:
    """Train one model at one learning rate; returns (model, record of the run)."""
    model = build_model(name, task.vocab_size, hidden_size, config.shape, task.max_length(config.distances), seed).to(
        device
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed + 10)
    started = time.perf_counter()
    steps, losses, validation = 0, [], None
    while steps < config.max_steps:
        model.train()
        distance = config.distances[int(torch.randint(0, len(config.distances), (1,), generator=generator))]
        ids, keys = task.batch(distance, config.batch_size, generator)
        loss = F.cross_entropy(answer_logits(model, ids.to(device)).float(), keys.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        steps += 1
        if not math.isfinite(losses[-1]):  # exploding gradients: the weights are gone, stop here
            validation = accuracy_by_distance(model, task, config.distances, config.eval_size, seed + 20, device)
            break
        if steps % config.eval_every == 0 or steps == config.max_steps:
            validation = accuracy_by_distance(model, task, config.distances, config.eval_size, seed + 20, device)
            if min(validation) >= config.solved_accuracy:
                break
    window = losses[-min(50, len(losses)) :] if math.isfinite(losses[-1]) else losses[-1:]
    record = {
        "learning_rate": learning_rate,
        "steps": steps,
        "seconds": round(time.perf_counter() - started, 1),
        "last_training_loss": round(sum(window) / len(window), 4) if math.isfinite(losses[-1]) else None,
        "validation_accuracy": validation,
        "solved": min(validation) >= config.solved_accuracy,
        "diverged": not math.isfinite(losses[-1]),
    }
    return model, record


def run_long_range(
    config: DiagnosticsConfig, output_dir: str | Path, device: torch.device, command: str
) -> dict[str, Any]:
    """Train every family on the recall task and write long_range.json, long_range.png and summary.md."""
    started = time.perf_counter()
    recall = config.long_range
    task = RecallTask(recall.num_keys, recall.num_fillers, recall.max_prefix)
    max_length = task.max_length(recall.distances)
    results = {}
    for name in recall.models:
        hidden_size = matched_hidden_size(name, recall.target_parameters, task.vocab_size, recall.shape, max_length)
        runs, best_model, best_record = [], None, None
        for rate in recall.learning_rates.get(name, recall.default_learning_rates):
            model, record = train_recall(name, hidden_size, rate, task, recall, config.seed, device)
            runs.append(record)
            # the learning rate is chosen on validation accuracy, never on the test set
            key = (sum(record["validation_accuracy"]), -record["steps"])
            if best_record is None or key > (sum(best_record["validation_accuracy"]), -best_record["steps"]):
                best_model, best_record = model, record
        test = accuracy_by_distance(best_model, task, recall.distances, recall.test_size, config.seed + 30, device)
        results[name] = {
            "label": MODEL_PRESETS[name].label,
            "hidden_size": hidden_size,
            "parameters": count_parameters(best_model),
            "runs": runs,
            "chosen_learning_rate": best_record["learning_rate"],
            "test_accuracy": test,
            "longest_distance_held": longest_held(recall.distances, test),
        }
    payload = {
        "diagnostic": "long_range",
        "description": "accuracy of recalling the key token k positions before the query, against k",
        "distances": recall.distances,
        "chance_accuracy": 1.0 / recall.num_keys,
        "task": {
            "num_keys": recall.num_keys,
            "num_fillers": recall.num_fillers,
            "max_prefix": recall.max_prefix,
            "vocab_size": task.vocab_size,
        },
        "config": config.to_dict()["long_range"] | {"seed": config.seed},
        "models": results,
    }
    payload["provenance"] = provenance(device, command, time.perf_counter() - started)
    write_outputs(Path(output_dir), "long_range", payload, long_range_summary(payload), plot_long_range(payload))
    return payload


def longest_held(distances: list[int], accuracies: list[float]) -> int | None:
    """The largest k such that every distance up to it is recalled with accuracy >= HOLDS."""
    held = None
    for distance, accuracy in sorted(zip(distances, accuracies)):
        if accuracy < HOLDS:
            break
        held = distance
    return held


def long_range_findings(payload: dict[str, Any]) -> list[str]:
    chance = payload["chance_accuracy"]
    distances = payload["distances"]
    lines = []
    for entry in payload["models"].values():
        test = entry["test_accuracy"]
        held = entry["longest_distance_held"]
        farthest = max(distances)
        accuracy_far = test[distances.index(farthest)]
        chosen = next(run for run in entry["runs"] if run["learning_rate"] == entry["chosen_learning_rate"])
        if held is None and chosen["diverged"]:
            verdict = (
                f"training diverged after {chosen['steps']} steps (the loss became NaN: exploding gradients), "
                f"accuracy at k = {min(distances)} is {test[distances.index(min(distances))]:.2f} (chance {chance:.3f})"
            )
        elif held is None:
            first = test[distances.index(min(distances))]
            verdict = (
                f"did not learn the task even at k = {min(distances)} (accuracy {first:.2f}, chance {chance:.3f}): "
                "this is a failure to train in this budget, not only a memory limit"
            )
        elif held == farthest:
            verdict = f"holds every distance up to k = {farthest} (accuracy {accuracy_far:.2f} there)"
        else:
            beyond = sorted(distances)[sorted(distances).index(held) + 1]
            verdict = (
                f"holds k <= {held}; at k = {beyond} accuracy is {test[distances.index(beyond)]:.2f} and at "
                f"k = {farthest} it is {accuracy_far:.2f} (chance {chance:.3f})"
            )
        if chosen["solved"]:
            verdict += f"; its validation set was solved after {chosen['steps']} training steps"
        lines.append(
            f"**{entry['label']}** ({entry['parameters']['non_embedding']:,} non-embedding parameters): {verdict}."
        )
    return lines


def long_range_summary(payload: dict[str, Any]) -> str:
    config = payload["config"]
    distances = payload["distances"]
    rows = [
        [
            entry["label"],
            entry["hidden_size"],
            f"{entry['parameters']['non_embedding']:,}",
            f"{entry['parameters']['total']:,}",
            entry["chosen_learning_rate"],
        ]
        + [f"{a:.2f}" for a in entry["test_accuracy"]]
        for entry in payload["models"].values()
    ]
    runs = [
        [
            entry["label"],
            run["learning_rate"],
            run["steps"],
            run["seconds"],
            "NaN" if run["last_training_loss"] is None else run["last_training_loss"],
            "yes" if run["solved"] else ("no (diverged)" if run["diverged"] else "no"),
        ]
        for entry in payload["models"].values()
        for run in entry["runs"]
    ]
    text = [
        "# Long-range memory: recall the token k positions back",
        "",
        "What was measured: each family is trained on sequences `[p fillers] KEY [k-1 fillers] QUERY` "
        f"(p random in 0..{payload['task']['max_prefix']}, {payload['task']['num_keys']} keys, "
        f"{payload['task']['num_fillers']} filler tokens) to output KEY at QUERY, with k drawn uniformly "
        f"from {distances} at each step. Models are matched to about {config['target_parameters']:,} "
        f"non-embedding parameters with {plural(config['shape']['num_hidden_layers'], 'layer')} each; training is "
        f"AdamW, batch {config['batch_size']}, at most {config['max_steps']} steps, stopping once "
        f"validation accuracy reaches {config['solved_accuracy']} at every k; where several learning "
        "rates are listed the one with the best validation accuracy is kept. Reported: accuracy on "
        f"{config['test_size']} fresh test sequences per k. Chance is {payload['chance_accuracy']:.3f}.",
        "",
        "![long-range recall](long_range.png)",
        "",
        "## Findings",
        "",
        *[f"- {line}" for line in long_range_findings(payload)],
        "",
        f"A model holds a distance when its accuracy is at least {HOLDS} there and at every shorter distance.",
        "",
        "What this task does and does not test: the key comes from its own alphabet, so a model only has to "
        "notice it and keep it while ignoring the fillers. Holding k here shows that the state can carry one "
        "token across k steps once trained (and that training found that solution); it says nothing about "
        "tasks that need many tokens remembered at once, where a fixed-size state and attention differ more.",
        "",
        "## Test accuracy by distance k",
        "",
        markdown_table(
            ["model", "hidden size", "non-embedding params", "total params", "lr"] + [f"k={d}" for d in distances], rows
        ),
        "## Training runs",
        "",
        markdown_table(["model", "lr", "steps", "seconds", "final training loss", "validation solved"], runs),
        provenance_markdown(payload["provenance"]),
    ]
    return "\n".join(text)


def plot_long_range(payload: dict[str, Any]):
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(8, 5))
    markers = "osD^vx*"
    for index, entry in enumerate(payload["models"].values()):
        # distinct markers shrinking in size keep curves that coincide (all at 1.0) visible
        ax.plot(
            payload["distances"],
            entry["test_accuracy"],
            marker=markers[index % len(markers)],
            markersize=max(3, 11 - 2 * index),
            alpha=0.85,
            markerfacecolor="none" if index % 2 else None,
            label=f"{entry['label']} ({entry['parameters']['non_embedding'] / 1000:.0f}k params)",
        )
    ax.axhline(payload["chance_accuracy"], color="grey", linestyle="--", label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("distance k from the key to the query")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title("Recall of the token k positions back, matched parameter counts")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure
