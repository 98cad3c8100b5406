"""Load a saved folder with trust_remote_code=True in a fresh Python process where seqlab cannot be imported."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["seqlab"] = None  # `import seqlab` now fails: only the folder's own code may be used
    import torch, transformers
    folder, auto_name = sys.argv[1], sys.argv[2]
    model = getattr(transformers, auto_name).from_pretrained(folder, trust_remote_code=True).eval()
    module = type(model).__module__
    assert module.startswith("transformers_modules"), module
    batch = torch.load(sys.argv[3], weights_only=True)
    with torch.no_grad():
        out = model(**batch)
    logits = out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
    torch.save(logits, sys.argv[4])
    """
)


def load_without_seqlab(folder: Path, auto_name: str, batch: dict) -> torch.Tensor:
    """The logits (or last hidden state) the folder's own code computes for `batch`."""
    work = Path(folder).parent / f"{Path(folder).name}-remote"
    work.mkdir(exist_ok=True)
    torch.save(batch, work / "batch.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(folder), auto_name, str(work / "batch.pt"), str(work / "out.pt")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=work,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(work / "out.pt", weights_only=True)
