"""Kill -9 a pretraining run at random moments; `--resume_from_checkpoint latest` must always work.

One run is killed ten times, each time at a seeded random moment: right after a chosen optimizer
step (so inside the next step), while the files of a checkpoint are written, or while an old
checkpoint is pruned. The killed runs are slowed down by wrapping their file writers and backward
passes (the computation is unchanged), so that the kills land where they are aimed. After every
kill each ``checkpoints/step-N`` folder must be complete and loadable (no "latest" is ever
corrupt), and the next start continues with ``--resume_from_checkpoint latest``, also when the
first kill came before any checkpoint existed. The final weights must equal an uninterrupted run's
bit for bit (CPU, one thread: training is deterministic), and the training log must read as if
the run had never stopped.
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from seqlab.training.checkpointing import (
    OPTIMIZER_FILE,
    PROGRESS_FILE,
    check_checkpoint,
    list_checkpoints,
    load_progress,
    safe_load,
)

pytestmark = pytest.mark.slow

MAX_STEPS, SAVE_STEPS, KILLS = 32, 4, 10
# The killed runs are slowed down (their computation is unchanged) so that the kills land where aimed:
SAVE_FILE_DELAY = 0.08  # seconds before each file of a checkpoint is written
BACKWARD_DELAY = 0.01  # seconds before each backward pass: a step (2 micro-batches) takes over 20 ms
STEP_KILL_WINDOW = 2 * BACKWARD_DELAY  # inside the step after the target step
FILES_KILL_WINDOW = 4 * SAVE_FILE_DELAY  # from the staging folder's creation: four slowed files
PRUNING_KILL_WINDOW = SAVE_FILE_DELAY  # from the oldest checkpoint's rename to .trash-...: its slowed deletion

# A fork server: it imports the heavy libraries once and forks one child per run, and each child runs
# scripts/pretrain.py unchanged (only slowed: Accelerate's and torch's file writers and the backward
# pass). The test kills the children with SIGKILL; the server reaps them and reports their exit status.
FORK_SERVER = """
import json, os, runpy, shutil, signal, sys, time, traceback
import accelerate, accelerate.checkpointing, datasets, torch, transformers
import seqlab.training

script = sys.argv[1]
real_save, real_torch_save = accelerate.checkpointing.save, torch.save


def slowed(write, delay):
    def wrapper(*args, **kwargs):
        time.sleep(delay)
        return write(*args, **kwargs)
    return wrapper


for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        # Ctrl-C raises KeyboardInterrupt, as in a terminal, even when the suite itself was started as a
        # background job (which starts with SIGINT ignored, and Python then installs no handler)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.dup2(os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND), 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        if request["save_delay"]:
            accelerate.checkpointing.save = slowed(real_save, request["save_delay"])  # model and optimizer
            torch.save = slowed(real_torch_save, request["save_delay"])  # random states and the schedule
            shutil.rmtree = slowed(shutil.rmtree, 2 * request["save_delay"])  # pruning old checkpoints
        if request["backward_delay"]:
            accelerate.Accelerator.backward = slowed(accelerate.Accelerator.backward, request["backward_delay"])
        sys.argv = [script] + request["argv"]
        code = 0
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stderr.flush()
        os._exit(code)
    print(pid, flush=True)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


class Runs:
    """Starts pretraining runs through the fork server and reports how they ended."""

    def __init__(self, server: subprocess.Popen, recipe: Path):
        self.server, self.recipe = server, recipe
        self.unread = b""

    def start(self, output_dir: Path, *extra: str, slowed: bool = False) -> int:
        request = {
            "argv": ["--config", str(self.recipe), "--output_dir", str(output_dir), *extra],
            "save_delay": SAVE_FILE_DELAY if slowed else 0,
            "backward_delay": BACKWARD_DELAY if slowed else 0,
            "stderr": str(output_dir.parent / f"{output_dir.name}-stderr.txt"),
        }
        self.server.stdin.write(json.dumps(request).encode() + b"\n")
        self.server.stdin.flush()
        return int(self._read_line(30))

    def wait(self, timeout: float) -> int:
        """The exit status of the run started last (negative: killed by that signal)."""
        return int(self._read_line(timeout))

    def _read_line(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.unread:  # unbuffered reads: select() must see every line
            ready, _, _ = select.select([self.server.stdout], [], [], max(deadline - time.monotonic(), 0))
            assert ready, "the fork server did not answer in time"
            chunk = os.read(self.server.stdout.fileno(), 4096)
            assert chunk, "the fork server exited"
            self.unread += chunk
        line, _, self.unread = self.unread.partition(b"\n")
        return line.decode()


@pytest.fixture(scope="module")
def runs(tokenizer, tmp_path_factory, repo_root):
    folder = tmp_path_factory.mktemp("kill")
    server_file = folder / "fork_server.py"
    server_file.write_text(FORK_SERVER)
    model_yaml = folder / "decoder.yaml"
    model_yaml.write_text(
        yaml.safe_dump(
            {
                "family": "decoder",
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 64,
                "max_position_embeddings": 64,  # dropout 0.1: the random states matter
            }
        )
    )
    recipe = folder / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model_config": str(model_yaml),
                "tokenizer_path": tokenizer.saved_folder,
                "datasets": ["tinyshakespeare"],
                "max_seq_length": 32,
                "max_corpus_tokens": 4000,
                "validation_fraction": 0.05,
                "per_device_train_batch_size": 4,
                "gradient_accumulation_steps": 2,  # about 14 steps an epoch: 32 steps
                # cross two epoch boundaries
                "max_steps": MAX_STEPS,
                "save_steps": SAVE_STEPS,
                "save_total_limit": 2,
                "logging_steps": 1,
                "eval_steps": None,
                "max_eval_batches": 2,
                "learning_rate": 3e-3,
                "warmup_ratio": 0.1,
                "seed": 3,
            }
        )
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo_root / "src"), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    script = repo_root / "scripts" / "pretrain.py"
    server = subprocess.Popen(
        [sys.executable, str(server_file), str(script)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    yield Runs(server, recipe)
    server.stdin.close()
    server.wait(timeout=60)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _logged_steps(log: Path, since: float) -> list[int]:
    """Steps of train_log.jsonl, once the current process has rewritten it (resume truncates it)."""
    try:
        if log.stat().st_mtime < since:
            return []
        lines = log.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    steps = []
    for line in lines:
        try:
            steps.append(json.loads(line)["step"])
        except (ValueError, KeyError):
            pass  # a line being written right now
    return steps


def _created_since(path: Path, since: float) -> bool:
    """True once ``path`` exists and was written by the current process (not left by a killed one)."""
    try:
        return path.stat().st_mtime >= since
    except FileNotFoundError:
        return False


def _wait_for(condition, pid: int, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if not _alive(pid):
            raise AssertionError(f"the run ended before {what}")
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def _assert_checkpoints_sound(output_dir: Path) -> list[int]:
    """Every step-N folder is complete and loads; returns the steps on disk."""
    folder = output_dir / "checkpoints"
    named = [p for p in folder.iterdir() if re.fullmatch(r"step-\d+", p.name)] if folder.is_dir() else []
    assert sorted(named) == sorted(list_checkpoints(output_dir)), "a step-N folder without progress.json"
    steps = []
    for checkpoint in list_checkpoints(output_dir):
        check_checkpoint(checkpoint)
        progress = load_progress(checkpoint)
        assert checkpoint.name == f"step-{progress.step}"
        assert load_file(str(checkpoint / "model.safetensors"))  # the whole file, not just its header
        assert safe_load(checkpoint / OPTIMIZER_FILE)["state"]
        steps.append(progress.step)
    return steps


def _kill_plan(rng: random.Random) -> list[tuple[str, int]]:
    """Ten (kind, step) targets in increasing order: kill inside the step after `step` (neither it nor
    the next one saves a checkpoint), while the files of the checkpoint of `step` are written, or
    while the oldest checkpoint is pruned after it. The first kill comes before any checkpoint exists."""
    saves = rng.sample(range(3 * SAVE_STEPS, MAX_STEPS, SAVE_STEPS), 5)  # from the third save on, one is pruned
    steps = rng.sample(range(SAVE_STEPS + 1, MAX_STEPS - 2, SAVE_STEPS), 4)
    pruned = rng.choice(saves)
    plan = [("pruning" if s == pruned else "files", s) for s in saves] + [("step", s) for s in steps]
    return [("step", 1)] + sorted(plan, key=lambda t: t[1])


def test_ten_kills_then_resume_latest_equals_an_uninterrupted_run(runs, tmp_path):
    reference = tmp_path / "reference"
    runs.start(reference)
    assert runs.wait(timeout=180) == 0, (tmp_path / "reference-stderr.txt").read_text()[-3000:]

    rng = random.Random(20261122)
    run = tmp_path / "killed"
    landed = []
    for number, (kind, target) in enumerate(_kill_plan(rng)):
        started = time.time()
        pid = runs.start(run, *(["--resume_from_checkpoint", "latest"] if number else []), slowed=True)
        if kind == "step":
            _wait_for(
                lambda: max(_logged_steps(run / "train_log.jsonl", started), default=0) >= target, pid, f"step {target}"
            )
            time.sleep(rng.uniform(0.0, STEP_KILL_WINDOW))
        elif kind == "files":
            staging = run / "checkpoints" / f".tmp-step-{target}"
            _wait_for(lambda: _created_since(staging, started), pid, f"the checkpoint of step {target}")
            time.sleep(rng.uniform(0.0, FILES_KILL_WINDOW))
        else:
            final = run / "checkpoints" / f"step-{target}"
            _wait_for(
                lambda: _created_since(final, started) and any(final.parent.glob(".trash-*")),
                pid,
                f"the pruning after the checkpoint of step {target}",
            )
            time.sleep(rng.uniform(0.0, PRUNING_KILL_WINDOW))
        os.kill(pid, signal.SIGKILL)  # no handler runs, nothing is cleaned up
        assert runs.wait(timeout=30) == -signal.SIGKILL
        leftovers = sorted((run / "checkpoints").glob(".*")) if (run / "checkpoints").is_dir() else []
        written = [f"{p.name}: {', '.join(sorted(f.name for f in p.iterdir())) or 'empty'}" for p in leftovers]
        where = (
            "checkpoint pruning"
            if any(p.name.startswith(".trash") for p in leftovers)
            else "checkpoint write"
            if leftovers
            else "training step"
        )
        landed.append((kind, target, where, _assert_checkpoints_sound(run), written))

    runs.start(run, "--resume_from_checkpoint", "latest", slowed=True)
    assert runs.wait(timeout=180) == 0, (tmp_path / "killed-stderr.txt").read_text()[-3000:]
    print("\nkills (kind, target step, landed in, checkpoints on disk, partial folders):", *landed, sep="\n  ")
    assert len(landed) >= KILLS
    assert landed[0][3] == []  # the first restart had no checkpoint to resume and started over
    assert sum(1 for entry in landed if entry[2].startswith("checkpoint")) >= 3
    assert any(entry[2] == "checkpoint pruning" for entry in landed)
    assert sum(1 for entry in landed if entry[2] == "training step") >= 3

    expected, actual = load_file(str(reference / "model.safetensors")), load_file(str(run / "model.safetensors"))
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    metrics, reference_metrics = (json.loads((folder / "metrics.json").read_text()) for folder in (run, reference))
    for key in ("step", "tokens_seen", "eval_loss"):
        assert metrics[key] == reference_metrics[key], key
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    reference_log = [json.loads(line) for line in (reference / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == list(range(1, MAX_STEPS + 1))  # no step twice, none missing
    assert [r["loss"] for r in log if "loss" in r] == [r["loss"] for r in reference_log if "loss" in r]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]  # leftovers cleaned up
    assert [p.name for p in list_checkpoints(run)] == [f"step-{MAX_STEPS - SAVE_STEPS}", f"step-{MAX_STEPS}"]
    assert json.loads((run / "checkpoints" / f"step-{MAX_STEPS}" / PROGRESS_FILE).read_text())["step"] == MAX_STEPS


def test_ctrl_c_prints_where_training_stopped_and_the_command_that_continues_it(runs, tmp_path):
    run = tmp_path / "interrupted"
    started = time.time()
    pid = runs.start(run, slowed=True)
    target = SAVE_STEPS + 2  # inside the run, after its first checkpoint
    _wait_for(lambda: max(_logged_steps(run / "train_log.jsonl", started), default=0) >= target, pid, f"step {target}")
    os.kill(pid, signal.SIGINT)  # what Ctrl-C sends
    assert runs.wait(timeout=60) == 130  # 128 + SIGINT, as shells report a job stopped by Ctrl-C
    stderr = (tmp_path / "interrupted-stderr.txt").read_text()
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    last = stderr.rstrip("\n").splitlines()[-1]
    match = re.fullmatch(
        rf"interrupted: training stopped at step (\d+) of {MAX_STEPS} in {re.escape(str(run))}; the last checkpoint "
        rf"is {re.escape(str(run))}/checkpoints/step-(\d+) \(step \2\), so steps \d+-\1 will be redone; continue with: "
        rf"python \S*pretrain.py --config \S+ --output_dir {re.escape(str(run))} --resume_from_checkpoint latest",
        last,
    )
    assert match, last
    assert int(match.group(1)) >= target and int(match.group(2)) % SAVE_STEPS == 0
    assert _assert_checkpoints_sound(run)[-1] == int(match.group(2))

    # the printed command continues the run to its end, each step logged once
    runs.start(run, "--resume_from_checkpoint", "latest")
    assert runs.wait(timeout=180) == 0, (tmp_path / "interrupted-stderr.txt").read_text()[-3000:]
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == list(range(1, MAX_STEPS + 1))
