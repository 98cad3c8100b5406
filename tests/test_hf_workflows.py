"""The standard Hugging Face workflows, run unchanged on every family (issue 14).

`Trainer` fine-tuning a classifier (DataCollatorWithPadding, compute_metrics, evaluate / predict / save /
reload / resume), `Trainer` masked-LM and causal-LM training with the `run_mlm.py` / `run_clm.py` metrics,
a PEFT LoRA train -> save -> reload -> merge round trip, gradient (activation) checkpointing, and a folder
assembled by `Trainer.save_model` in `pipeline()`. Tiny models from `configs/models/*-tiny.yaml`, a few
dozen SST-2 sentences from `$SEQLAB_DATA_DIR`, offline; a few seconds per test. The README section "Using
seqlab with Trainer and PEFT" shows these snippets.
"""

import numpy as np
import pytest
import torch
import yaml
from torch.nn import functional as F
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    pipeline,
)

import seqlab
from seqlab.metrics import load_metric
from seqlab.tokenizer import token_config_kwargs

FAMILIES = ("recurrent", "decoder", "encoder")
LM_HEADS = {"recurrent": "AutoModelForCausalLM", "decoder": "AutoModelForCausalLM", "encoder": "AutoModelForMaskedLM"}
LABELS = {"id2label": {0: "negative", 1: "positive"}, "label2id": {"negative": 0, "positive": 1}}
# What LoRA can adapt in each family (README: "Using seqlab with Trainer and PEFT"). nn.LSTM/GRU/RNN are no
# module LoRA wraps: the recurrent family adapts its embeddings low-rank and trains chosen layers in full.
LORA_TARGETS = {
    "decoder": ["qkv_proj", "out_proj", "fc_in", "fc_out"],
    "encoder": ["qkv_proj", "out_proj", "fc_in", "fc_out"],
    "recurrent": ["embed_tokens"],
}
NUM_TRAIN, NUM_EVAL = 48, 24


# --- fixtures and helpers ------------------------------------------------------------------------------


def tiny_config(family, tokenizer, repo_root, **overrides):
    """The family's `configs/models/<family>-tiny.yaml` with the tokenizer's vocabulary and special ids."""
    values = yaml.safe_load((repo_root / "configs" / "models" / f"{family}-tiny.yaml").read_text())
    assert values.pop("family") == family
    config_class = seqlab.models.FAMILIES[family].config_class
    return config_class(**{**values, **token_config_kwargs(tokenizer, include_mask=family == "encoder"), **overrides})


def new_model(family, head, tokenizer, repo_root, seed=0, **overrides):
    torch.manual_seed(seed)
    return seqlab.models.FAMILIES[family].auto_classes[head](tiny_config(family, tokenizer, repo_root, **overrides))


@pytest.fixture(scope="module")
def language_models(tmp_path_factory, tokenizer, repo_root):
    """A saved language model per family: the "pretrained" folder a classifier starts from."""
    folders = {}
    for family in FAMILIES:
        folders[family] = tmp_path_factory.mktemp(f"{family}-lm")
        new_model(family, LM_HEADS[family], tokenizer, repo_root).save_pretrained(folders[family])
    return folders


@pytest.fixture(scope="module")
def sst2(data_dir, tokenizer):
    """A few SST-2 sentences, tokenized the way the Trainer recipes do (the collator pads each batch)."""
    from datasets import load_dataset

    files = {split: str(data_dir / "sst2" / f"{split}.tsv") for split in ("train", "validation")}
    raw = load_dataset("csv", data_files=files, delimiter="\t")
    raw["train"] = raw["train"].select(range(NUM_TRAIN))
    raw["validation"] = raw["validation"].select(range(NUM_EVAL))
    return raw.map(
        lambda batch: tokenizer(batch["sentence"], truncation=True), batched=True, remove_columns=["sentence"]
    )


@pytest.fixture(scope="module")
def text_blocks(data_dir, tokenizer):
    """Tiny Shakespeare as `run_clm.py` / `run_mlm.py` group it: concatenated, cut into blocks of 32 tokens."""
    from datasets import Dataset

    lines = [line for line in (data_dir / "tinyshakespeare" / "input.txt").read_text().splitlines() if line][:600]
    ids = [token for line in tokenizer(lines)["input_ids"] for token in line]
    blocks = [ids[start : start + 32] for start in range(0, len(ids) - 32 + 1, 32)][: NUM_TRAIN + NUM_EVAL]
    data = Dataset.from_dict({"input_ids": blocks})
    return {"train": data.select(range(NUM_TRAIN)), "validation": data.select(range(NUM_TRAIN, len(blocks)))}


def args(output_dir, **overrides):
    settings = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=8,
        per_device_eval_batch_size=NUM_EVAL,
        learning_rate=3e-3,
        max_steps=6,
        logging_steps=2,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    return TrainingArguments(**{**settings, **overrides})


def padded_batch(tokenizer, texts=("a gripping , funny film", "dull", "not one minute of it works , sadly")):
    return tokenizer(list(texts), padding=True, return_tensors="pt")


def enable_checkpointing(model, use_reentrant: bool):
    # transformers 5.24 renamed gradient_checkpointing_enable (now a deprecated alias) to activation_checkpointing_enable
    kwargs = {"use_reentrant": use_reentrant}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def accuracy_metrics(eval_pred):
    """Trainer's compute_metrics for a classifier, with seqlab's offline accuracy module."""
    logits, labels = eval_pred
    return load_metric("accuracy").compute(predictions=np.argmax(logits, axis=-1), references=labels)


def preprocess_logits_for_metrics(logits, labels):
    """As in run_mlm.py / run_clm.py: keep the argmax, not (batch, length, vocab) logits."""
    return logits.argmax(dim=-1)


def masked_lm_metrics(eval_pred):
    """run_mlm.py's compute_metrics: accuracy over the masked tokens (labels != -100)."""
    predictions, labels = eval_pred
    chosen = labels != -100
    return load_metric("accuracy").compute(predictions=predictions[chosen], references=labels[chosen])


def causal_lm_metrics(eval_pred):
    """run_clm.py's compute_metrics: position t predicts token t+1."""
    predictions, labels = eval_pred
    return load_metric("accuracy").compute(
        predictions=predictions[:, :-1].reshape(-1), references=labels[:, 1:].reshape(-1)
    )


def assert_same_parameters(model, expected):
    expected = dict(expected.named_parameters())
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter, expected[name], msg=name)


# --- Trainer: classifier -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_trainer_fine_tunes_evaluates_predicts_saves_reloads_and_resumes_a_classifier(
    family, tokenizer, sst2, language_models, tmp_path
):
    def classifier():
        return AutoModelForSequenceClassification.from_pretrained(language_models[family], num_labels=2, **LABELS)

    def trainer_for(model):
        return Trainer(
            model=model,
            args=args(tmp_path / "run", save_strategy="steps", save_steps=3),
            train_dataset=sst2["train"],
            eval_dataset=sst2["validation"],
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
            compute_metrics=accuracy_metrics,
        )

    trainer = trainer_for(classifier())
    trainer.train()
    metrics = trainer.evaluate()
    predicted = trainer.predict(sst2["validation"])
    logits, labels = torch.from_numpy(predicted.predictions), torch.from_numpy(predicted.label_ids)
    assert logits.shape == (NUM_EVAL, 2)
    expected_accuracy = (logits.argmax(-1) == labels).double().mean().item()
    assert metrics["eval_accuracy"] == pytest.approx(expected_accuracy)
    assert predicted.metrics["test_accuracy"] == pytest.approx(expected_accuracy)
    assert metrics["eval_loss"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)

    trainer.save_model(tmp_path / "final")
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "final").eval()
    batch = padded_batch(tokenizer)
    torch.testing.assert_close(reloaded(**batch).logits, trainer.model.eval()(**batch).logits)

    # a run resumed from its step-3 checkpoint ends with the uninterrupted run's weights
    resumed = trainer_for(classifier())
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-3"))
    assert resumed.state.global_step == 6
    assert_same_parameters(resumed.model, trainer.model)


@pytest.mark.parametrize("family", FAMILIES)
def test_trainer_gradient_accumulation_matches_one_large_batch(family, tokenizer, sst2, language_models, tmp_path):
    """Trainer passes `num_items_in_batch` to a model whose forward takes **kwargs and then leaves the loss
    undivided by the accumulation steps: the classifier must normalise by it, or accumulating two batches of 4
    takes a step twice the size of one batch of 8."""
    config = AutoConfig.from_pretrained(language_models[family])
    no_dropout = {key: 0.0 for key in config.to_dict() if "dropout" in key}

    def one_step(batch_size, accumulation):
        torch.manual_seed(0)  # the new head's initialisation
        model = AutoModelForSequenceClassification.from_pretrained(
            language_models[family], num_labels=2, **LABELS, **no_dropout
        )
        settings = dict(per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation)
        sgd = dict(optim="sgd", learning_rate=0.5, max_grad_norm=0.0, lr_scheduler_type="constant", max_steps=1)
        trainer = Trainer(
            model=model,
            args=args(tmp_path / f"b{batch_size}", **settings, **sgd),
            train_dataset=sst2["train"],
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        trainer.train()
        return model, trainer.state.log_history[-1]["train_loss"]

    start = AutoModelForSequenceClassification.from_pretrained(language_models[family], num_labels=2, **LABELS)
    (large, large_loss), (accumulated, accumulated_loss) = one_step(8, 1), one_step(4, 2)
    body = dict(start.base_model.named_parameters())
    moved = max((p - body[n]).abs().max().item() for n, p in large.base_model.named_parameters())
    assert moved > 1e-3  # the step is large enough to tell a doubled step apart
    assert_same_parameters(accumulated, large)
    assert accumulated_loss == pytest.approx(large_loss, rel=1e-4)


# --- Trainer: language models with the run_mlm.py / run_clm.py metrics ----------------------------------


def test_trainer_masked_lm_with_run_mlm_compute_metrics(tokenizer, text_blocks, repo_root, tmp_path):
    model = new_model("encoder", "AutoModelForMaskedLM", tokenizer, repo_root)
    trainer = Trainer(
        model=model,
        args=args(tmp_path, eval_strategy="steps", eval_steps=3),
        train_dataset=text_blocks["train"],
        eval_dataset=text_blocks["validation"],
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15),
        compute_metrics=masked_lm_metrics,
        preprocess_logits_for_metrics=preprocess_logits_for_metrics,
    )
    trainer.train()  # evaluates at steps 3 and 6 through the metrics above
    predicted = trainer.predict(text_blocks["validation"])
    predictions, labels = predicted.predictions, predicted.label_ids
    assert predictions.shape == labels.shape == (NUM_EVAL, 32)  # a prediction for every position
    chosen = labels != -100
    assert chosen.sum() > 0
    expected = (predictions[chosen] == labels[chosen]).mean()
    assert predicted.metrics["test_accuracy"] == pytest.approx(expected)
    assert [record["step"] for record in trainer.state.log_history if "eval_accuracy" in record] == [3, 6]


@pytest.mark.parametrize("family", ["recurrent", "decoder"])
def test_trainer_causal_lm_with_run_clm_compute_metrics(family, tokenizer, text_blocks, repo_root, tmp_path):
    model = new_model(family, "AutoModelForCausalLM", tokenizer, repo_root)
    trainer = Trainer(
        model=model,
        args=args(tmp_path, eval_strategy="steps", eval_steps=3),
        train_dataset=text_blocks["train"],
        eval_dataset=text_blocks["validation"],
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        compute_metrics=causal_lm_metrics,
        preprocess_logits_for_metrics=preprocess_logits_for_metrics,
    )
    trainer.train()
    metrics = trainer.evaluate()
    # the eval set is one batch: eval_loss is the model's own loss on it, perplexity = exp(eval_loss)
    block = torch.tensor(text_blocks["validation"]["input_ids"])
    with torch.no_grad():
        out = trainer.model.eval()(input_ids=block, labels=block)
    assert metrics["eval_loss"] == pytest.approx(out.loss.item(), rel=1e-5)
    expected = (out.logits[:, :-1].argmax(-1) == block[:, 1:]).double().mean().item()
    assert metrics["eval_accuracy"] == pytest.approx(expected)


# --- PEFT: LoRA train -> save -> reload -> merge ---------------------------------------------------------


def lora_config(family, num_layers):
    from peft import LoraConfig, TaskType

    modules_to_save = None  # SEQ_CLS default: the modules named `classifier` (or `score`): the whole new head
    if family == "recurrent":  # LoRA cannot wrap nn.LSTM: train the top recurrent layer in full instead
        modules_to_save = ["classifier", f"layers.{num_layers - 1}"]
    return LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=4,
        lora_alpha=8,
        target_modules=LORA_TARGETS[family],
        modules_to_save=modules_to_save,
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_peft_lora_round_trip_train_save_reload_merge(family, tokenizer, language_models, tmp_path):
    from peft import PeftModel, get_peft_model

    base = language_models[family]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2, **LABELS)
    peft_model = get_peft_model(model, lora_config(family, model.config.num_hidden_layers))
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert any("lora_" in name for name in trainable)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    batch = padded_batch(tokenizer)
    peft_model.train()
    for _ in range(5):
        loss = peft_model(**batch, labels=torch.tensor([1, 0, 0])).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.eval()
    with torch.no_grad():
        trained = peft_model(**batch).logits
    peft_model.save_pretrained(tmp_path / "adapter")

    torch.manual_seed(1)  # a fresh base: its new head starts from other random values
    fresh = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2, **LABELS).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(**batch).logits, trained, atol=1e-3)  # so the adapter must bring the head
        reloaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
        torch.testing.assert_close(reloaded(**batch).logits, trained)
        merged = reloaded.merge_and_unload().eval()
        assert not any("lora_" in name for name, _ in merged.named_parameters())
        torch.testing.assert_close(merged(**batch).logits, trained, rtol=1e-4, atol=1e-5)
    merged.save_pretrained(tmp_path / "merged")
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(**batch).logits, trained, rtol=1e-4, atol=1e-5)


def test_peft_cannot_wrap_recurrent_layers_and_all_linear_finds_nothing_to_adapt(tokenizer, repo_root):
    from peft import LoraConfig, TaskType, get_peft_model

    model = new_model("recurrent", "AutoModelForSequenceClassification", tokenizer, repo_root, num_labels=2)
    with pytest.raises(ValueError, match="LSTM.*is not supported"):
        get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, target_modules=["layers.0"]))
    # "all-linear" leaves out the output layer (the classifier): a recurrent classifier has no other Linear
    with pytest.raises(ValueError, match="No modules were targeted"):
        get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, target_modules="all-linear"))


# --- gradient (activation) checkpointing -----------------------------------------------------------------


def loss_and_gradients(model, batch):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(7)  # the same dropout masks in both runs
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


CHECKPOINTED = [("recurrent", {"cell_type": cell}) for cell in ("rnn", "lstm", "gru")] + [
    ("decoder", {}),
    ("encoder", {}),
]


@pytest.mark.parametrize("use_reentrant", [False, True], ids=["non-reentrant", "reentrant"])
@pytest.mark.parametrize("padded", [False, True], ids=["packed", "padded"])
@pytest.mark.parametrize(
    "family, overrides", CHECKPOINTED, ids=lambda v: v if isinstance(v, str) else v.get("cell_type", "")
)
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(
    family, overrides, padded, use_reentrant, tokenizer, repo_root
):
    model = new_model(family, LM_HEADS[family], tokenizer, repo_root, num_hidden_layers=3, **overrides).train()
    if padded:  # the recurrent family packs padded rows and runs its layers one by one anyway
        batch = dict(padded_batch(tokenizer))
    else:  # unpadded: the recurrent family's one multi-layer kernel call, unless checkpointing
        batch = {"input_ids": padded_batch(tokenizer, ["x y z w v u t s r"] * 2)["input_ids"]}
    labels = batch["input_ids"].clone()
    if padded:
        labels[batch["attention_mask"] == 0] = -100
    if family == "encoder":
        labels[:, ::2] = -100  # a masked LM scores only some positions
    batch["labels"] = labels
    expected_loss, expected = loss_and_gradients(model, batch)

    enable_checkpointing(model, use_reentrant)
    calls = []
    for module in model.modules():  # count the recomputed layers: checkpointing must really happen
        if getattr(module, "gradient_checkpointing", False) and hasattr(module, "_gradient_checkpointing_func"):
            checkpoint = module._gradient_checkpointing_func
            module._gradient_checkpointing_func = lambda *a, _c=checkpoint, **k: calls.append(1) or _c(*a, **k)
    loss, gradients = loss_and_gradients(model, batch)
    assert len(calls) == 3
    torch.testing.assert_close(loss, expected_loss)
    assert gradients.keys() == expected.keys()
    for name, gradient in gradients.items():
        torch.testing.assert_close(gradient, expected[name], msg=name)


def test_trainer_gradient_checkpointing_trains_the_recurrent_classifier_like_without(
    tokenizer, sst2, language_models, tmp_path
):
    finals = []
    for checkpointing in (False, True):
        torch.manual_seed(0)  # the same new head in both runs
        model = AutoModelForSequenceClassification.from_pretrained(language_models["recurrent"], num_labels=2)
        trainer = Trainer(
            model=model,
            args=args(tmp_path / str(checkpointing), max_steps=3, gradient_checkpointing=checkpointing),
            train_dataset=sst2["train"],
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        trainer.train()
        assert model.model.gradient_checkpointing is checkpointing
        finals.append(trainer.model)
    assert_same_parameters(finals[1], finals[0])


# --- a folder assembled by Trainer.save_model, in pipeline() ---------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_folder_saved_by_trainer_runs_in_a_pipeline_and_truncates_long_inputs(
    family, tokenizer, language_models, tmp_path
):
    model = AutoModelForSequenceClassification.from_pretrained(language_models[family], num_labels=2, **LABELS)
    Trainer(model=model, args=args(tmp_path / "run"), processing_class=tokenizer).save_model(tmp_path / "final")
    classify = pipeline("text-classification", model=str(tmp_path / "final"))
    long_text = "a gripping , funny and moving film . " * 200  # far beyond max_position_embeddings
    assert len(tokenizer(long_text)["input_ids"]) > model.config.max_position_embeddings
    scores = {entry["label"]: entry["score"] for entry in classify(long_text, top_k=None, truncation=True)}
    inputs = tokenizer(long_text, truncation=True, return_tensors="pt")
    assert inputs["input_ids"].shape[1] <= model.config.max_position_embeddings
    with torch.no_grad():
        expected = model.eval()(**inputs).logits.softmax(-1)[0]
    assert scores["negative"] == pytest.approx(expected[0].item(), rel=1e-5)
    assert scores["positive"] == pytest.approx(expected[1].item(), rel=1e-5)
