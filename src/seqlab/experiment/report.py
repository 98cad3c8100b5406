"""Turn the transfer-gap runs (results.jsonl) into tables, plots and a report that states what was measured.

Protocol: within each arm (task, family, init, label budget) the learning rate with the best mean
validation score over seeds is kept, the same rule and the same grid size for every arm; the cell
reports that learning rate's per-seed scores (mean, std, 95% t-interval). The gap is pretrained minus
scratch with a Welch 95% interval; with the optional `ulmfit` arm (the pretrained model fine-tuned
ULMFiT-style) also ULMFiT minus scratch.
"""

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

from .stats import difference_of_means, summarize

INITS = ("pretrained", "scratch", "ulmfit")
GAPS = {"gap": ("pretrained", "scratch"), "ulmfit_gap": ("ulmfit", "scratch")}  # column -> (arm, baseline)
LINE_STYLES = {"pretrained": "-", "scratch": "--", "ulmfit": ":"}


def read_results(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _score(record: dict, metric: str) -> float:
    return float(record["metrics"][metric])


def select_cells(records: list[dict], metric: str = "accuracy") -> dict:
    """{(task, family, init, n): {"learning_rate", "scores", "seeds"}} with the best learning rate per arm."""
    by_arm = defaultdict(lambda: defaultdict(list))
    for r in records:
        arm = (r["task"], r["family"], r["init"], int(r["num_train_examples"]))
        by_arm[arm][r["learning_rate"]].append(r)
    cells = {}
    for arm, by_lr in by_arm.items():
        lr, runs = max(by_lr.items(), key=lambda item: sum(_score(r, metric) for r in item[1]) / len(item[1]))
        runs = sorted(runs, key=lambda r: r["seed"])
        cells[arm] = {
            "learning_rate": lr,
            "scores": [_score(r, metric) for r in runs],
            "seeds": [r["seed"] for r in runs],
        }
    return cells


def summary_rows(records: list[dict], metric: str = "accuracy") -> list[dict]:
    cells = select_cells(records, metric)
    rows = []
    for task, family, n in sorted({(t, f, n) for t, f, _, n in cells}, key=lambda k: (k[0], k[1], k[2])):
        row = {"task": task, "family": family, "num_train_examples": n, "metric": metric}
        for init in INITS:
            cell = cells.get((task, family, init, n))
            if cell is None:
                continue
            stats = summarize(cell["scores"])
            row.update(
                {
                    f"{init}_mean": stats["mean"],
                    f"{init}_std": stats["std"],
                    f"{init}_ci95": stats["ci95"],
                    f"{init}_seeds": stats["n"],
                    f"{init}_lr": cell["learning_rate"],
                }
            )
        for column, (arm, baseline) in GAPS.items():
            pair = [cells.get((task, family, init, n)) for init in (arm, baseline)]
            if all(pair):
                gap = difference_of_means(pair[0]["scores"], pair[1]["scores"])
                row.update({column: gap["gap"], f"{column}_ci95": gap["ci95"]})
        rows.append(row)
    return rows


def _fmt(mean, std=None, ci=None) -> str:
    if mean is None:
        return "–"
    text = f"{mean:.3f}"
    if std is not None and not math.isnan(std):
        text += f" ± {std:.3f}"
    if ci is not None and not math.isnan(ci):
        text += f" [±{ci:.3f}]"
    return text


def _fmt_gap(row: dict, column: str) -> str:
    if column not in row:
        return "–"
    ci = row[f"{column}_ci95"]
    return f"{row[column]:+.3f}" + ("" if math.isnan(ci) else f" [±{ci:.3f}]")


def markdown_table(rows: list[dict]) -> str:
    with_ulmfit = any("ulmfit_mean" in r for r in rows)  # the optional arm gets columns only when it ran
    header = "| task | family | N labels | pretrained | scratch | gap (pre − scratch) |"
    if with_ulmfit:
        header += " ULMFiT | gap (ULMFiT − scratch) |"
    lines = [header, "|---" * header.count(" | ") + "|---|"]
    for r in rows:
        cells = [_fmt(r.get(f"{init}_mean"), r.get(f"{init}_std"), r.get(f"{init}_ci95")) for init in INITS]
        line = f"| {r['task']} | {r['family']} | {r['num_train_examples']} | {cells[0]} | {cells[1]} | "
        line += f"{_fmt_gap(r, 'gap')} |"
        if with_ulmfit:
            line += f" {cells[2]} | {_fmt_gap(r, 'ulmfit_gap')} |"
        lines.append(line)
    lines.append("")
    lines.append("Cells: mean ± std over seeds [95% t-interval half-width]; gap: Welch 95% interval.")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    fields = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("task", "family", "num_train_examples"), k))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _errorbar_line(ax, rows: list[dict], value: str, ci: str, **style) -> None:
    """One line over the label budgets of the rows that have ``value``, with its 95% interval as bars."""
    pts = sorted((r for r in rows if value in r), key=lambda r: r["num_train_examples"])
    if pts:
        ax.errorbar(
            [r["num_train_examples"] for r in pts],
            [r[value] for r in pts],
            yerr=[0 if math.isnan(r[ci]) else r[ci] for r in pts],
            marker="o",
            capsize=3,
            **style,
        )


def _save(fig, ax, ylabel: str, title: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    ax.set_xscale("log")
    ax.set_xlabel("labelled training examples (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot(rows: list[dict], output_dir: Path) -> list[Path]:
    """accuracy_vs_labels.png (log x, one line per family and init) and gap.png (gap per family)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for task in sorted({r["task"] for r in rows}):
        task_rows = [r for r in rows if r["task"] == task]
        families = sorted({r["family"] for r in task_rows})
        colors = {f: plt.get_cmap("tab10")(i) for i, f in enumerate(families)}
        suffix = "" if len({r["task"] for r in rows}) == 1 else f"_{task}"

        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for family in families:
            fam = [r for r in task_rows if r["family"] == family]
            for init, style in LINE_STYLES.items():
                _errorbar_line(ax, fam, f"{init}_mean", f"{init}_ci95", linestyle=style, color=colors[family],
                               label=f"{family} {init}")
        title = (f"Transfer gap on {task}: pretrained (solid), scratch (dashed), ULMFiT (dotted)"
                 if any("ulmfit_mean" in r for r in task_rows) else
                 f"Transfer gap on {task}: pretrained (solid) vs scratch (dashed)")
        written.append(_save(fig, ax, "validation accuracy", title, output_dir / f"accuracy_vs_labels{suffix}.png"))

        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for family in families:
            fam = [r for r in task_rows if r["family"] == family]
            for column, (arm, _) in GAPS.items():
                _errorbar_line(ax, fam, column, f"{column}_ci95", linestyle=LINE_STYLES[arm], color=colors[family],
                               label=family if arm == "pretrained" else f"{family} ULMFiT")
        ax.axhline(0.0, color="black", linewidth=0.8)
        title = f"Transfer gap per family on {task} (95% intervals)"
        written.append(_save(fig, ax, "accuracy gap (arm − scratch)", title, output_dir / f"gap{suffix}.png"))
    return written


def findings(rows: list[dict]) -> list[str]:
    """Sentences that state the measured gaps, including where they are not distinguishable from zero."""
    out = []
    for r in rows:
        for column, (arm, baseline) in GAPS.items():
            if column not in r:
                continue
            ci, gap = r[f"{column}_ci95"], r[column]
            what = "pretraining" if arm == "pretrained" else "pretraining with ULMFiT fine-tuning"
            where = f"{r['family']} on {r['task']} with {r['num_train_examples']} labels"
            if arm != "pretrained":
                where += " (ULMFiT arm)"
            numbers = f"{r[f'{arm}_mean']:.3f} vs {r[f'{baseline}_mean']:.3f}, gap {gap:+.3f}"
            if math.isnan(ci):
                verdict = "a single seed per arm: no interval, no claim"
            elif gap - ci > 0:
                verdict = f"{what} helps (95% interval ±{ci:.3f} excludes 0)"
            elif gap + ci < 0:
                verdict = f"{what} hurts (95% interval ±{ci:.3f} excludes 0)"
            else:
                verdict = f"no difference distinguishable from seed noise (95% interval ±{ci:.3f} includes 0)"
            out.append(f"- {where}: {numbers}; {verdict}.")
    return out


def write_report(output_dir: str | Path, metadata: dict | None = None, metric: str = "accuracy") -> dict:
    """Write summary.md, summary.csv, the plots and report.md from output_dir/results.jsonl."""
    output_dir = Path(output_dir)
    records = read_results(output_dir / "results.jsonl")
    if not records:
        raise ValueError(f"no finished runs in {output_dir / 'results.jsonl'}: nothing to report")
    rows = summary_rows(records, metric)
    table = markdown_table(rows)
    (output_dir / "summary.md").write_text(table + "\n", encoding="utf-8")
    write_csv(rows, output_dir / "summary.csv")
    plots = plot(rows, output_dir)

    metadata = metadata or {}
    lines = ["# Transfer gap: pretrained vs from scratch", ""]
    if metadata:
        lines += ["## Setup", ""]
        lines += [f"- **{k}**: {v}" for k, v in metadata.items()]
        lines.append("")
    lines += [
        "## Protocol",
        "",
        f"{len(records)} fine-tuning runs. Per arm (task, family, init, N) the learning rate with the best mean "
        "validation score over seeds is kept (same grid for every arm); the label subset for a given seed is "
        "identical across arms. SST-2 and IMDB have no public test labels here, so selection and reporting "
        "both use validation: absolute numbers are optimistic by the same amount in every arm, the gaps are "
        "comparable.",
        "",
        "## Results",
        "",
        table,
        "",
        "## Findings (generated from the numbers above)",
        "",
        *findings(rows),
        "",
        "## Plots",
        "",
        *[f"![{p.stem}]({p.name})" for p in plots],
        "",
    ]
    (output_dir / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return {"rows": rows, "plots": [str(p) for p in plots]}
