"""Two processes at batch B each equal one process at batch 2B: same examples, same weights.

Both runs use the same global batch (8 blocks a step), seed, schedule and data order. With
Accelerate's seedable sampler the single process's batch k holds exactly the blocks that the two
ranks hold in their batch k together; DDP averages the two ranks' mean-loss gradients, which (all
blocks have the same number of tokens) is the single process's mean-loss gradient. Dropout is off:
each rank draws its own dropout masks, so with dropout the two runs are equivalent in distribution
only.

Stated tolerance: after 6 AdamW steps every weight agrees within 1e-5 absolute + 1e-4 relative
(float32 sums in a different order; the largest difference observed is about 2e-6 for the decoder, 6e-8
for the LSTM), the logged training
losses within 1e-5 relative and the final evaluation loss within 1e-5 relative.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest
import torch
import yaml
from launch_helpers import launch_env, two_process_command
from safetensors.torch import load_file

from seqlab.training import run_pretraining
from seqlab.training.test_hooks import debug_hooks

pytestmark = pytest.mark.slow

STEPS, GLOBAL_BATCH, LENGTH = 6, 8, 32
ATOL, RTOL, LOSS_RTOL = 1e-5, 1e-4, 1e-5


def _batches(out, rank: int) -> list[Counter]:
    lines = (out / "debug" / f"batches-rank{rank}.jsonl").read_text().splitlines()
    return [Counter(tuple(row) for row in json.loads(line)["input_ids"]) for line in lines]


MODELS = {
    "decoder": {
        "family": "decoder",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    },
    # the LSTM's layers run as one multi-layer kernel call (torch.lstm with the layers' weights): DDP must still
    # see and average every layer's gradients
    "recurrent": {
        "family": "recurrent",
        "cell_type": "lstm",
        "embedding_size": 24,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "embedding_dropout_prob": 0.0,
        "hidden_dropout_prob": 0.0,
        "output_dropout_prob": 0.0,
    },
}


@pytest.mark.parametrize("family", sorted(MODELS))
def test_two_processes_equal_one_process_at_the_same_global_batch(tokenizer, tmp_path, repo_root, family):
    model_yaml = tmp_path / f"{family}.yaml"
    model_yaml.write_text(yaml.safe_dump(MODELS[family]))
    recipe = {
        "model_config": str(model_yaml),
        "tokenizer_path": tokenizer.saved_folder,
        "datasets": ["tinyshakespeare"],
        "max_seq_length": LENGTH,
        "max_corpus_tokens": 12000,
        "max_steps": STEPS,
        "logging_steps": 1,
        "eval_steps": None,
        "save_steps": None,
        "max_eval_batches": 4,
        "per_device_eval_batch_size": 8,
        "learning_rate": 3e-3,
        "warmup_ratio": 0.2,
        "seed": 21,
    }
    two = tmp_path / "two"
    config = tmp_path / "recipe.yaml"
    config.write_text(
        yaml.safe_dump({**recipe, "per_device_train_batch_size": GLOBAL_BATCH // 2, "output_dir": str(two)})
    )
    env = launch_env(repo_root, batch_log_steps=STEPS)  # each process logs its batches and weights digest
    launched = subprocess.Popen(
        two_process_command(repo_root / "scripts" / "pretrain.py", "--config", str(config)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    one = tmp_path / "one"  # meanwhile, the single process runs here
    with debug_hooks(debug_batch_log=STEPS):
        single = run_pretraining({**recipe, "per_device_train_batch_size": GLOBAL_BATCH, "output_dir": str(one)})
    _, stderr = launched.communicate(timeout=300)
    assert launched.returncode == 0, stderr[-3000:]
    double = json.loads((two / "metrics.json").read_text())

    assert (single["num_processes"], double["num_processes"]) == (1, 2)
    assert double["tokens_seen"] == single["tokens_seen"] == STEPS * GLOBAL_BATCH * LENGTH
    assert double["eval_blocks"] == single["eval_blocks"]

    # The same blocks in every step: rank 0 + rank 1 of the two-process run = the single process.
    single_batches, rank0, rank1 = _batches(one, 0), _batches(two, 0), _batches(two, 1)
    assert len(single_batches) == len(rank0) == len(rank1) == STEPS
    for step, (alone, first, second) in enumerate(zip(single_batches, rank0, rank1)):
        assert first + second == alone, f"step {step}: the two ranks trained on other blocks"

    expected, actual = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert expected.keys() == actual.keys()
    worst = max((actual[k] - expected[k]).abs().max().item() for k in expected)
    print(f"\nlargest weight difference, 2 processes vs 1: {worst:.3g}")
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=ATOL, rtol=RTOL, msg=name)

    losses = [
        [r["loss"] for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "loss" in r]
        for out in (one, two)
    ]
    assert len(losses[0]) == len(losses[1]) == STEPS
    assert losses[1] == pytest.approx(losses[0], rel=LOSS_RTOL)
    assert double["eval_loss"] == pytest.approx(single["eval_loss"], rel=LOSS_RTOL)
