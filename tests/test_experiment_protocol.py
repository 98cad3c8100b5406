"""The transfer-gap protocol: a dev set carved off the training split for selection, parallel runs that
give the serial results, and the headline statistics (difference of gaps, label efficiency)."""

import json
import math

import numpy as np
import pytest

from seqlab.errors import SeqlabUsageError
from seqlab.experiment.report import label_efficiency_rows, select_cells, write_report
from seqlab.experiment.stats import difference_of_gaps, label_efficiency, labels_to_reach


@pytest.fixture(scope="module")
def sst2_train(data_dir):
    from seqlab.data import load_text_dataset

    return load_text_dataset("sst2_sentence", "train")


def test_dev_carve_is_stratified_fixed_and_disjoint_from_every_budget(sst2_train, data_dir):
    from seqlab.data import carve_dev_split, load_text_dataset, stratified_subset

    rest, dev = carve_dev_split(sst2_train.add_column("row", list(range(len(sst2_train)))), 500, seed=0)
    assert len(dev) == 500 and len(sst2_train) - 500 - 10 < len(rest) <= len(sst2_train) - 500
    dev_rows = set(dev["row"])
    assert dev_rows.isdisjoint(rest["row"]) and set(dev["text"]).isdisjoint(rest["text"])  # also duplicate sentences
    dropped = set(range(len(sst2_train))) - dev_rows - set(rest["row"])
    assert all(sst2_train[i]["text"] in set(dev["text"]) for i in dropped)  # only repeats of dev sentences
    share = np.mean(sst2_train["label"])
    assert abs(np.mean(dev["label"]) - share) < 0.01  # the class proportions of the training split
    again_rest, again_dev = carve_dev_split(sst2_train.add_column("row", list(range(len(sst2_train)))), 500, seed=0)
    assert again_dev["row"] == dev["row"] and again_rest["row"] == rest["row"]  # fixed by dev_seed alone
    for seed in (0, 1, 2):  # every label budget, whatever the run seed, comes from the rest only
        for n in (100, 1000, "all"):
            assert dev_rows.isdisjoint(stratified_subset(rest, n, seed=seed)["row"])
    validation = set(load_text_dataset("sst2_sentence", "validation")["text"])
    assert validation.isdisjoint(dev["text"])  # the reported split is another set of sentences
    with pytest.raises(SeqlabUsageError, match="lower dev_examples"):
        carve_dev_split(sst2_train, len(sst2_train), seed=0)


def test_finetuning_scores_the_dev_set_and_never_trains_on_it(tmp_path, repo_root, tokenizer, monkeypatch):
    import seqlab.data
    from seqlab.training import run_finetuning

    monkeypatch.chdir(repo_root)
    seen = {}
    real_subset = seqlab.data.stratified_subset

    def spy(dataset, n, seed=0):  # the pool the label budget is drawn from
        seen["pool"] = set(dataset["text"])
        return real_subset(dataset, n, seed=seed)

    monkeypatch.setattr(seqlab.data, "stratified_subset", spy)
    common = dict(
        dataset="sst2_sentence",
        model_name_or_path="scratch",
        model_config="configs/models/decoder-tiny.yaml",
        tokenizer_path=tokenizer.saved_folder,
        num_train_examples=20,
        max_steps=2,
        max_length=32,
        save_model=False,
        dev_examples=300,
        dev_seed=3,
    )
    metrics = run_finetuning({"config": "configs/finetune/sst2-tiny.yaml"}, output_dir=str(tmp_path / "a"), **common)
    assert metrics["dev_examples"] == 300 and 0.0 <= metrics["dev_accuracy"] <= 1.0 and "dev_loss" in metrics
    assert metrics["eval_examples"] == 872  # the validation split is still what eval_* scores
    from seqlab.data import carve_dev_split, load_text_dataset

    _, dev = carve_dev_split(load_text_dataset("sst2_sentence", "train"), 300, seed=3)
    assert seen["pool"].isdisjoint(dev["text"])
    with pytest.raises(SeqlabUsageError, match="left after the dev carve"):
        run_finetuning(
            {"config": "configs/finetune/sst2-tiny.yaml"},
            output_dir=str(tmp_path / "b"),
            **{**common, "num_train_examples": 6900},
        )


def _record(family, init, n, seed, lr, val, dev=None):
    record = {
        "task": "sst2_sentence",
        "family": family,
        "init": init,
        "num_train_examples": n,
        "seed": seed,
        "learning_rate": lr,
        "metrics": {"accuracy": val},
    }
    if dev is not None:
        record["dev_metrics"] = {"accuracy": dev}
    return record


def test_learning_rate_is_selected_on_dev_and_reported_on_validation(tmp_path):
    records = [
        # on validation 3e-3 looks better; on dev 1e-3 is: dev decides, validation is reported
        *[_record("lstm", "scratch", 100, s, 1e-3, 0.60, dev=0.70) for s in (0, 1)],
        *[_record("lstm", "scratch", 100, s, 3e-3, 0.80, dev=0.50) for s in (0, 1)],
        *[_record("lstm", "scratch", 100, s, 1e-2, 0.55, dev=0.52) for s in (0, 1)],
        *[_record("lstm", "pretrained", 100, s, 1e-3, 0.75 + s / 100, dev=0.7) for s in (0, 1)],
    ]
    cell = select_cells(records)[("sst2_sentence", "lstm", "scratch", 100)]
    assert cell["learning_rate"] == 1e-3 and cell["scores"] == [0.60, 0.60] and cell["selected_on"] == "dev"
    assert cell["at_edge"]  # 1e-3 is the lowest of the grid
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    write_report(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "Selection uses a dev set carved off the task's training split" in report and "†" in report
    # runs without dev scores (older results) are selected on validation, and the report says so
    old = [{k: v for k, v in r.items() if k != "dev_metrics"} for r in records]
    assert select_cells(old)[("sst2_sentence", "lstm", "scratch", 100)]["learning_rate"] == 3e-3
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in old) + "\n")
    write_report(tmp_path)
    assert "selected on the validation split they are reported on" in (tmp_path / "report.md").read_text()


def test_difference_of_gaps_on_hand_checked_numbers():
    d = difference_of_gaps([0.8, 0.82, 0.84], [0.6, 0.6, 0.6], [0.7, 0.7, 0.7], [0.6, 0.6, 0.6])
    assert d["difference"] == pytest.approx(0.12)
    # only the first arm varies: the interval is its own t-interval (2 degrees of freedom)
    assert d["ci95"] == pytest.approx(4.303 * 0.02 / math.sqrt(3), rel=1e-3)
    two = difference_of_gaps([0.8, 0.84], [0.6, 0.64], [0.7, 0.74], [0.6, 0.64])
    # four arms, each variance 0.0008/2: Welch-Satterthwaite gives 4 degrees of freedom
    assert two["difference"] == pytest.approx(0.10) and two["ci95"] == pytest.approx(2.776 * math.sqrt(4 * 0.0004))
    assert math.isnan(difference_of_gaps([0.8], [0.6, 0.6], [0.7, 0.7], [0.6, 0.6])["ci95"])


def test_labels_to_reach_interpolates_in_log_labels():
    # 0.6 at 100, 0.8 at 1000: 0.7 lies half-way in log(labels), at sqrt(100 * 1000)
    assert labels_to_reach([100, 1000], [0.6, 0.8], 0.7) == pytest.approx(math.sqrt(1e5))
    assert labels_to_reach([1000, 100, 300], [0.8, 0.6, 0.6], 0.7) == pytest.approx(
        math.exp(math.log(300) + 0.5 * (math.log(1000) - math.log(300)))
    )  # unsorted input; the first crossing counts
    assert labels_to_reach([100, 1000], [0.72, 0.8], 0.7) == 100  # already there at the smallest budget
    assert math.isinf(labels_to_reach([100, 1000], [0.6, 0.65], 0.7))  # never within the budgets


def test_label_efficiency_bootstrap_on_a_known_curve():
    curve = {100: [0.6, 0.6, 0.6], 1000: [0.8, 0.8, 0.8]}
    exact = label_efficiency([0.7, 0.7, 0.7], curve)
    assert exact["labels"] == pytest.approx(math.sqrt(1e5)) and exact["low"] == exact["high"] == exact["labels"]
    noisy = label_efficiency([0.68, 0.70, 0.72], {100: [0.58, 0.6, 0.62], 1000: [0.78, 0.8, 0.82]})
    assert noisy["low"] < noisy["labels"] < noisy["high"] and noisy["labels"] == pytest.approx(math.sqrt(1e5))
    assert noisy == label_efficiency([0.68, 0.70, 0.72], {100: [0.58, 0.6, 0.62], 1000: [0.78, 0.8, 0.82]})  # seeded
    censored = label_efficiency([0.9, 0.9], {100: [0.6, 0.6], 1000: [0.8, 0.8]})
    assert math.isinf(censored["labels"]) and censored["max_budget"] == 1000


def test_label_efficiency_rows_use_the_selected_learning_rates(tmp_path):
    records = [
        *[_record("lstm", "pretrained", 100, s, 1e-3, 0.70, dev=0.7) for s in (0, 1)],
        *[_record("lstm", "scratch", n, s, 1e-3, acc, dev=0.6) for n, acc in ((100, 0.6), (1000, 0.8)) for s in (0, 1)],
        *[_record("lstm", "scratch", n, s, 3e-3, 0.9, dev=0.1) for n in (100, 1000) for s in (0, 1)],  # not selected
    ]
    (row,) = label_efficiency_rows(records)
    assert row["pretrained_budget"] == 100 and row["labels"] == pytest.approx(math.sqrt(1e5))
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    write_report(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "| sst2_sentence | lstm | 100 | 0.700 | 316 [316, 316] | 3.2x |" in report
    assert "scratch needs about 316 labels to match the pretrained lstm's 0.700 at 100 labels (3.2x" in report


def test_gaps_are_paired_by_seed_when_the_arms_share_label_subsets():
    from seqlab.experiment.report import gap_differences, summary_rows

    # seed 1's subset is hard for every arm: unpaired the gap drowns in that spread, paired it does not
    pre, scratch = (0.70, 0.60, 0.72), (0.66, 0.555, 0.685)
    records = [
        _record("lstm", init, 100, s, 1e-3, acc, dev=0.5)
        for init, accs in (("pretrained", pre), ("scratch", scratch))
        for s, acc in enumerate(accs)
    ]
    (row,) = summary_rows(records)
    differences = [p - s for p, s in zip(pre, scratch)]
    mean = sum(differences) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / 2)
    assert row["gap_paired"] and row["gap"] == pytest.approx(mean)
    assert row["gap_ci95"] == pytest.approx(4.303 * sd / math.sqrt(3))
    assert row["gap"] - row["gap_ci95"] > 0  # excludes 0 paired; Welch would not:
    from seqlab.experiment.stats import difference_of_means

    assert difference_of_means(pre, scratch)["ci95"] > row["gap"]
    # other seeds per arm: no pairs, Welch
    (unpaired,) = summary_rows([r for r in records if not (r["init"] == "scratch" and r["seed"] == 2)])
    assert not unpaired["gap_paired"]
    # the difference of two families' gaps is paired too: seed by seed
    decoder = [
        _record("decoder", init, 100, s, 1e-3, acc, dev=0.5)
        for init, accs in (("pretrained", (0.61, 0.52, 0.63)), ("scratch", scratch))
        for s, acc in enumerate(accs)
    ]
    (d,) = gap_differences(summary_rows(records + decoder), records + decoder)
    per_seed = [(p - s) - (q - s) for p, q, s in zip((0.61, 0.52, 0.63), pre, scratch)]
    assert d["first"] == "decoder" and d["paired"] and d["difference"] == pytest.approx(sum(per_seed) / 3)


def test_label_efficiency_says_when_scratch_matches_already_at_the_smallest_budget(tmp_path):
    records = [
        *[_record("decoder", "pretrained", 100, s, 1e-3, 0.55, dev=0.5) for s in (0, 1)],
        *[
            _record("decoder", "scratch", n, s, 1e-3, acc, dev=0.5)
            for n, acc in ((100, 0.57), (1000, 0.65))
            for s in (0, 1)
        ],
    ]
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    write_report(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "| sst2_sentence | decoder | 100 | 0.550 | ≤ 100 [≤ 100, ≤ 100] | ≤ 1x |" in report
    assert "scratch matches the pretrained decoder's 0.550 at 100 labels already at 100 labels" in report
