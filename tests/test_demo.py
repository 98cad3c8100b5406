"""The Gradio demo and its Space, for real: the app runs in a subprocess on a loopback port with tiny models of
every family, gradio_client calls each tab's endpoint, headless Chromium clicks through the page, and the
Space's dry-run folder starts where seqlab cannot be imported."""

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("gradio", reason="the demo extra is not installed: pip install -e '.[demo]'")
from gradio_client import Client  # noqa: E402
from test_hf_integration import make_model  # noqa: E402

from seqlab.demo.runfolder import RunFolder  # noqa: E402
from seqlab.demo.space import write_space  # noqa: E402
from seqlab.errors import SeqlabUsageError  # noqa: E402
from seqlab.experiment.keep import KEPT_KEYS  # noqa: E402
from seqlab.experiment.report import write_report  # noqa: E402
from seqlab.hub.export import is_whitelisted  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FAMILIES = {"lstm": "recurrent", "decoder": "decoder", "encoder": "encoder"}
LM_HEAD = {"recurrent": "AutoModelForCausalLM", "decoder": "AutoModelForCausalLM", "encoder": "AutoModelForMaskedLM"}
ARMS = ("pretrained", "scratch")
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def build_run_folder(root: Path, tokenizer) -> Path:
    """An experiment output folder as scripts/transfer_gap.py leaves it, with tiny random models of each family."""
    for name, family in FAMILIES.items():
        make_model(family, LM_HEAD[family], tokenizer).save_pretrained(root / "pretrain" / name)
        tokenizer.save_pretrained(root / "pretrain" / name)
    records = []
    for n, name in enumerate(FAMILIES):
        for a, arm in enumerate(ARMS):
            for seed in (0, 1):
                score = 0.6 + 0.05 * n + 0.1 * (arm == "pretrained") + 0.01 * seed
                records.append(
                    {
                        "run_id": f"sst2_sentence/{name}/{arm}/n40/seed{seed}/lr0.001",
                        "task": "sst2_sentence",
                        "family": name,
                        "init": arm,
                        "num_train_examples": 40,
                        "requested_examples": 40,
                        "seed": seed,
                        "learning_rate": 0.001,
                        "metrics": {"accuracy": score},
                        "dev_metrics": {"accuracy": score},
                    }
                )
            folder = root / "classifiers" / name / arm / "n40"
            make_model(FAMILIES[name], "AutoModelForSequenceClassification", tokenizer, seed=n * 2 + a).save_pretrained(
                folder
            )
            tokenizer.save_pretrained(folder)
            kept = {key: value for key, value in records[-1].items() if key in KEPT_KEYS}  # as keep.py writes it
            (folder / "kept.json").write_text(json.dumps({**kept, "reproduced": True}))
    (root / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(root)  # summary.md, summary.csv and the plots, as the experiment writes them
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tokenizer):
    # SEQLAB_DEMO_RUN_DIR: a real experiment folder instead (how docs/demo.png is taken on the main job's output)
    if os.environ.get("SEQLAB_DEMO_RUN_DIR"):
        return Path(os.environ["SEQLAB_DEMO_RUN_DIR"]).resolve()
    return build_run_folder(tmp_path_factory.mktemp("demo") / "run", tokenizer)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(**extra) -> dict:
    path = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": path, **extra}


def start(command: list[str], port: int, cwd: Path, env: dict, log: Path):
    """Start an app process and wait until its page answers (a slow, loaded machine may take a while)."""
    handle = log.open("w")
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the app exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    pytest.fail(f"the app did not answer on port {port}:\n{log.read_text()[-3000:]}")


def stop(process) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def apps(run_dir, tmp_path_factory):
    """The demo on the tiny run folder and on an empty one (every model missing), started side by side."""
    empty = tmp_path_factory.mktemp("empty-run")
    logs = tmp_path_factory.mktemp("logs")
    ports = free_port(), free_port()
    processes = [
        start(
            [sys.executable, "scripts/demo.py", "--run_dir", str(folder), "--port", str(port)],
            port,
            REPO,
            app_env(),
            logs / f"app{port}.log",
        )
        for folder, port in zip((run_dir, empty), ports)
    ]
    try:
        yield {
            name: (
                f"http://127.0.0.1:{port}/",
                Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(logs)),
            )
            for name, port in zip(("full", "empty"), ports)
        }
    finally:
        for process in processes:
            stop(process)


def rows(table) -> list[list]:
    return table["data"]


def test_core_package_does_not_import_gradio():
    code = "import sys, seqlab, seqlab.experiment, seqlab.hub, seqlab.training; print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=app_env(), timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-2000:]


def test_classify_shows_every_family_and_arm(apps):
    _, client = apps["full"]
    status, table = client.predict("a gripping , funny film", "40", api_name="/classify")
    assert "40 labels" in status and table["headers"][:5] == [
        "family",
        "arm",
        "prediction",
        "P(negative)",
        "P(positive)",
    ]
    assert [(r[0], r[1]) for r in rows(table)] == [(f, a) for f in FAMILIES for a in ARMS]
    for row in rows(table):
        assert row[2] in ("negative", "positive") and abs(row[3] + row[4] - 1) < 1e-3
        assert row[2] == ("positive" if row[4] > row[3] else "negative")
    # each kept run's validation accuracy, from its kept.json (build_run_folder kept seed 1)
    expected = [0.61 + 0.05 * n + 0.1 * (arm == "pretrained") for n in range(3) for arm in ARMS]
    assert [r[5] for r in rows(table)] == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "box is empty"),
        ("   ", "box is empty"),
        ("word " * 300, "at most 1000"),  # characters
        ("ab " * 200, "max_position_embeddings"),  # 600 characters, more tokens than the 64 positions
    ],
)
def test_bad_text_gives_a_message_on_every_tab(apps, text, message):
    _, client = apps["full"]
    status, table = client.predict(text, "40", api_name="/classify")
    assert message in status and (table is None or not rows(table))
    status, lstm, decoder, speed = client.predict(text, "greedy", 5, 0, api_name="/generate")
    assert message in status and lstm == decoder == ""
    status, *_ = client.predict(text, api_name="/inside")
    assert message in status
    if text.strip():
        status, *_ = client.predict(text + " <mask>", api_name="/fill_mask")
        assert message in status


def test_generate_both_models_with_speed(apps):
    _, client = apps["full"]
    status, lstm, decoder, speed = client.predict("To be , or not", "greedy", 8, 0, api_name="/generate")
    assert "greedy" in status and isinstance(lstm, str) and isinstance(decoder, str)
    assert speed["headers"] == ["model", "new tokens", "seconds", "tokens/s"]
    assert [r[0] for r in rows(speed)] == ["lstm (LSTM)", "decoder (decoder)"]
    assert all(1 <= r[1] <= 8 and r[3] > 0 for r in rows(speed))
    first = client.predict("To be", "sampled", 12, 7, api_name="/generate")
    again = client.predict("To be", "sampled", 12, 7, api_name="/generate")
    assert first[1:3] == again[1:3]  # a seed repeats a sampled continuation
    status, *_ = client.predict("To be", "greedy", 128, 0, api_name="/generate")  # 2 + 128 > 64 positions
    assert "fewer tokens" in status


def test_fill_mask_ranks_tokens_at_each_mask(apps):
    _, client = apps["full"]
    status, filled, table = client.predict("To be , or <mask> to be , that is the [MASK]", api_name="/fill_mask")
    assert "encoder" in status and isinstance(filled, str) and "<mask>" not in filled
    assert [(r[0], r[1]) for r in rows(table)] == [(m, k) for m in (1, 2) for k in range(1, 6)]
    assert all(0 <= r[3] <= 1 for r in rows(table))
    status, filled, table = client.predict("no mask here", api_name="/fill_mask")
    assert "<mask>" in status and filled == ""


def test_inside_the_model_plots_and_gradients(apps):
    from PIL import Image

    _, client = apps["full"]
    status, gradients, attention, table = client.predict(
        "To be , or not to be , that is the question", api_name="/inside"
    )
    assert "vanishing" in status
    for path in (gradients, attention):
        image = Image.open(path)
        assert image.format == "PNG" and image.width > 400 and image.height > 200
    assert table["headers"] == ["position", "token", "lstm (LSTM)", "decoder (decoder)", "encoder (encoder)"]
    assert len(rows(table)) >= 10 and all(all(v >= 0 for v in r[2:]) for r in rows(table))
    assert rows(table)[0][1] == "<s>"
    status, *_ = client.predict("To", api_name="/inside")
    assert "at least two words" in status


def test_results_tab_reads_the_run_folder(apps, run_dir):
    _, client = apps["full"]
    status, summary, table, accuracy, gap = client.predict(api_name="/results")
    assert str(run_dir) in status and "| sst2_sentence | lstm | 40 |" in summary
    assert len(rows(table)) == 3 and "gap" in table["headers"]
    assert Path(accuracy).read_bytes() == (run_dir / "accuracy_vs_labels.png").read_bytes()
    assert Path(gap).stat().st_size > 0


def test_missing_models_name_the_command(apps):
    _, client = apps["empty"]
    status, _ = client.predict("a fine film", "40", api_name="/classify")
    assert "no kept classifiers" in status and "make experiment" in status
    assert "no recurrent language model" in client.predict("The film", "greedy", 5, 0, api_name="/generate")[0]
    assert "no encoder language model" in client.predict("a <mask> film", api_name="/fill_mask")[0]
    assert "transfer_gap" in client.predict(api_name="/results")[0]


@pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
)
def test_browser_switches_tabs_and_classifies(apps, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = apps["full"]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 90)

        def body(d):
            return d.find_element(By.TAG_NAME, "body").text

        def visible(css, text):
            return wait.until(
                lambda d: next(
                    (e for e in d.find_elements(By.CSS_SELECTOR, css) if e.text.strip() == text and e.is_displayed()),
                    None,
                )
            )

        for tab in ("Generate", "Fill-mask", "Inside the model", "Results", "Classify"):
            # a script click: gradio's loading overlay may cover the tab bar for a moment after the page loads
            driver.execute_script("arguments[0].click()", visible("[role=tab]", tab))
            wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "[role=tab][aria-selected=true]").text.strip() == tab)
            if tab == "Results":  # filled on page load from the run folder
                wait.until(lambda d: "sst2_sentence" in body(d))
        driver.execute_script("arguments[0].click()", driver.find_element(By.ID, "classify-submit"))
        wait.until(lambda d: "P(positive)" in body(d) and "scratch" in body(d))
        text = body(driver)
        table = text[text.index("P(positive)") :]  # the predictions table, below the form
        assert all(f"{family}\npretrained" in table or f"{family} pretrained" in table for family in FAMILIES), table
        assert "positive" in table.replace("P(positive)", "") or "negative" in table.replace("P(negative)", "")
        shot = tmp_path / "demo-classify.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("SEQLAB_DEMO_SCREENSHOT"):  # how docs/demo.png is made (README)
            shutil.copyfile(shot, os.environ["SEQLAB_DEMO_SCREENSHOT"])
    finally:
        driver.quit()


def test_space_dry_run_starts_without_seqlab(run_dir, tmp_path, tokenizer):
    space = tmp_path / "space"
    out = subprocess.run(
        [
            sys.executable,
            "scripts/push_space.py",
            "--run_dir",
            str(run_dir),
            "--repo_id",
            "me/demo",
            "--dry_run_dir",
            str(space),
        ],
        cwd=REPO,
        env=app_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    readme = (space / "README.md").read_text()
    header = readme.split("---")[1]
    assert "sdk: gradio" in header and "app_file: app.py" in header and "sdk_version:" in header
    requirements = (space / "requirements.txt").read_text().split()
    assert all("==" in r and "+" not in r for r in requirements) and any(r.startswith("gradio==") for r in requirements)
    assert (space / "run" / "classifiers" / "lstm" / "scratch" / "n40" / "modeling_recurrent.py").is_file()
    assert not list(space.rglob("*.jsonl")) and not list(space.rglob("checkpoints"))

    # `-S`: no site module, so no .pth file runs (seqlab's editable install is one); the packages the
    # requirements name come from site-packages on PYTHONPATH, and the working directory is the Space folder
    site_packages = sysconfig.get_paths()["purelib"]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYTHONPATH": site_packages,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    probe = subprocess.run(
        [sys.executable, "-S", "-c", "import gradio, transformers\nimport seqlab"],
        cwd=space,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 1 and "No module named 'seqlab'" in probe.stderr, probe.stderr[-2000:]
    port = free_port()
    process = start(
        [sys.executable, "-S", "app.py"], port, space, {**env, "GRADIO_SERVER_PORT": str(port)}, tmp_path / "space.log"
    )
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path))
        status, table = client.predict("a fine film", "40", api_name="/classify")
        assert len(rows(table)) == 6, status
        status, lstm, decoder, speed = client.predict("The film", "greedy", 4, 0, api_name="/generate")
        assert len(rows(speed)) == 2, status
    finally:
        stop(process)
    # the models ran on the folder's own code, copied into the private HF_HOME by trust_remote_code
    assert list((tmp_path / "hf" / "modules" / "transformers_modules").rglob("modeling_recurrent.py"))
    assert torch.__version__  # the same interpreter, nothing installed for the test


def shown(root: Path) -> dict:
    """What the app reads from a run folder: each model's config, each kept classifier's record, the results."""
    run = RunFolder.read(root)
    return {
        "language models": [(m.name, m.kind, m.title, m.config) for m in run.language_models],
        "classifiers": [(c.family, c.arm, c.budget, c.kept) for c in run.classifiers],
        "results": {name: path.read_bytes() for name, path in run.results_files().items()},
        "model files": {  # what a model loads with (the Hub export whitelist, no card) and kept.json
            str(path.relative_to(root)): path.read_bytes()
            for path in sorted(root.glob("*/**/*"))
            if path.is_file() and path.name != "README.md" and (is_whitelisted(path.name) or path.name == "kept.json")
        },
    }


def test_space_from_a_clean_run_shows_the_same(run_dir, tmp_path, caplog):
    """Nothing of a clean run folder is left out: every model file and result the app reads is the same."""
    files = write_space(run_dir, tmp_path / "space")
    original, space = shown(run_dir), shown(tmp_path / "space" / "run")
    assert space["language models"] == original["language models"]
    assert space["classifiers"] == original["classifiers"] and space["results"] == original["results"]
    assert space["model files"] == original["model files"]  # byte for byte: nothing was left out
    assert "Space: left out keys" not in caplog.text
    assert not [f for f in files if f.endswith(("report.md", ".jsonl"))]  # the app never shows them


SECRET = "/home/alice/private/customer_emails.tsv"


def test_space_leaves_out_keys_no_seqlab_file_defines(run_dir, tmp_path, caplog):
    """Keys planted in config.json, tokenizer_config.json and kept.json are dropped (one warning names them),
    and report.md, whose Setup records local paths, is not published."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    lstm, cell = run / "pretrain" / "lstm", run / "classifiers" / "decoder" / "pretrained" / "n40"
    planted = {
        lstm / "config.json": {"data_file": SECRET},
        cell / "tokenizer_config.json": {"hf_token": "hf_abcdefgh", "cache_dir": SECRET},
        cell / "kept.json": {"train_file": SECRET},
    }
    for path, keys in planted.items():
        path.write_text(json.dumps({**json.loads(path.read_text()), **keys}))
    (run / "report.md").write_text(f"- **command**: transfer_gap.py --output_dir {SECRET}\n")
    write_space(run, tmp_path / "space")
    space = tmp_path / "space" / "run"
    for path in planted:
        original = json.loads((run_dir / path.relative_to(run)).read_text())
        assert json.loads((space / path.relative_to(run)).read_text()) == original
    assert not (space / "report.md").exists()
    assert not [p for p in (tmp_path / "space").rglob("*") if p.is_file() and SECRET in p.read_text(errors="replace")]
    assert {k: v for k, v in shown(space).items() if k != "model files"} == {
        k: v for k, v in shown(run_dir).items() if k != "model files"
    }
    assert (
        "Space: left out keys that the models' config, tokenizer and kept.json do not define: "
        "run/pretrain/lstm/config.json: data_file; "
        "run/classifiers/decoder/pretrained/n40/tokenizer_config.json: hf_token, cache_dir; "
        "run/classifiers/decoder/pretrained/n40/kept.json: train_file"
    ) in caplog.text


def test_space_refuses_a_local_path_the_run_names(run_dir, tmp_path):
    """A path that results.jsonl names (a model_config, pretrained_from) and a published file repeats, or the
    run folder's own path in a key the model defines (a label), refuses the Space; nothing is written."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    records[0]["model_config"] = SECRET
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "summary.md").write_text((run / "summary.md").read_text() + f"\nmodel: {SECRET}\n")
    message = (
        f"Space refused: README.md would publish the local path '{SECRET}' (named by the run folder's "
        "results.jsonl, experiment.yaml or a model's recipe or metrics); nothing was written. Remove it from the "
        f"file of {run} it comes from (README.md embeds summary.md), or show the run with scripts/demo.py."
    )
    with pytest.raises(SeqlabUsageError) as refused:
        write_space(run, tmp_path / "space")
    assert str(refused.value) == message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no Space, no staging folder left behind

    shutil.copyfile(run_dir / "summary.md", run / "summary.md")
    config_path = run / "classifiers" / "lstm" / "scratch" / "n40" / "config.json"
    config = json.loads(config_path.read_text())
    config["id2label"]["1"] = f"{run.resolve()}/labels.tsv"
    config_path.write_text(json.dumps(config))
    with pytest.raises(SeqlabUsageError) as refused:
        write_space(run, tmp_path / "space")
    assert str(refused.value).startswith(
        f"Space refused: run/classifiers/lstm/scratch/n40/config.json would publish the local path '{run.resolve()}' "
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
