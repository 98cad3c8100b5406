"""Turn an experiment's output folder into a Hugging Face Space that runs the demo by itself.

The Space folder holds ``app.py``, the demo's modules as the package ``seqlab_demo`` (they import nothing from
seqlab), ``run/`` (the language models, the kept classifiers and the results, each model with its own
modeling code for ``trust_remote_code``), a pinned ``requirements.txt`` and a README whose YAML header is the
Space's configuration. ``python app.py`` in that folder starts the demo where seqlab is not installed.

Privacy, as in the Hub export (seqlab.hub.export): each model's config.json and tokenizer files and each
kept.json keep only the keys seqlab and transformers define (one warning names what was left out), the run's
report.md stays out (the app never shows it; its Setup records the command line and config path), and a last
check refuses the Space if any file still holds a local path the run folder names.
"""

import logging
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

from ..errors import SeqlabUsageError
from ..experiment.keep import KEPT_FILE, KEPT_KEYS
from ..experiment.report import read_results
from ..files import publish_staged
from ..hub.export import copy_clean_model_files, find_local_path, is_whitelisted, local_paths, paths_named_by
from .runfolder import PLOTS, RunFolder

logger = logging.getLogger(__name__)

DEMO_MODULES = ("__init__.py", "runfolder.py", "inference.py", "plots.py", "app.py")
# what the Space installs besides the standard library: the demo's imports and what they load with
REQUIREMENTS = (
    "gradio",
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "huggingface_hub",
    "numpy",
    "pandas",
    "matplotlib",
)
RESULT_FILES = ("summary.md", "summary.csv", *PLOTS)  # what the Results tab shows (RunFolder.results_files)

APP = '''"""seqlab demo: LSTM vs Transformers side by side (a Hugging Face Space written by scripts/push_space.py)."""

from pathlib import Path

from seqlab_demo.app import launch

# host and port: gradio's defaults, or GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (set by Spaces)
launch(Path(__file__).resolve().parent / "run", host=None)
'''

README = """---
title: seqlab - LSTM vs Transformers
emoji: 🔁
colorFrom: indigo
colorTo: yellow
sdk: gradio
sdk_version: {gradio}
python_version: "{python}"
app_file: app.py
pinned: false
license: apache-2.0
short_description: An LSTM, a GPT-style decoder and a BERT-style encoder, side by side
tags:
  - seqlab
  - lstm
  - transformers
  - transfer-learning
---

# seqlab: LSTM vs Transformers, side by side

Three small language models trained by seqlab on the same tokens: {models}.
Each was fine-tuned on {task} from its pretrained weights and from scratch; the demo shows the classifier each
(family, arm, label budget) cell kept: the learning rate the experiment selected on its dev set, and at that
rate the seed with the best dev score.

- **Classify**: every kept classifier on your sentence, with probabilities.
- **Generate**: the recurrent model's and the decoder's continuations, greedy or sampled, with tokens/s (cached).
- **Fill-mask**: the encoder fills in `<mask>`.
- **Inside the model**: the gradient of the last token's loss with respect to each earlier input (how far back
  each family looks), the decoder's attention map and the recurrent hidden-state norms.
- **Results**: the experiment's table and plots.

The models load with `trust_remote_code=True`: each folder under `run/` carries its own modeling code.
Run it locally with `pip install -r requirements.txt && python app.py`.

## Results of the experiment

{summary}
"""


def _pinned(name: str) -> str:
    try:
        installed = version(name)
    except PackageNotFoundError as error:
        raise SeqlabUsageError(
            f'{name} is not installed, so the Space cannot pin it: pip install -e ".[demo]"'
        ) from error
    return f"{name}=={installed.split('+')[0]}"  # torch 2.13.0+cpu -> 2.13.0: the local tag is not on PyPI


def _copy_model(source: Path, target: Path) -> dict[str, list[str]]:
    """The model's loadable files and kept.json, cleaned as the Hub export cleans them; {file: keys dropped}."""
    if not any(p.is_file() and is_whitelisted(p.name) for p in source.glob("modeling_*")):
        raise SeqlabUsageError(
            f"{source} carries no modeling_*.py, so it cannot load without seqlab: re-save it with "
            "seqlab's save_pretrained (every seqlab training run does)."
        )
    return copy_clean_model_files(source, target, {KEPT_FILE: KEPT_KEYS})


def _copy_models(run: RunFolder, staging: Path) -> None:
    dropped = []
    for model in run.language_models:
        target = Path("run", "pretrain", model.name)
        dropped += [(target / name, keys) for name, keys in _copy_model(model.path, staging / target).items()]
    for classifier in run.classifiers:
        target = Path("run", "classifiers", classifier.family, classifier.arm, f"n{classifier.budget}")
        dropped += [(target / name, keys) for name, keys in _copy_model(classifier.path, staging / target).items()]
    if dropped:
        listed = "; ".join(f"{path.as_posix()}: {', '.join(keys)}" for path, keys in dropped)
        logger.warning(
            "Space: left out keys that the models' config, tokenizer and kept.json do not define: %s", listed
        )


def _run_local_paths(run: RunFolder) -> set[str]:
    """The local paths the run folder names: its own and its models' (with their recipes and metrics), and the
    path-like strings of experiment.yaml and results.jsonl (a run_id is a seqlab id, its task a value of its own)."""
    records = [{k: v for k, v in r.items() if k != "run_id"} for r in read_results(run.root / "results.jsonl")]
    experiment = run.root / "experiment.yaml"
    recipe = yaml.safe_load(experiment.read_text(encoding="utf-8")) if experiment.is_file() else None
    paths = paths_named_by([records, recipe]) | {str(run.root.resolve()), str(run.root.absolute())}
    for model in [*run.language_models, *run.classifiers]:
        paths |= local_paths(model.path)
    return paths


def _refuse_local_paths(run: RunFolder, staging: Path) -> None:
    found = find_local_path(staging, _run_local_paths(run))
    if found:
        raise SeqlabUsageError(
            f"Space refused: {found[0]} would publish the local path {found[1]!r} (named by the run folder's "
            "results.jsonl, experiment.yaml or a model's recipe or metrics); nothing was written. Remove it from the "
            f"file of {run.root} it comes from (README.md embeds summary.md), or show the run with scripts/demo.py."
        )


def write_space(run_dir: str | Path, output_dir: str | Path) -> list[str]:
    """Write the Space for ``run_dir`` into ``output_dir`` (new or empty); returns the files written."""
    import sys

    run_dir, output_dir = Path(run_dir), Path(output_dir)
    if not run_dir.is_dir():
        raise SeqlabUsageError(f"--run_dir {run_dir} does not exist: pass the --output_dir of scripts/transfer_gap.py.")
    run = RunFolder.read(run_dir)
    kinds = {m.kind for m in run.language_models}
    missing = [k for k in ("recurrent", "decoder", "encoder") if k not in kinds]
    if missing or not run.classifiers:
        what = ", ".join([f"a {k} language model" for k in missing] + ([] if run.classifiers else ["kept classifiers"]))
        raise SeqlabUsageError(f"{run_dir} lacks {what}: {run.experiment_command().strip('`')} writes them.")
    if output_dir.exists() and any(output_dir.iterdir()):
        raise SeqlabUsageError(f"{output_dir} exists and is not empty: choose a new folder for the Space.")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    with publish_staged(staging, output_dir):
        package = staging / "seqlab_demo"
        package.mkdir()
        for name in DEMO_MODULES:
            shutil.copy2(Path(__file__).parent / name, package / name)
        _copy_models(run, staging)
        for name in RESULT_FILES:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, staging / "run" / name)
        (staging / "app.py").write_text(APP, encoding="utf-8")
        (staging / "requirements.txt").write_text("\n".join(_pinned(n) for n in REQUIREMENTS) + "\n", encoding="utf-8")
        summary = run_dir / "summary.md"
        task = next((c.kept["run_id"].split("/")[0] for c in run.classifiers if "run_id" in c.kept), "the task")
        (staging / "README.md").write_text(
            README.format(
                gradio=version("gradio"),
                python=f"{sys.version_info.major}.{sys.version_info.minor}",
                models=", ".join(m.title for m in run.language_models),
                task=task,
                summary=summary.read_text(encoding="utf-8")
                if summary.is_file()
                else "(no summary.md in the run folder)",
            ),
            encoding="utf-8",
        )
        _refuse_local_paths(run, staging)
    return sorted(str(p.relative_to(output_dir)) for p in output_dir.rglob("*") if p.is_file())
