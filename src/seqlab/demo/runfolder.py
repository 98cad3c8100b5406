"""What an experiment's output folder holds for the demo, and what to run when something is missing.

Layout (written by scripts/transfer_gap.py): ``pretrain/<family>/`` language models,
``classifiers/<family>/<arm>/n<budget>/`` kept classifiers (each with ``kept.json``), ``results.jsonl``,
``summary.md``/``summary.csv`` and the plots. Only files are read here: no model is loaded.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

KINDS = {"seqlab_recurrent": "recurrent", "seqlab_decoder": "decoder", "seqlab_encoder": "encoder"}
KIND_ORDER = ("recurrent", "decoder", "encoder")
ARM_ORDER = ("pretrained", "scratch", "ulmfit", "probe")
PLOTS = ("accuracy_vs_labels.png", "gap.png")


class DemoMessage(Exception):
    """A condition the user can fix (bad text, a missing model): shown as a message, not a traceback."""


@dataclass
class LanguageModel:
    name: str  # the experiment's family name, e.g. "lstm"
    kind: str  # recurrent, decoder or encoder
    path: Path
    config: dict

    @property
    def title(self) -> str:
        cell = self.config.get("cell_type")
        return f"{self.name} ({cell.upper()})" if self.kind == "recurrent" and cell else f"{self.name} ({self.kind})"


@dataclass
class Classifier:
    family: str
    arm: str
    budget: str  # "100", "1000" or "all", as in the folder name
    path: Path
    kept: dict


@dataclass
class RunFolder:
    root: Path
    language_models: list[LanguageModel] = field(default_factory=list)
    classifiers: list[Classifier] = field(default_factory=list)

    @classmethod
    def read(cls, root: str | Path) -> "RunFolder":
        root = Path(root)
        folder = cls(root)
        for path in sorted((root / "pretrain").glob("*/config.json")):
            config = json.loads(path.read_text(encoding="utf-8"))
            kind = KINDS.get(config.get("model_type"))
            if kind and _has_weights(path.parent):
                folder.language_models.append(LanguageModel(path.parent.name, kind, path.parent, config))
        folder.language_models.sort(key=lambda m: (KIND_ORDER.index(m.kind), m.name))
        for path in sorted((root / "classifiers").glob("*/*/n*/kept.json")):
            if _has_weights(path.parent):
                family, arm = path.parent.parent.parent.name, path.parent.parent.name
                kept = json.loads(path.read_text(encoding="utf-8"))
                folder.classifiers.append(Classifier(family, arm, path.parent.name[1:], path.parent, kept))
        return folder

    # --- what each tab needs, or the message that says how to get it
    def experiment_command(self) -> str:
        if (self.root / "experiment.yaml").is_file():
            return (
                f"`python scripts/transfer_gap.py --config {self.root / 'experiment.yaml'} "
                f"--output_dir {self.root}` (from the seqlab repository)"
            )
        return "`make experiment` (from the seqlab repository; it writes runs/transfer_gap_tiny)"

    def language_model(self, kind: str) -> LanguageModel:
        for model in self.language_models:
            if model.kind == kind:
                return model
        raise DemoMessage(
            f"{self.root} holds no {kind} language model under pretrain/: {self.experiment_command()} "
            "pretrains one per family."
        )

    def budgets(self) -> list[str]:
        found = {c.budget for c in self.classifiers}
        return sorted(found, key=lambda b: (b == "all", int(b) if b.isdigit() else 0))

    def classifiers_for(self, budget: str) -> list[Classifier]:
        if not self.classifiers:
            raise DemoMessage(
                f"{self.root} holds no kept classifiers (classifiers/<family>/<arm>/n<budget>/): rerun "
                f"{self.experiment_command()} with this seqlab; finished runs are reused and only each cell's "
                "dev-selected classifier is trained again."
            )
        chosen = [c for c in self.classifiers if c.budget == str(budget)]
        if not chosen:
            raise DemoMessage(
                f"no classifiers for a budget of {budget} labels; this run kept: {', '.join(self.budgets())}."
            )
        family_rank = {m.name: i for i, m in enumerate(self.language_models)}
        return sorted(
            chosen,
            key=lambda c: (
                family_rank.get(c.family, len(family_rank)),
                c.family,
                ARM_ORDER.index(c.arm) if c.arm in ARM_ORDER else len(ARM_ORDER),
            ),
        )

    def results_files(self) -> dict[str, Path]:
        if not (self.root / "summary.md").is_file():
            raise DemoMessage(f"{self.root} holds no results (summary.md): {self.experiment_command()} writes them.")
        names = ("summary.md", "summary.csv", *PLOTS)
        return {name: self.root / name for name in names if (self.root / name).is_file()}


def _has_weights(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()
