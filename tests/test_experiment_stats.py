"""Statistics and reporting of the transfer-gap experiment on hand-checked numbers."""

import json
import math

import pytest

from seqlab.experiment.report import select_cells, summary_rows, write_report
from seqlab.experiment.stats import difference_of_means, summarize, t_quantile_95


def test_summarize_matches_hand_computation():
    stats = summarize([0.70, 0.74, 0.78])
    assert stats["mean"] == pytest.approx(0.74)
    assert stats["std"] == pytest.approx(0.04)
    assert stats["ci95"] == pytest.approx(4.303 * 0.04 / math.sqrt(3))
    assert math.isnan(summarize([0.5])["ci95"])
    with pytest.raises(ValueError):
        summarize([])


def test_t_quantiles():
    assert t_quantile_95(1) == pytest.approx(12.706)
    assert t_quantile_95(30) == pytest.approx(2.042)
    assert t_quantile_95(120) == pytest.approx(1.980, abs=0.005)


def test_welch_gap_interval():
    gap = difference_of_means([0.8, 0.82, 0.84], [0.7, 0.7, 0.7])
    assert gap["gap"] == pytest.approx(0.12)
    # scratch has zero variance: the interval is the pretrained arm's own t-interval
    assert gap["ci95"] == pytest.approx(4.303 * 0.02 / math.sqrt(3), rel=1e-3)


def _record(family, init, n, seed, lr, acc):
    return {
        "task": "sst2_sentence",
        "family": family,
        "init": init,
        "num_train_examples": n,
        "seed": seed,
        "learning_rate": lr,
        "metrics": {"accuracy": acc, "f1": acc},
    }


def test_best_learning_rate_is_chosen_per_arm_on_mean_score(tmp_path):
    records = [
        _record("lstm", "scratch", 100, 0, 1e-3, 0.60),
        _record("lstm", "scratch", 100, 1, 1e-3, 0.64),
        _record("lstm", "scratch", 100, 0, 3e-3, 0.70),  # best single run, worse mean
        _record("lstm", "scratch", 100, 1, 3e-3, 0.50),
        _record("lstm", "pretrained", 100, 0, 1e-3, 0.75),
        _record("lstm", "pretrained", 100, 1, 1e-3, 0.77),
    ]
    cells = select_cells(records)
    assert cells[("sst2_sentence", "lstm", "scratch", 100)]["learning_rate"] == 1e-3
    (row,) = summary_rows(records)
    assert row["gap"] == pytest.approx(0.76 - 0.62)

    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    out = write_report(tmp_path, metadata={"command": "test"})
    assert {p.split("/")[-1] for p in out["plots"]} == {"accuracy_vs_labels.png", "gap.png"}
    report = (tmp_path / "report.md").read_text()
    assert "| sst2_sentence | lstm | 100 | 0.760 ± 0.014" in report
    # paired by seed (the same label subsets): per-seed gaps 0.15 and 0.13 agree, t(1) interval ±0.127
    assert "gap +0.140; pretraining helps (95% interval ±0.127 excludes 0)" in report
    assert (tmp_path / "summary.csv").read_text().startswith("family,num_train_examples,task")


def test_optional_ulmfit_arm_gets_its_columns_gap_and_findings(tmp_path):
    records = [
        _record("lstm", init, 100, seed, 1e-3, acc)
        for init, accs in (
            ("scratch", (0.60, 0.61, 0.62)),
            ("pretrained", (0.70, 0.71, 0.72)),
            ("ulmfit", (0.80, 0.81, 0.82)),
        )
        for seed, acc in enumerate(accs)
    ]
    (row,) = summary_rows(records)
    assert row["gap"] == pytest.approx(0.10) and row["ulmfit_gap"] == pytest.approx(0.20)
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    write_report(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "| pretrained | scratch | gap (pre − scratch) | ULMFiT | gap (ULMFiT − scratch) |" in report
    assert "| 0.810 ± 0.010" in report and "+0.200 [±" in report
    assert (
        "lstm on sst2_sentence with 100 labels (ULMFiT arm): 0.810 vs 0.610, gap +0.200; pretraining with "
        "ULMFiT fine-tuning helps" in report
    )
    # without the arm, the table keeps its two-arm shape
    write_report_rows = summary_rows([r for r in records if r["init"] != "ulmfit"])
    assert "ulmfit_gap" not in write_report_rows[0]


def test_report_refuses_an_empty_results_file(tmp_path):
    with pytest.raises(ValueError, match="no finished runs"):
        write_report(tmp_path)
