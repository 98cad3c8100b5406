"""Fine-tuning a sequence classifier from a pretrained language model, or from scratch.

From a pretrained folder, ``AutoModelForSequenceClassification.from_pretrained`` keeps the body
(embeddings and layers) and drops the language-model head; a fresh classifier goes on top. From
``scratch`` the same configuration starts from random weights: the pair measures what pretraining
transfers. Strategies: ``full`` (train everything), ``freeze_body`` (a linear probe of the pretrained
features) and ``ulmfit`` (discriminative learning rates, slanted triangular schedule, gradual
unfreezing). The training examples are a stratified subset chosen by seed alone, so every
architecture sees the same ones.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SeqlabUsageError
from .args import FinetuningArgs, check_required
from .optim import GradualUnfreezing, freeze, slanted_triangular_schedule
from .pretraining import check_sequence_length
from .recipe import resolve_args, resolve_path
from .run import MAIN_EVAL, Job, Prepared, eval_batch_size, run_training, seeded_model
from .runtime import (
    build_model_config,
    check_config_overrides,
    check_weights_file,
    check_weights_fit_config,
    family_name_of_config,
    load_folder_config,
)

SCRATCH = "scratch"
_DEV = "\0dev"  # key of the dev set among the evaluation sets and scores (cannot clash with a file name)


def run_finetuning(recipe: FinetuningArgs | Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """Fine-tune a classifier as ``recipe`` says; returns the metrics also written to metrics.json.

    ``recipe`` is ``FinetuningArgs`` or a mapping of recipe keys whose ``config`` key (a YAML file) is loaded
    underneath; keyword ``overrides`` go on top.

    Keys of the result: ``eval_accuracy``, ``eval_f1`` (macro), ``eval_loss`` on ``eval_split``;
    ``eval_files``: ``{file name: {accuracy, f1, loss, examples}}`` for each ``eval_files`` entry; ``dev_accuracy``,
    ``dev_f1``, ``dev_loss`` with ``dev_examples``; and
    training facts (``train_loss``, ``num_train_examples``, ``step``, ...). Example::

        run_finetuning({"config": "configs/finetune/sst2-tiny.yaml"}, model_name_or_path="runs/decoder-tiny",
                       num_train_examples=100, seed=1, output_dir="runs/ft")
    """
    args = resolve_args(FinetuningArgs, recipe, overrides or None)
    return run_training(args, validate_finetuning_args, finetuning_job)


def validate_finetuning_args(args: FinetuningArgs) -> None:
    """Checks of fine-tuning's own keys that need no data, model or tokenizer (cheap; run first)."""
    check_required(args, ("model_name_or_path", "output_dir", "dataset"), hint="")
    if args.model_name_or_path == SCRATCH and not args.model_config:
        raise SeqlabUsageError(
            "--model_name_or_path scratch needs --model_config (a model YAML or a pretrained folder whose "
            "config to copy) and --tokenizer_path"
        )
    if args.max_train_tokens is not None:
        raise SeqlabUsageError("max_train_tokens is a pretraining budget; fine-tune with max_steps or num_train_epochs")
    if args.ulmfit_lr_decay < 1.0:
        raise SeqlabUsageError(
            f"ulmfit_lr_decay must be >= 1 (lower layers learn slower), got {args.ulmfit_lr_decay!r}"
        )


def finetuning_job(accelerator, args: FinetuningArgs) -> Job:
    """A classifier (pretrained body or scratch) on a stratified subset of the labelled training split."""
    from ..data import ClassificationCollator, tokenize_classification
    from .evaluation import cap_for_evaluation, evaluate_classification

    tokenizer = finetuning_tokenizer(args)
    data = labelled_data(accelerator, args)
    # the classifier head starts the same on every process and run
    family, model, loaded_body_tensors = seeded_model(
        args.seed, lambda: load_classifier(args, tokenizer, data.num_labels, data.id2label)
    )
    check_sequence_length(family, model.config, args.max_length, key="max_length")
    frozen = freeze(model.base_model.parameters()) if args.strategy == "freeze_body" else 0
    eval_set = cap_for_evaluation(
        data.eval_set, args.max_eval_batches, eval_batch_size(args), accelerator.num_processes
    )
    eval_sets = {MAIN_EVAL: eval_set, **data.eval_files, **({} if data.dev_set is None else {_DEV: data.dev_set})}
    with accelerator.main_process_first():
        train_tokens = tokenize_classification(data.train_set, tokenizer, args.max_length)
        eval_tokens = {name: tokenize_classification(ds, tokenizer, args.max_length) for name, ds in eval_sets.items()}

    def evaluate(run: Prepared) -> dict[str, Any]:
        return evaluate_classification(run.accelerator, run.model, run.eval_loaders[MAIN_EVAL], data.num_labels)

    def final_evaluate(run: Prepared) -> dict[str, Any]:
        scores = evaluate(run)  # then each eval_files entry, then the dev set
        for name, loader in run.eval_loaders.items():
            if name != MAIN_EVAL:
                scores[name] = evaluate_classification(run.accelerator, run.model, loader, data.num_labels)
        return scores

    def scores_to_metrics(scores: dict[str, Any]) -> dict[str, Any]:
        metrics = {"eval_files": {name: scores.pop(name) for name in data.eval_files}}
        if _DEV in scores:
            metrics.update({f"dev_{key}": value for key, value in scores.pop(_DEV).items()})
        return {**metrics, **{f"eval_{key}": value for key, value in scores.items()}}

    return Job(
        model=model,
        tokenizer=tokenizer,
        train_set=train_tokens,
        collator=ClassificationCollator(pad_token_id=tokenizer.pad_token_id),
        evaluate=evaluate,
        final_evaluate=final_evaluate,
        eval_sets=eval_tokens,
        layer_lr_decay=args.ulmfit_lr_decay if args.strategy == "ulmfit" else None,
        schedule=_ulmfit_schedule(args) if args.strategy == "ulmfit" else None,
        facts={
            "family": family,
            "model_name_or_path": args.model_name_or_path,
            "pretrained": args.model_name_or_path != SCRATCH,
            "loaded_body_tensors": loaded_body_tensors,
            "strategy": args.strategy,
            "dataset": args.dataset,
            "num_labels": data.num_labels,
            "num_train_examples": len(data.train_set),
            "dev_examples": 0 if data.dev_set is None else len(data.dev_set),
            "seed": args.seed,
            "learning_rate": args.learning_rate,
            "frozen_parameters": frozen,
        },
        scores_to_metrics=scores_to_metrics,
    )


def _ulmfit_schedule(args: FinetuningArgs):
    """ULMFiT's slanted triangular schedule, and gradual unfreezing (one more layer group every
    ``ulmfit_unfreeze_steps``, default one epoch) before each optimizer step."""

    def schedule(optimizer, max_steps: int, epoch_steps: int):
        scheduler = slanted_triangular_schedule(
            optimizer.optimizer, max_steps, cut_frac=args.ulmfit_cut_frac, ratio=args.ulmfit_ratio
        )
        unfreezing = GradualUnfreezing(optimizer, args.ulmfit_unfreeze_steps or epoch_steps)
        return scheduler, unfreezing.drop_frozen_gradients

    return schedule


def finetuning_tokenizer(args: FinetuningArgs):
    """``tokenizer_path``, else the pretrained model's folder (else, from scratch, a model_config folder's);
    checked against a pretrained model's vocabulary before any data is read."""
    from ..tokenizer import check_vocab_compatible, load_tokenizer

    scratch = args.model_name_or_path == SCRATCH
    pretrained_config = None if scratch else check_pretrained_folder(args)[1]
    tokenizer_source = args.tokenizer_path or (None if scratch else args.model_name_or_path)
    if tokenizer_source is None:
        model_config = resolve_path(args.model_config, args)
        if not (model_config.is_dir() and (model_config / "tokenizer.json").is_file()):
            raise SeqlabUsageError("--model_name_or_path scratch needs --tokenizer_path (the tokenizer to train with)")
        tokenizer_source = str(model_config)
    tokenizer = load_tokenizer(resolve_path(tokenizer_source, args))
    if pretrained_config is not None:
        check_vocab_compatible(tokenizer, pretrained_config)
    return tokenizer


@dataclass
class LabelledData:
    """The rows of a fine-tuning run, checked: training subset, evaluation split, eval_files, dev set."""

    train_set: Any
    eval_set: Any
    eval_files: dict[str, Any]
    dev_set: Any | None
    num_labels: int
    id2label: dict[int, str]


def labelled_data(accelerator, args: FinetuningArgs) -> LabelledData:
    """Load and check the labelled rows; carve the dev set, then draw the stratified training subset."""
    from ..data import carve_dev_split, check_labels, infer_num_labels, key_label_names, stratified_subset

    taken: set[str] = set()
    with accelerator.main_process_first():  # one process writes the datasets caches, the others read them
        train_set = load_labelled(args.dataset, args.train_split, "dataset")
        eval_set = load_labelled(*evaluation_source(args), "eval_split" if eval_is_file(args) else "dataset")
        eval_files = {
            _eval_file_name(str(f), taken): load_labelled(str(resolve_path(f, args)), "train", "eval_file")
            for f in args.eval_files
        }
    names = key_label_names(args.dataset)
    try:
        num_labels = args.num_labels or (len(names) if names else infer_num_labels(train_set))
    except SeqlabUsageError as error:
        raise SeqlabUsageError(f"dataset {args.dataset!r} (split {args.train_split!r}): {error}") from None
    for what, dataset in [("training split", train_set), ("evaluation split", eval_set), *eval_files.items()]:
        try:
            check_labels(dataset, num_labels)
        except SeqlabUsageError as error:
            raise SeqlabUsageError(f"{what}: {error}") from None
    refuse_training_rows_as_evaluation(args)
    id2label = (
        {i: names[i] for i in range(num_labels)}
        if names and len(names) == num_labels
        else {i: f"LABEL_{i}" for i in range(num_labels)}
    )
    dev_set = None
    if args.dev_examples:  # before the budget, so label subsets never include a dev row
        train_set, dev_set = carve_dev_split(train_set, args.dev_examples, seed=args.dev_seed)
    if args.num_train_examples and args.num_train_examples > len(train_set) and dev_set is not None:
        raise SeqlabUsageError(
            f"num_train_examples={args.num_train_examples} is more than the {len(train_set)} training rows left "
            f"after the dev carve of {len(dev_set)}; ask for at most {len(train_set)} or null (all)"
        )
    train_set = stratified_subset(train_set, args.num_train_examples, seed=args.seed)
    return LabelledData(train_set, eval_set, eval_files, dev_set, num_labels, id2label)


def _columns_of(path: Path) -> list[str]:
    """The column names of a TSV/CSV header or of the first JSON line (for error messages)."""
    suffixes = [s.lower() for s in path.suffixes]
    opener = {".xz": lzma.open, ".gz": gzip.open}.get(suffixes[-1] if suffixes else "", open)
    with opener(path, "rt", encoding="utf-8") as handle:
        first = next((line for line in handle if line.strip()), "")
    if ".jsonl" in suffixes:
        try:
            record = json.loads(first)
        except json.JSONDecodeError:
            return []
        return list(record) if isinstance(record, dict) else []
    return [c.strip() for c in first.rstrip("\r\n").split("\t" if ".tsv" in suffixes else ",")]


def load_labelled(source: str, split: str, what: str):
    """A labelled dataset (text + label) from a key or file, or a usage error naming the columns seen."""
    from ..data import load_text_dataset

    dataset = load_text_dataset(source, split)
    if "label" not in dataset.column_names:
        path = Path(source)
        seen = ", ".join(_columns_of(path)) if path.is_file() else ", ".join(dataset.column_names)
        raise SeqlabUsageError(
            f"{what} {source!r} (split {split!r}) has no label column; columns seen: {seen}; name the label column "
            "'label' (or labels / sentiment) with integer classes"
        )
    return dataset


def eval_is_file(args: FinetuningArgs) -> bool:
    """``eval_split`` may name a labelled file of held-out rows (the evaluation split of a file dataset)."""
    value = args.eval_split
    return bool(value) and Path(value).suffix != "" and resolve_path(value, args).is_file()


def evaluation_source(args: FinetuningArgs) -> tuple[str, str]:
    """``(source, split)`` the evaluation split is read from."""
    if eval_is_file(args):
        return str(resolve_path(args.eval_split, args)), "train"
    return args.dataset, args.eval_split


def _rows_identity(source: str, split: str) -> tuple:
    from ..data import resolve_source

    resolved = resolve_source(source, split)
    where = tuple(os.path.realpath(f) for f in resolved.files) or (resolved.source, resolved.split)
    return where, resolved.carve


def refuse_training_rows_as_evaluation(args: FinetuningArgs) -> None:
    """A file dataset has no evaluation split of its own (nor has ``key:train``): reading 'validation' from it
    would score the very rows trained on and report them as validation accuracy. Refused, as ``datasets``
    refuses an unknown split; the held-out rows are named with ``--eval_split FILE``."""
    if _rows_identity(args.dataset, args.train_split) != _rows_identity(*evaluation_source(args)):
        return
    raise SeqlabUsageError(
        f"dataset {args.dataset!r} has no evaluation split of its own: evaluating on split "
        f"{args.eval_split!r} would score the training rows themselves; pass a labelled file of held-out rows "
        "as --eval_split DEV_FILE (e.g. dev.tsv), or a data key whose evaluation split is separate"
    )


def _eval_file_name(path: str, taken: set[str]) -> str:
    """metrics.json key of an --eval_file: its file name (with its folder when two files share a name)."""
    name = Path(path).name
    if name in taken:
        name = f"{Path(path).parent.name}/{name}"
    taken.add(name)
    return name


def _with_overrides(config, overrides: Mapping[str, Any]):
    """A copy of ``config`` with the recipe's ``model`` overrides, as ``from_pretrained`` will apply them."""
    import copy

    config = copy.deepcopy(config)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def load_classifier(args: FinetuningArgs, tokenizer, num_labels: int, id2label: dict[int, str]):
    """Return ``(family, model, loaded_body_tensors)``: the pretrained body with a fresh classification head,
    or (``scratch``) the same configuration with fresh weights everywhere."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as transformers_logging

    from ..models import FAMILIES
    from ..tokenizer import check_vocab_compatible

    label_kwargs = {"num_labels": num_labels, "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    if args.model_name_or_path == SCRATCH:
        family, config = build_model_config(args.model_config, args.model or {}, tokenizer, args, **label_kwargs)
        check_vocab_compatible(tokenizer, config)
        return family, FAMILIES[family].classifier_class(config), 0

    path, config, family = check_pretrained_folder(args)
    check_config_overrides(FAMILIES[family].config_class, args.model or {}, "the recipe's `model` overrides")
    check_vocab_compatible(tokenizer, config)
    check_weights_fit_config(
        path,
        FAMILIES[family].classifier_class,
        _with_overrides(config, args.model or {}),
        "model_name_or_path",
        f"{family} classifier",
    )
    # transformers reports the dropped LM head and the fresh classifier as a warning table; the
    # expected outcome is checked below instead (a body weight that did not load is an error).
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            str(path), **label_kwargs, **(args.model or {}), output_loading_info=True, use_safetensors=True
        )
    except (OSError, ValueError, RuntimeError, KeyError) as error:  # shapes of another config, damaged data
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SeqlabUsageError(
            f"the weights in {str(path)!r} do not load into a {family} classifier ({reason}); pass the folder of a "
            "seqlab language model saved with its own config.json"
        ) from None
    finally:
        transformers_logging.set_verbosity(verbosity)
    prefix = f"{model.base_model_prefix}."
    missing_body = [key for key in info["missing_keys"] if key.startswith(prefix)]
    if missing_body:
        raise SeqlabUsageError(
            f"the body weights of {str(path)!r} did not load ({len(missing_body)} missing, e.g. {missing_body[0]}); "
            "pass the folder of a seqlab language model of the same family"
        )
    # body tensors the config has no place for (config.json edited to fewer layers, say) would be dropped
    # silently and the run still recorded as pretrained; only the language-model head may be left out
    unused_body = [key for key in info["unexpected_keys"] if key.startswith(prefix)]
    if unused_body:
        raise SeqlabUsageError(
            f"the weights in {str(path)!r} hold {len(unused_body)} body tensors its config.json has no place for "
            f"(e.g. {unused_body[0]}): config.json does not describe these weights; restore the config.json saved "
            "with them"
        )
    loaded = sum(1 for key in model.state_dict() if key.startswith(prefix))
    damaged = [
        name
        for name, tensor in model.state_dict().items()
        if tensor.is_floating_point() and not torch.isfinite(tensor).all()
    ]
    if damaged:
        raise SeqlabUsageError(
            f"the weights in {str(path)!r} hold values that are not finite numbers ({len(damaged)} tensors, e.g. "
            f"{damaged[0]}); the file is damaged or the run that wrote it diverged: use an earlier checkpoint"
        )
    return family, model, loaded


def check_pretrained_folder(args: FinetuningArgs):
    """``(path, config, family)`` of ``model_name_or_path``, refused early when it is not a usable model
    folder: no or unreadable config.json, not a seqlab family, or missing/truncated safetensors weights."""
    path = resolve_path(args.model_name_or_path, args)
    if not path.is_dir():
        raise SeqlabUsageError(
            f"--model_name_or_path {args.model_name_or_path!r} is not a model folder (no such folder); pass the "
            "output_dir of a pretraining run, or 'scratch' with --model_config"
        )
    config = load_folder_config(path, "model_name_or_path")
    family = family_name_of_config(config)
    check_weights_file(path, "model_name_or_path")
    return path, config, family
