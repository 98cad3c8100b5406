"""Turn the transfer-gap runs (results.jsonl) into tables, plots and a report that states what was measured.

Protocol: within each arm (task, family, init, label budget) the learning rate with the best mean
*dev* score over seeds is kept (the dev set is carved off the training split and never in a label
budget), the same rule and the same grid size for every arm; the cell reports that learning rate's
per-seed *validation* scores (mean, std, 95% t-interval), which selection never saw. Runs made before
the dev carve existed carry no dev scores and are selected on validation, which the report then says.
The gap is pretrained minus scratch with a 95% interval paired by seed (a seed fixes the label subset of
every arm and family, so its difficulty cancels), or Welch where the arms ran other seeds; the optional arms (`ulmfit`: ULMFiT-style
fine-tuning, `probe`: a linear probe of the frozen body) get their gap over scratch too. Two further
numbers: the difference between two families' gaps (with its interval), and label efficiency: how many
labels the scratch arm needs to match the pretrained arm at the smallest budget (bootstrap interval).
"""

import csv
import json
import math
import os
from collections import defaultdict
from pathlib import Path

from .arms import ARMS, INITS
from .stats import difference_of_gaps, difference_of_means, label_efficiency, paired_difference, summarize

# column -> (arm, baseline)
GAPS = {"gap": ("pretrained", "scratch"), "ulmfit_gap": ("ulmfit", "scratch"), "probe_gap": ("probe", "scratch")}
LINE_STYLES = {name: arm.line_style for name, arm in ARMS.items()}
ARM_NAMES = {name: arm.title for name, arm in ARMS.items()}


def read_results(path: str | Path) -> list[dict]:
    """The records of results.jsonl; a torn last line (a run killed while appending it) is left out (the runner
    drops it from the file and redoes that run, see ``recover_torn_tail``). A damaged line before the last is
    an error naming it."""
    path = Path(path)
    if not path.is_file():
        return []
    return _parse_results(path, path.read_bytes())[0]


def _parse_results(path: Path, data: bytes) -> tuple[list[dict], int]:
    """``(records, length of the valid prefix in bytes)``; only the last line may be torn."""
    records, valid_end, position = [], 0, 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines, start=1):
        end = position + len(line) + (1 if number < len(lines) else 0)
        if line.strip():
            try:
                record = json.loads(line.decode("utf-8"))
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
            except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                if any(rest.strip() for rest in lines[number:]):
                    from ..errors import SeqlabUsageError

                    raise SeqlabUsageError(
                        f"{path} line {number} is not a valid result ({error}); delete that line and rerun: its run "
                        "is then redone"
                    ) from None
                return records, valid_end
            records.append(record)
        valid_end = end
        position = end
    return records, valid_end


def recover_torn_tail(path: str | Path) -> int:
    """Cut a torn last line off results.jsonl (so the next append starts a line of its own); the bytes dropped."""
    path = Path(path)
    if not path.is_file():
        return 0
    data = path.read_bytes()
    _, valid_end = _parse_results(path, data)
    if valid_end < len(data) and data[valid_end:].strip():
        os.truncate(path, valid_end)
        return len(data) - valid_end
    return 0


def _score(record: dict, metric: str, split: str = "metrics") -> float:
    return float(record[split][metric])


def _selection_split(runs: list[dict], metric: str) -> str:
    """``dev_metrics`` when every run of the arm has a dev score, else (older runs) ``metrics``."""
    return "dev_metrics" if all(metric in (r.get("dev_metrics") or {}) for r in runs) else "metrics"


def select_cells(records: list[dict], metric: str = "accuracy") -> dict:
    """{(task, family, init, n): {"learning_rate", "scores", "seeds", "selected_on", "at_edge"}}: per arm the
    learning rate with the best mean dev score over seeds, and its validation scores."""
    by_arm = defaultdict(lambda: defaultdict(list))
    for r in records:
        arm = (r["task"], r["family"], r["init"], int(r["num_train_examples"]))
        by_arm[arm][r["learning_rate"]].append(r)
    cells = {}
    for arm, by_lr in by_arm.items():
        split = _selection_split([r for runs in by_lr.values() for r in runs], metric)
        lr, runs = max(by_lr.items(), key=lambda item: sum(_score(r, metric, split) for r in item[1]) / len(item[1]))
        runs = sorted(runs, key=lambda r: r["seed"])
        grid = sorted(by_lr)
        cells[arm] = {
            "learning_rate": lr,
            "scores": [_score(r, metric) for r in runs],
            "seeds": [r["seed"] for r in runs],
            "selected_on": "dev" if split == "dev_metrics" else "validation",
            "at_edge": len(grid) > 1 and lr in (grid[0], grid[-1]),
        }
    return cells


def _gap(arm: dict, baseline: dict) -> tuple[dict, bool]:
    """The gap of two cells, paired by seed when both ran the same seeds (the same label subsets), else Welch."""
    if arm["seeds"] == baseline["seeds"] and len(arm["seeds"]) > 1:
        return paired_difference(arm["scores"], baseline["scores"]), True
    return difference_of_means(arm["scores"], baseline["scores"]), False


def _paired_gap_difference(c1: tuple[dict, dict], c2: tuple[dict, dict]) -> dict | None:
    """gap(first) - gap(second) paired by seed, when all four cells ran the same seeds."""
    cells = [*c1, *c2]
    seeds = cells[0]["seeds"]
    if len(seeds) < 2 or any(c["seeds"] != seeds for c in cells):
        return None
    per_seed = [p1 - s1 for p1, s1 in zip(c1[0]["scores"], c1[1]["scores"])]
    other = [p2 - s2 for p2, s2 in zip(c2[0]["scores"], c2[1]["scores"])]
    d = paired_difference(per_seed, other)
    return {"difference": d["gap"], "ci95": d["ci95"], "paired": True}


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
                    f"{init}_lr_at_edge": cell["at_edge"],
                    f"{init}_selected_on": cell["selected_on"],
                }
            )
        for column, (arm, baseline) in GAPS.items():
            pair = [cells.get((task, family, init, n)) for init in (arm, baseline)]
            if all(pair):
                gap, paired = _gap(pair[0], pair[1])
                row.update({column: gap["gap"], f"{column}_ci95": gap["ci95"], f"{column}_paired": paired})
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


def _optional_arms(rows: list[dict]) -> list[str]:
    """The optional arms that ran: they get columns only then."""
    return [init for init in INITS[2:] if any(f"{init}_mean" in r for r in rows)]


def markdown_table(rows: list[dict]) -> str:
    optional = _optional_arms(rows)
    header = "| task | family | N labels | pretrained | scratch | gap (pre − scratch) |"
    for init in optional:
        header += f" {ARM_NAMES[init]} | gap ({ARM_NAMES[init]} − scratch) |"
    lines = [header, "|---" * header.count(" | ") + "|---|"]
    edges = []
    for r in rows:
        cells = {init: _fmt(r.get(f"{init}_mean"), r.get(f"{init}_std"), r.get(f"{init}_ci95")) for init in INITS}
        for init in INITS:
            if r.get(f"{init}_lr_at_edge"):
                cells[init] += " †"
                edges.append(init)
        line = (
            f"| {r['task']} | {r['family']} | {r['num_train_examples']} | {cells['pretrained']} | {cells['scratch']} | "
        )
        line += f"{_fmt_gap(r, 'gap')} |"
        for init in optional:
            line += f" {cells[init]} | {_fmt_gap(r, [c for c, (arm, _) in GAPS.items() if arm == init][0])} |"
        lines.append(line)
    lines.append("")
    paired = any(r.get("gap_paired") for r in rows)
    lines.append(
        "Cells: validation accuracy, mean ± std over seeds [95% t-interval half-width]; gap: 95% interval, "
        + (
            "paired by seed (a seed fixes the label subset of every arm) where both arms ran the same seeds, "
            "else Welch."
            if paired
            else "Welch."
        )
    )
    if edges:
        lines.append("†: the selected learning rate lies at the edge of the arm's grid (the optimum may lie beyond).")
    return "\n".join(lines)


def gap_differences(rows: list[dict], records: list[dict], metric: str = "accuracy") -> list[dict]:
    """Per task and budget, every pair of families: the difference of their transfer gaps with its interval."""
    cells = select_cells(records, metric)
    out = []
    for r1 in rows:
        for r2 in rows:
            if (r1["task"], r1["num_train_examples"]) != (r2["task"], r2["num_train_examples"]):
                continue
            if r1["family"] >= r2["family"] or "gap" not in r1 or "gap" not in r2:
                continue
            key = lambda r, init: cells[(r["task"], r["family"], init, r["num_train_examples"])]  # noqa: E731
            first, second = (key(r1, "pretrained"), key(r1, "scratch")), (key(r2, "pretrained"), key(r2, "scratch"))
            diff = _paired_gap_difference(first, second) or {
                **difference_of_gaps(*(c["scores"] for c in (*first, *second))),
                "paired": False,
            }
            out.append(
                {
                    "task": r1["task"],
                    "num_train_examples": r1["num_train_examples"],
                    "first": r1["family"],
                    "second": r2["family"],
                    **diff,
                }
            )
    return sorted(out, key=lambda d: (d["task"], d["num_train_examples"], d["first"], d["second"]))


def label_efficiency_rows(records: list[dict], metric: str = "accuracy") -> list[dict]:
    """Per task and family: labels the scratch arm needs to match the pretrained arm at the smallest budget."""
    cells = select_cells(records, metric)
    out = []
    for task, family in sorted({(t, f) for t, f, _, _ in cells}):
        pre = {n: c for (t, f, i, n), c in cells.items() if (t, f, i) == (task, family, "pretrained")}
        scratch = {n: c["scores"] for (t, f, i, n), c in cells.items() if (t, f, i) == (task, family, "scratch")}
        if not pre or len(scratch) < 2:
            continue
        smallest = min(pre)
        efficiency = label_efficiency(pre[smallest]["scores"], scratch)
        out.append(
            {
                "task": task,
                "family": family,
                "pretrained_budget": smallest,
                "pretrained_mean": sum(pre[smallest]["scores"]) / len(pre[smallest]["scores"]),
                **efficiency,
            }
        )
    return out


def _fmt_labels(value: float, max_budget: float, min_budget: float = 0.0) -> str:
    """'> max' when never reached, '≤ min' when reached already at the smallest measured budget."""
    if math.isinf(value):
        return f"> {max_budget:.0f}"
    return f"≤ {min_budget:.0f}" if value <= min_budget else f"{value:.0f}"


def label_efficiency_table(rows: list[dict]) -> str:
    lines = [
        "| task | family | pretrained at N | its accuracy | labels scratch needs to match it [95% bootstrap] "
        "| label multiple |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        bounds = (r["max_budget"], r["min_budget"])
        needed = _fmt_labels(r["labels"], *bounds)
        interval = f"[{_fmt_labels(r['low'], *bounds)}, {_fmt_labels(r['high'], *bounds)}]"
        multiple = (
            f"> {r['max_budget'] / r['pretrained_budget']:.1f}x"
            if math.isinf(r["labels"])
            else "≤ 1x"
            if r["labels"] <= r["min_budget"]
            else f"{r['labels'] / r['pretrained_budget']:.1f}x"
        )
        lines.append(
            f"| {r['task']} | {r['family']} | {r['pretrained_budget']} | {r['pretrained_mean']:.3f} | "
            f"{needed} {interval} | {multiple} |"
        )
    lines += [
        "",
        "Scratch accuracy is interpolated linearly in log(labels) between measured budgets; '> M' means the "
        "scratch arm did not reach the target within the largest budget M. Interval: 2.5% and 97.5% order "
        "statistics of 2000 bootstrap resamples of the seeds of every cell.",
    ]
    return "\n".join(lines)


def gap_difference_table(rows: list[dict]) -> str:
    lines = ["| task | N labels | families | gap difference [95%] |", "|---|---|---|---|"]
    for r in rows:
        ci = "" if math.isnan(r["ci95"]) else f" [±{r['ci95']:.3f}]"
        lines.append(
            f"| {r['task']} | {r['num_train_examples']} | gap({r['first']}) − gap({r['second']}) | "
            f"{r['difference']:+.3f}{ci} |"
        )
    lines += [
        "",
        "Interval: paired by seed (the per-seed gaps of the two families on the same label subsets) where "
        "all four cells ran the same seeds, else Welch-Satterthwaite over the four arms.",
    ]
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
                _errorbar_line(
                    ax,
                    fam,
                    f"{init}_mean",
                    f"{init}_ci95",
                    linestyle=style,
                    color=colors[family],
                    label=f"{family} {init}",
                )
        title = f"Transfer gap on {task}: pretrained (solid) vs scratch (dashed)"
        if _optional_arms(task_rows):
            title = f"Transfer gap on {task}: " + ", ".join(
                f"{ARM_NAMES[i]} ({ {'-': 'solid', '--': 'dashed', ':': 'dotted', '-.': 'dash-dot'}[LINE_STYLES[i]] })"
                for i in INITS
                if i == "pretrained" or i == "scratch" or i in _optional_arms(task_rows)
            )
        written.append(_save(fig, ax, "validation accuracy", title, output_dir / f"accuracy_vs_labels{suffix}.png"))

        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for family in families:
            fam = [r for r in task_rows if r["family"] == family]
            for column, (arm, _) in GAPS.items():
                _errorbar_line(
                    ax,
                    fam,
                    column,
                    f"{column}_ci95",
                    linestyle=LINE_STYLES[arm],
                    color=colors[family],
                    label=family if arm == "pretrained" else f"{family} {ARM_NAMES[arm]}",
                )
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
            what = "pretraining" if arm == "pretrained" else f"pretraining with {ARM_NAMES[arm]} fine-tuning"
            where = f"{r['family']} on {r['task']} with {r['num_train_examples']} labels"
            if arm != "pretrained":
                where += f" ({ARM_NAMES[arm]} arm)"
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


def headline_findings(differences: list[dict], efficiency: list[dict]) -> list[str]:
    """Sentences for the difference between families' gaps and for label efficiency."""
    out = []
    smallest = {}
    for d in differences:
        smallest[d["task"]] = min(smallest.get(d["task"], d["num_train_examples"]), d["num_train_examples"])
    for d in (d for d in differences if d["num_train_examples"] == smallest[d["task"]]):  # the headline budget
        where = f"{d['task']} with {d['num_train_examples']} labels"
        if math.isnan(d["ci95"]):
            verdict = "no interval (a single seed per arm)"
        elif abs(d["difference"]) > d["ci95"]:
            larger = d["first"] if d["difference"] > 0 else d["second"]
            verdict = f"{larger} gains more from pretraining (95% interval ±{d['ci95']:.3f} excludes 0)"
        else:
            verdict = f"the two gaps are not distinguishable (95% interval ±{d['ci95']:.3f} includes 0)"
        out.append(f"- gap({d['first']}) − gap({d['second']}) on {where}: {d['difference']:+.3f}; {verdict}.")
    for e in efficiency:
        target = f"the pretrained {e['family']}'s {e['pretrained_mean']:.3f} at {e['pretrained_budget']} labels"
        if math.isinf(e["labels"]):
            out.append(
                f"- {e['family']} on {e['task']}: scratch does not reach {target} within "
                f"{e['max_budget']:.0f} labels (more than {e['max_budget'] / e['pretrained_budget']:.1f}x)."
            )
        elif e["labels"] <= e["min_budget"]:
            out.append(
                f"- {e['family']} on {e['task']}: scratch matches {target} already at {e['min_budget']:.0f} labels "
                "(no label saving measured)."
            )
        else:
            bounds = (e["max_budget"], e["min_budget"])
            out.append(
                f"- {e['family']} on {e['task']}: scratch needs about {e['labels']:.0f} labels to match {target} "
                f"({e['labels'] / e['pretrained_budget']:.1f}x; 95% bootstrap interval "
                f"{_fmt_labels(e['low'], *bounds)} to {_fmt_labels(e['high'], *bounds)})."
            )
    return out


def _protocol(records: list[dict], cells: dict) -> str:
    on_dev = all(c["selected_on"] == "dev" for c in cells.values())
    text = (
        f"{len(records)} fine-tuning runs. Per arm (task, family, init, N) the learning rate with the best mean "
        "score over seeds is kept, from a grid of the same size for every arm; the label subset for a given "
        "seed is identical across arms. "
    )
    if on_dev:
        text += (
            "Selection uses a dev set carved off the task's training split (stratified, fixed, never part of a "
            "label budget); every number reported below is on the validation split, which selection never saw."
        )
    else:
        text += (
            "Some arms hold runs without dev scores (made before the dev carve): those were selected on the "
            "validation split they are reported on, so their numbers are optimistic."
        )
    return text


def write_report(output_dir: str | Path, metadata: dict | None = None, metric: str = "accuracy") -> dict:
    """Write summary.md, summary.csv, the plots and report.md from output_dir/results.jsonl."""
    output_dir = Path(output_dir)
    records = read_results(output_dir / "results.jsonl")
    if not records:
        raise ValueError(f"no finished runs in {output_dir / 'results.jsonl'}: nothing to report")
    rows = summary_rows(records, metric)
    table = markdown_table(rows)
    differences = gap_differences(rows, records, metric)
    efficiency = label_efficiency_rows(records, metric)
    extra = ([f"\n## Label efficiency\n\n{label_efficiency_table(efficiency)}"] if efficiency else []) + (
        [f"\n## Difference between the families' gaps\n\n{gap_difference_table(differences)}"] if differences else []
    )
    (output_dir / "summary.md").write_text("\n".join([table, *extra]) + "\n", encoding="utf-8")
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
        _protocol(records, select_cells(records, metric)),
        "",
        "## Results",
        "",
        table,
        "",
    ]
    if efficiency:
        lines += ["## Label efficiency", "", label_efficiency_table(efficiency), ""]
    if differences:
        lines += ["## Difference between the families' gaps", "", gap_difference_table(differences), ""]
    lines += [
        "## Findings (generated from the numbers above)",
        "",
        *findings(rows),
        *headline_findings(differences, efficiency),
        "",
        "## Plots",
        "",
        *[f"![{p.stem}]({p.name})" for p in plots],
        "",
    ]
    (output_dir / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return {
        "rows": rows,
        "plots": [str(p) for p in plots],
        "gap_differences": differences,
        "label_efficiency": efficiency,
    }
