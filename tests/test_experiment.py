"""The transfer-gap experiment end to end on a micro grid, its resumability and its config errors."""

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from seqlab.errors import SeqlabUsageError
from seqlab.experiment import load_experiment, run_experiment
from seqlab.experiment.keep import KEPT_KEYS

MICRO = {
    "task": "sst2_sentence",
    "families": {"lstm": "configs/models/recurrent-tiny.yaml", "decoder": "configs/models/decoder-tiny.yaml"},
    "inits": ["pretrained", "scratch"],
    "label_budgets": [40],
    "seeds": [0],
    "learning_rates": [1.0e-3],
    "tokenizer": {"sources": ["general_english"], "vocab_size": 300, "kind": "bpe", "max_texts": 2000},
    "pretraining": {
        "datasets": ["general_english"],
        "max_seq_length": 32,
        "max_corpus_tokens": 20000,
        "max_steps": 4,
        "per_device_train_batch_size": 8,
        "max_eval_batches": 2,
        "save_steps": None,
    },
    "finetuning": {"max_length": 32, "per_device_eval_batch_size": 128},
    "min_finetune_steps": 4,
}


def write_config(tmp_path, **changes):
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump({**MICRO, **changes}))
    return path


@pytest.fixture
def in_repo(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)  # model YAML paths in the config are relative to the repository


def test_micro_grid_end_to_end_then_resume(tmp_path, in_repo, capsys):
    config = write_config(tmp_path, eval_files=[str(tmp_path / "extra.tsv")])
    (tmp_path / "extra.tsv").write_text("sentence\tlabel\ngreat fun\t1\nawful\t0\nsuperb acting\t1\n")
    out = run_experiment(config, tmp_path / "out")

    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted((r["family"], r["init"]) for r in records) == [
        ("decoder", "pretrained"), ("decoder", "scratch"), ("lstm", "pretrained"), ("lstm", "scratch"),
    ]  # fmt: skip
    for r in records:
        assert r["num_train_examples"] == 40 and r["seed"] == 0
        assert 0.0 <= r["metrics"]["accuracy"] <= 1.0 and "f1" in r["metrics"]
        assert r["eval_files"]["extra.tsv"]["examples"] == 3
        assert r["versions"]["torch"] and r["hardware"]["cpu_count"] and r["wall_time_s"] > 0
        assert (r["pretrained_from"] is None) == (r["init"] == "scratch")
    for name in ("summary.md", "summary.csv", "report.md", "accuracy_vs_labels.png", "gap.png"):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "| sst2_sentence | lstm | 40 |" in report and "a single seed per arm" in report
    assert not (out / "finetune").exists() or not any((out / "finetune").iterdir())  # models not kept by default
    # ... except each cell's dev-selected classifier (for the demo): re-run exactly, only the loadable files
    from transformers import AutoModelForSequenceClassification

    for r in records:
        kept_dir = out / "classifiers" / r["family"] / r["init"] / "n40"
        kept = json.loads((kept_dir / "kept.json").read_text())
        assert kept["run_id"] == r["run_id"] and kept["metrics"] == r["metrics"] and kept["reproduced"] is True
        assert set(kept) == KEPT_KEYS  # the keys a Space publishes (seqlab.demo.space): none goes missing there
        names = {p.name for p in kept_dir.iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json", "kept.json"} <= names
        assert not {"metrics.json", "train_log.jsonl", "recipe.yaml", "checkpoints"} & names
        model = AutoModelForSequenceClassification.from_pretrained(kept_dir)
        assert model.config.id2label == {0: "negative", 1: "positive"}
    assert not [p for p in (out / "classifiers").iterdir() if p.name.startswith(".tmp")]

    # resume: nothing is redone; a lost line is redone alone
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:3]) + "\n")
    run_experiment(config, out)
    again = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(again) == 4 and [r["run_id"] for r in again[:3]] == [json.loads(x)["run_id"] for x in lines[:3]]
    assert again[3]["run_id"] == json.loads(lines[3])["run_id"]
    assert again[3]["metrics"] == json.loads(lines[3])["metrics"]  # deterministic on CPU

    # a torn last line (killed while appending it) is dropped, reported in one line, and its run redone
    whole = (out / "results.jsonl").read_bytes()
    last = whole.splitlines()[3]
    (out / "results.jsonl").write_bytes(whole[: len(whole) - 1 - len(last) // 2])
    capsys.readouterr()
    run_experiment(config, out)
    assert "dropped a torn last line" in capsys.readouterr().err
    after = (out / "results.jsonl").read_bytes()
    assert after.splitlines()[:3] == whole.splitlines()[:3] and after.endswith(b"\n")
    assert [json.loads(x)["metrics"] for x in after.splitlines()] == [r["metrics"] for r in again]

    # a lost kept classifier is re-made; results.jsonl is never touched by that step
    before = (out / "results.jsonl").read_bytes()
    stamp = (out / "classifiers" / "decoder" / "scratch" / "n40" / "kept.json").stat().st_mtime_ns
    shutil.rmtree(out / "classifiers" / "lstm")
    run_experiment(config, out)
    assert (out / "results.jsonl").read_bytes() == before
    assert json.loads((out / "classifiers" / "lstm" / "pretrained" / "n40" / "kept.json").read_text())["reproduced"]
    assert (out / "classifiers" / "decoder" / "scratch" / "n40" / "kept.json").stat().st_mtime_ns == stamp  # reused

    # the grid may grow; the settings that made the finished runs may not change under them
    changed = write_config(tmp_path, pretraining={**MICRO["pretraining"], "max_steps": 5})
    with pytest.raises(SeqlabUsageError, match="pretraining differ"):
        run_experiment(changed, out)


def test_kept_classifier_is_the_dev_selected_rate_and_its_best_dev_seed():
    from seqlab.experiment.keep import selected_records

    def record(lr, seed, dev, val):
        return {
            "run_id": f"t/lstm/scratch/n10/seed{seed}/lr{lr}",
            "task": "t",
            "family": "lstm",
            "init": "scratch",
            "num_train_examples": 10,
            "requested_examples": 10,
            "seed": seed,
            "learning_rate": lr,
            "metrics": {"accuracy": val},
            "dev_metrics": {"accuracy": dev},
        }

    records = [
        record(1e-3, 0, 0.70, 0.9),
        record(1e-3, 1, 0.70, 0.9),  # lr 1e-3: best single dev run...
        record(1e-2, 0, 0.65, 0.5),
        record(1e-2, 1, 0.66, 0.5),
        record(1e-2, 2, 0.66, 0.5),
    ]
    records[1]["dev_metrics"]["accuracy"] = 0.50  # ...but the worse mean dev score (0.60 < 0.657)
    [chosen] = selected_records(records)
    assert (chosen["learning_rate"], chosen["seed"]) == (1e-2, 1)  # validation never decides; ties: lowest seed


@pytest.mark.slow
def test_parallel_grid_gives_the_serial_results(tmp_path, in_repo):
    """Two worker processes (one thread each) and one process give bit-identical scores for every run."""
    config = write_config(tmp_path, label_budgets=[30, 40], learning_rates=[1e-3, 3e-3], dev_examples=200)
    serial = run_experiment(config, tmp_path / "serial", jobs=1)
    parallel = run_experiment(config, tmp_path / "parallel", jobs=2)

    def scores(out):
        records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        return {r["run_id"]: (r["metrics"], r["dev_metrics"], r["steps"]) for r in records}

    assert len(scores(serial)) == 16 and scores(parallel) == scores(serial)
    assert all(v[1]["examples"] == 200 for v in scores(serial).values())
    logs = sorted(p.name for p in (parallel / "logs").iterdir())
    grid_logs = [name for name in logs if not name.startswith("keep_")]
    assert "pretrain_lstm.log" in grid_logs and len(grid_logs) == 18  # each run's own output, off the console
    # one re-run per (family, arm, budget) cell keeps its dev-selected classifier for the demo
    assert len(logs) - len(grid_logs) == 8 and len(list((parallel / "classifiers").glob("*/*/n*/kept.json"))) == 8
    assert "parallel processes**: 2" in (parallel / "report.md").read_text()


def test_optional_arms_fine_tune_the_pretrained_model_with_their_strategy(tmp_path):
    from seqlab.experiment import runner
    from seqlab.experiment.grid import FinetuneRun

    arms = ("pretrained", "scratch", "ulmfit", "probe")
    config = load_experiment(
        write_config(tmp_path, inits=list(arms), finetuning={**MICRO["finetuning"], "strategy": "full"})
    )
    assert load_experiment(write_config(tmp_path)).inits == ["pretrained", "scratch"]  # the arms are opt-in
    assert {run.init for run in config.runs()} == set(arms)
    by_init = {
        init: runner._finetune_recipe(
            config,
            FinetuneRun("sst2_sentence", "lstm", init, 40, 0, 1e-3),
            tmp_path / "pretrained-lstm",
            tmp_path / "tok",
            tmp_path / init,
        )
        for init in arms
    }
    assert {by_init[i]["model_name_or_path"] for i in ("pretrained", "ulmfit", "probe")} == {
        str(tmp_path / "pretrained-lstm")
    }
    assert by_init["scratch"]["model_name_or_path"] == "scratch"
    assert [by_init[i]["strategy"] for i in arms] == ["full", "full", "ulmfit", "freeze_body"]
    # the same budget and the same dev carve for every arm
    assert (
        len(
            {
                (r["max_steps"], r["learning_rate"], r["num_train_examples"], r["dev_examples"], r["dev_seed"])
                for r in by_init.values()
            }
        )
        == 1
    )


def test_fixed_step_budget_and_per_arm_learning_rates(tmp_path):
    from seqlab.experiment import runner

    config = load_experiment(
        write_config(
            tmp_path,
            finetune_steps=77,
            label_budgets=[40, "all"],
            seeds={40: [0, 1, 2], "all": [5]},
            learning_rates={"lstm": {"pretrained": [1e-4, 3e-4], "scratch": [1e-3, 3e-3]}, "decoder": [5e-4, 1e-3]},
        )
    )
    lrs = {(r.family, r.init): set() for r in config.runs()}
    for run in config.runs():
        lrs[(run.family, run.init)].add(run.learning_rate)
        recipe = runner._finetune_recipe(config, run, tmp_path, tmp_path, tmp_path / "out")
        assert recipe["max_steps"] == 77 and "num_train_epochs" not in recipe  # whatever N, also "all"
    assert lrs[("lstm", "pretrained")] == {1e-4, 3e-4} and lrs[("lstm", "scratch")] == {1e-3, 3e-3}
    assert lrs[("decoder", "pretrained")] == lrs[("decoder", "scratch")] == {5e-4, 1e-3}
    assert {(r.num_train_examples, r.seed) for r in config.runs()} == {(40, 0), (40, 1), (40, 2), ("all", 5)}


def test_same_label_subset_for_every_arm(tmp_path, in_repo):
    """Fairness by construction: a seed picks the same examples whatever the family or init."""
    from seqlab.data import load_text_dataset, stratified_subset

    train = load_text_dataset("sst2_sentence", "train")
    first = stratified_subset(train, 40, seed=0)["text"]
    assert stratified_subset(train, 40, seed=0)["text"] == first
    assert stratified_subset(train, 40, seed=1)["text"] != first


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"learning_rates": {"lstm": [1e-3, 3e-3], "decoder": [1e-3]}}, "same size"),
        ({"learning_rates": {"lstm": {"pretrained": [1e-3], "scratch": [1e-3, 3e-3]}, "decoder": [1e-3]}}, "same size"),
        ({"learning_rates": {"lstm": {"pretrained": [1e-3]}, "decoder": [1e-3]}}, r"missing \['scratch'\]"),
        (
            {
                "learning_rates": {
                    "lstm": {"pretrained": [1e-3], "scratch": [1e-3], "ulmfit": [1e-3]},
                    "decoder": [1e-3],
                }
            },
            r"unknown arm\(s\) \['ulmfit'\]",
        ),
        ({"inits": ["pretrained", "random"]}, r"inits.*'pretrained', 'scratch', 'ulmfit', 'probe'"),
        ({"finetune_steps": 0}, "finetune_steps"),
        ({"seeds": {40: [0], 100: [1]}}, r"not a budget: \['100'\]"),
        ({"label_budgets": [40, "all"], "seeds": {40: [0]}}, r"missing \['all'\]"),
        ({"dev_examples": 1}, "dev_examples"),
        ({"label_budgets": [0]}, "label budget"),
        ({"seeds": []}, "seeds"),
        ({"famillies": {}}, "unknown key"),
    ],
)
def test_bad_experiment_configs_are_refused(tmp_path, changes, message):
    with pytest.raises(SeqlabUsageError, match=message):
        load_experiment(write_config(tmp_path, **changes))


def test_cli_reports_a_missing_config_without_traceback(tmp_path, repo_root):
    result = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "transfer_gap.py"), "--config", str(tmp_path / "nope.yaml")],
        capture_output=True, text=True, timeout=120, cwd=repo_root,
    )  # fmt: skip
    assert result.returncode == 1 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_imdb_is_a_second_task(tmp_path, in_repo, tokenizer):
    """Fine-tuning on IMDB scores the held-out imdb:validation reviews."""
    from seqlab.training import run_finetuning

    metrics = run_finetuning(
        {"config": "configs/finetune/sst2-tiny.yaml"},
        dataset="imdb",
        model_name_or_path="scratch",
        model_config="configs/models/recurrent-tiny.yaml",
        tokenizer_path=tokenizer.saved_folder,
        num_train_examples=20,
        max_steps=2,
        max_length=32,
        output_dir=str(tmp_path / "imdb"),
        save_model=False,
    )
    assert metrics["num_train_examples"] == 20 and metrics["eval_examples"] == 2440
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0


@pytest.mark.parametrize("name", ["tiny", "cpu", "small", "imdb"])
def test_shipped_experiment_configs_load(repo_root, name):
    config = load_experiment(repo_root / "configs" / "experiments" / f"{name}.yaml")
    assert all((repo_root / path).is_file() for path in config.families.values())
    assert all(len(seeds) >= 2 for seeds in config.seeds.values()) and {"pretrained", "scratch"} <= set(config.inits)
    assert len(config.seeds[config.label_budgets[0]]) >= 5  # noise is largest at the smallest budget
    sizes = {len(grid) for by_arm in config.learning_rates.values() for grid in by_arm.values()}
    assert len(sizes) == 1 and sizes.pop() >= 3  # a grid that can bracket each arm's optimum
    assert config.dev_examples >= 200  # selection on a dev set carved off the training split


def test_results_file_keeps_whole_lines_and_names_a_damaged_one(tmp_path):
    from seqlab.experiment.report import read_results, recover_torn_tail
    from seqlab.experiment.runner import _append_record

    path = tmp_path / "results.jsonl"
    _append_record(path, {"run_id": "a"})
    _append_record(path, {"run_id": "b"})
    path.write_bytes(path.read_bytes() + b'{"run_id": "c", "metr')  # a kill during the third append
    assert [r["run_id"] for r in read_results(path)] == ["a", "b"]  # readable as it is
    assert recover_torn_tail(path) == len(b'{"run_id": "c", "metr') and recover_torn_tail(path) == 0
    _append_record(path, {"run_id": "c"})
    assert [r["run_id"] for r in read_results(path)] == ["a", "b", "c"]
    path.write_bytes(b'{"run_id": "a"}\n{"run_id"\n{"run_id": "c"}\n')  # damage before the last line is not a kill's
    with pytest.raises(SeqlabUsageError, match=r"results.jsonl line 2 is not a valid result .*delete that line"):
        read_results(path)


def test_a_changed_model_yaml_is_refused_on_the_same_output_dir(tmp_path, in_repo):
    """experiment.yaml names each family's model YAML by path: its contents are recorded and compared too, so
    one arm never mixes models of two sizes."""
    from seqlab.experiment import runner

    model = tmp_path / "decoder.yaml"
    model.write_text(yaml.safe_dump({"family": "decoder", "hidden_size": 80, "num_hidden_layers": 1}))
    config = write_config(tmp_path, families={"decoder": str(model)})
    out = tmp_path / "out"
    out.mkdir()
    (out / "experiment.yaml").write_text(config.read_text())
    runner._record_models(out, {"decoder": str(model)})  # what the first invocation records
    model.write_text(yaml.safe_dump({"family": "decoder", "hidden_size": 160, "num_hidden_layers": 1}))
    with pytest.raises(SeqlabUsageError, match=r"families.decoder \(.*decoder.yaml: hidden_size 80 -> 160\) differ"):
        run_experiment(config, out)


def test_two_invocations_on_one_output_dir_are_refused(tmp_path, in_repo):
    from seqlab.training.lock import OutputDirLock

    out = tmp_path / "out"
    with OutputDirLock(out) as other:  # another invocation, running
        other.acquire(create=True)
        with pytest.raises(SeqlabUsageError, match=r"output_dir '.*out' is in use by another run \(pid \d+ on host"):
            run_experiment(write_config(tmp_path), out)
    assert [p.name for p in out.iterdir()] == [".seqlab.lock"]  # nothing written
