"""Pretraining with two real CPU processes (gloo): different data shards, identical final weights.

`accelerate launch --num_processes 2 --cpu` would silently run one process; `--multi_gpu` on a
machine without GPUs starts two ranks, and seqlab's Accelerator then joins them over gloo.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from launch_helpers import launch_env, two_process_command

pytestmark = pytest.mark.slow

STEPS, BATCH, LENGTH = 6, 4, 32


def test_two_cpu_processes_see_different_shards_and_end_identical(tokenizer, tmp_path, repo_root):
    model_yaml = tmp_path / "decoder.yaml"
    model_yaml.write_text(
        yaml.safe_dump(
            {
                "family": "decoder",
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 64,
                "max_position_embeddings": 64,
            }
        )
    )
    out = tmp_path / "run"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model_config": str(model_yaml),
                "tokenizer_path": tokenizer.saved_folder,
                "datasets": ["tinyshakespeare"],
                "max_seq_length": LENGTH,
                "max_corpus_tokens": 12000,
                "per_device_train_batch_size": BATCH,
                "max_steps": STEPS,
                "logging_steps": 2,
                "eval_steps": 3,
                "save_steps": 3,
                "output_dir": str(out),
                "seed": 11,
            }
        )
    )
    env = launch_env(repo_root, batch_log_steps=STEPS)  # each process logs its batches and weights digest
    result = subprocess.run(
        two_process_command(repo_root / "scripts" / "pretrain.py", "--config", str(recipe)),
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_processes"] == 2
    assert metrics["tokens_seen"] == STEPS * 2 * BATCH * LENGTH  # counted over both processes
    # gather_for_metrics drops the examples repeated to even out the last batch: every block counts once.
    assert metrics["eval_blocks"] % (2 * BATCH) != 0
    assert metrics["eval_tokens"] == metrics["eval_blocks"] * (LENGTH - 1)

    batches = {}
    for rank in (0, 1):
        lines = (out / "debug" / f"batches-rank{rank}.jsonl").read_text().splitlines()
        batches[rank] = [json.loads(line) for line in lines]
        assert [b["step"] for b in batches[rank]] == list(range(STEPS))
    for first, second in zip(batches[0], batches[1]):
        rows0 = {tuple(row) for row in first["input_ids"]}
        rows1 = {tuple(row) for row in second["input_ids"]}
        assert rows0.isdisjoint(rows1)  # each process trained on its own shard

    digests = [(out / "debug" / f"weights-rank{rank}.sha256").read_text() for rank in (0, 1)]
    assert digests[0] == digests[1]  # DDP kept the replicas identical
    checkpoint = out / "checkpoints" / f"step-{STEPS}"
    assert (checkpoint / "random_states_0.pkl").is_file() and (checkpoint / "random_states_1.pkl").is_file()
    assert (out / "model.safetensors").is_file()
