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
    return _run_without_seqlab(_SCRIPT, work, str(folder), auto_name, str(work / "batch.pt"))


def _run_without_seqlab(script: str, work: Path, *args: str):
    """Run `script` in a fresh interpreter (no PYTHONPATH, cwd `work`) and load the tensors it saved."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", script, *args, str(work / "out.pt")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=work,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(work / "out.pt", weights_only=True)


_GENERATE_SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    sys.modules["seqlab"] = None  # `import seqlab` now fails: only the folder's own code may be used
    # a deprecated transformers name used by the folder's own code is an error here too
    warnings.filterwarnings("error", category=FutureWarning, module="transformers_modules")
    import torch, transformers
    folder = sys.argv[1]
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    module = type(model).__module__
    assert module.startswith("transformers_modules"), module
    request = torch.load(sys.argv[2], weights_only=True)
    results = {"transformers": transformers.__version__}
    for use_cache in (True, False):
        lengths = []
        def count(module, args, kwargs):
            ids = kwargs.get("input_ids")
            lengths.append(ids.shape[1] if ids is not None else kwargs["inputs_embeds"].shape[1])
        handle = model.register_forward_pre_hook(count, with_kwargs=True)
        out = model.generate(**request["inputs"], **request["kwargs"], use_cache=use_cache,
                             output_logits=True, return_dict_in_generate=True)
        handle.remove()
        results[use_cache] = {"sequences": out.sequences, "logits": torch.stack(out.logits), "lengths": lengths}
    torch.save(results, sys.argv[3])
    """
)


def generate_without_seqlab(folder: Path, inputs: dict, kwargs: dict) -> dict:
    """Greedy (or any) `generate` of the folder's own code, with and without the cache, in a fresh process.

    Returns {True: ..., False: ...} (use_cache) with the sequences, the stacked step logits and the input length
    of every forward call, plus the transformers version that ran it.
    """
    work = Path(folder).parent / f"{Path(folder).name}-generate"
    work.mkdir(exist_ok=True)
    torch.save({"inputs": inputs, "kwargs": kwargs}, work / "request.pt")
    return _run_without_seqlab(_GENERATE_SCRIPT, work, str(folder), str(work / "request.pt"))
