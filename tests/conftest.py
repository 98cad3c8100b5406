"""Test environment: offline, single-threaded, a private HF_HOME, the shared data beside the repo.

The environment variables are set before torch or transformers are imported (pytest imports this
file first): two threads beside a busy process made runs many times slower on 2-core machines.
"""

import os
import tempfile
from pathlib import Path

_HF_HOME = tempfile.mkdtemp(prefix="seqlab-hf-home-")
for key, value in {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}.items():
    os.environ.setdefault(key, value)
os.environ["HF_HOME"] = _HF_HOME  # remote code is copied into $HF_HOME/modules: keep it private

REPO_ROOT = Path(__file__).resolve().parents[1]
_DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
if "SEQLAB_DATA_DIR" not in os.environ and _DEFAULT_DATA_DIR.is_dir():
    os.environ["SEQLAB_DATA_DIR"] = str(_DEFAULT_DATA_DIR)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = os.environ.get("SEQLAB_DATA_DIR")
    if not path or not Path(path).is_dir():
        pytest.fail(
            "The shared datasets were not found: set SEQLAB_DATA_DIR to the folder described in "
            "../shared/data/README.md (CI runs with ../shared beside the repository)."
        )
    return Path(path)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory, data_dir):
    """A small byte-level BPE tokenizer trained once per session on real text (tinyshakespeare)."""
    from seqlab.tokenizer import train_tokenizer

    text = (data_dir / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()][:8000]
    tok = train_tokenizer(lines, vocab_size=512, kind="bpe")
    folder = tmp_path_factory.mktemp("tokenizer")
    tok.save_pretrained(folder)
    tok.saved_folder = str(folder)
    return tok
