"""The shared data pipeline on the real shared datasets (small slices) and on small files."""

import gzip
import json
import random
import re
from collections import Counter

import datasets
import numpy as np
import pytest
import torch

from seqlab.data import (
    DEFAULT_PRETRAINING_SOURCES,
    KNOWN_KEYS,
    CausalLMCollator,
    ClassificationCollator,
    MaskedLMCollator,
    build_pretraining_dataset,
    check_labels,
    infer_num_labels,
    iter_texts,
    key_label_names,
    load_text_dataset,
    refuse_evaluation_splits,
    resolve_source,
    stratified_subset,
    tokenize_classification,
)
from seqlab.data import sources as sources_module
from seqlab.data.files import MAX_DOCUMENT_CHARS
from seqlab.errors import SeqlabUsageError

# (source, rows, labels) of the shared data; None: text only.
LABELLED_KEYS = [
    ("sst2", 67349, {0, 1}),
    ("sst2:validation", 872, {0, 1}),
    ("sst2_sentence", 6920, {0, 1}),
    ("sst2_sentence:validation", 872, {0, 1}),
    ("sst5", 8544, {0, 1, 2, 3, 4}),
    ("sst5:validation", 1101, {0, 1, 2, 3, 4}),
    ("imdb", 22560, {0, 1}),  # 25,000 minus the 10% held out as imdb:validation
    ("imdb:validation", 2440, {0, 1}),
]


@pytest.mark.parametrize("source,rows,labels", LABELLED_KEYS)
def test_labelled_keys_load_with_text_and_int_labels(data_dir, source, rows, labels):
    dataset = load_text_dataset(source)
    assert dataset.column_names == ["text", "label"]
    assert len(dataset) == rows
    assert dataset.features["label"].dtype == "int64"
    assert set(dataset["label"]) == labels
    assert all(isinstance(t, str) and t.strip() for t in dataset.select(range(50))["text"])


@pytest.mark.parametrize("source", ["tinyshakespeare", "general_english", "imdb:unsup"])
def test_text_only_keys_load_documents(data_dir, source):
    dataset = load_text_dataset(source)
    assert dataset.column_names == ["text"]
    assert len(dataset) > 5000
    for document in dataset.select(range(0, len(dataset), len(dataset) // 200))["text"]:
        assert document.strip()
        # documents are cut at line boundaries: only a single over-long line exceeds the limit
        assert len(document) <= MAX_DOCUMENT_CHARS or "\n" not in document


def test_keys_resolve_to_local_files_when_the_data_dir_has_them(data_dir):
    resolved = resolve_source("general_english")
    assert len(resolved.files) == 9 and all(f.endswith(".txt.xz") for f in resolved.files)
    assert resolve_source("imdb:unsup").files == (str(data_dir / "imdb" / "unsup.jsonl.xz"),)
    assert resolve_source("imdb:unsup").labelled is False
    assert set(KNOWN_KEYS) == {"sst2", "sst2_sentence", "sst5", "imdb", "general_english", "tinyshakespeare"}
    assert key_label_names("sst5:validation")[0] == "very negative"


def test_tinyshakespeare_documents_are_the_blank_line_separated_speeches(data_dir):
    first = load_text_dataset("tinyshakespeare")[0]["text"]
    assert first == "First Citizen:\nBefore we proceed any further, hear me speak."


def test_unknown_key_and_missing_split_say_what_exists(data_dir):
    with pytest.raises(SeqlabUsageError, match=r"'sst3'.*sst2, sst2_sentence, sst5, imdb, general_english"):
        load_text_dataset("sst3")
    with pytest.raises(SeqlabUsageError, match=r"no split 'test'; its splits are train, unsup, validation"):
        load_text_dataset("imdb:test")


def test_imdb_validation_is_carved_from_train_and_never_pretrained_on(data_dir):
    """IMDB ships no validation split here: 10% of train is held out by a hash of the text."""
    train, validation = load_text_dataset("imdb"), load_text_dataset("imdb:validation")
    assert not set(train["text"]) & set(validation["text"])
    assert len(train) + len(validation) == 25000
    assert 0.45 < sum(validation["label"]) / len(validation) < 0.55
    streamed = list(iter_texts("imdb:validation", max_texts=50))
    assert streamed and set(streamed) <= set(validation["text"])
    with pytest.raises(SeqlabUsageError, match="evaluation"):
        refuse_evaluation_splits(["general_english", "imdb:validation"])


def test_offline_hub_fallback_says_to_set_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path))
    assert resolve_source("sst2").files == ()
    with pytest.raises(SeqlabUsageError, match=r"stanfordnlp/sst2.*set SEQLAB_DATA_DIR"):
        load_text_dataset("sst2")


def test_hub_datasets_are_normalised_like_local_files(monkeypatch, tmp_path):
    """The Hub twins have other column names and layouts; the loader maps them onto text/label."""
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path))
    fakes = {
        "stanfordnlp/sst2": datasets.Dataset.from_dict({"idx": [0, 1], "sentence": ["bad", "good"], "label": [0, 1]}),
        "karpathy/tiny_shakespeare": datasets.Dataset.from_dict({"text": ["A:\nHi.\n\nB:\nHo.\n"]}),
        "Salesforce/wikitext": datasets.Dataset.from_dict({"text": ["", " = Title = \n", "A paragraph .\n"]}),
        "stanfordnlp/imdb": datasets.Dataset.from_dict({"text": ["fine\n\nfilm", " "], "label": [-1, -1]}),
    }
    calls = []

    def fake_load_dataset(path, name=None, split=None, streaming=False):
        calls.append((path, name, split))
        return fakes[path]

    monkeypatch.setattr(sources_module.datasets, "load_dataset", fake_load_dataset)
    assert load_text_dataset("sst2").to_dict() == {"text": ["bad", "good"], "label": [0, 1]}
    assert load_text_dataset("tinyshakespeare")["text"] == ["A:\nHi.", "B:\nHo."]
    assert load_text_dataset("general_english")["text"] == [" = Title = ", "A paragraph ."]
    assert load_text_dataset("imdb:unsup").to_dict() == {"text": ["fine\n\nfilm"]}  # a review stays whole
    assert ("stanfordnlp/imdb", None, "unsupervised") in calls
    assert ("Salesforce/wikitext", "wikitext-103-raw-v1", "train") in calls


def test_iter_texts_interleaves_sources_and_stops_at_max_texts(data_dir):
    texts = list(iter_texts(["sst2_sentence", "imdb:unsup"], max_texts=5))
    assert len(texts) == 5
    assert texts[0].startswith("The Rock is destined")
    assert "<br />" in texts[1] or len(texts[1]) > 200  # an IMDB review
    with pytest.raises(SeqlabUsageError, match="unknown dataset"):
        iter_texts(["sst2", "nope"])  # fails before any text is read


# ----------------------------------------------------------------------------- file paths


def test_file_paths_in_every_format_load_with_normalised_columns(tmp_path):
    (tmp_path / "a.tsv").write_text("sentence\tlabel\nfine film\t1\nawful\t0\n")
    (tmp_path / "b.csv").write_text('id,review,sentiment\n7,"good, really",1\n8,"meh",0\n')
    (tmp_path / "c.jsonl").write_text(json.dumps({"content": "x y", "labels": 2}) + "\n\n")
    with gzip.open(tmp_path / "d.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write("first line\nsame document\n\n\nsecond document\n")
    assert load_text_dataset(str(tmp_path / "a.tsv")).to_dict() == {"text": ["fine film", "awful"], "label": [1, 0]}
    assert load_text_dataset(str(tmp_path / "b.csv")).to_dict() == {"text": ["good, really", "meh"], "label": [1, 0]}
    assert load_text_dataset(str(tmp_path / "c.jsonl")).to_dict() == {"text": ["x y"], "label": [2]}
    assert load_text_dataset(str(tmp_path / "d.txt.gz"))["text"] == ["first line\nsame document", "second document"]
    assert list(iter_texts(str(tmp_path / "d.txt.gz"))) == ["first line\nsame document", "second document"]


def test_a_missing_text_column_names_the_columns_seen(tmp_path):
    (tmp_path / "bad.csv").write_text("id,body,label\n1,hello,0\n")
    with pytest.raises(SeqlabUsageError, match=r"no text column; columns seen: id, body, label"):
        load_text_dataset(str(tmp_path / "bad.csv"))


@pytest.mark.parametrize(
    "content,bad",
    [
        ("text,label\nok,1\nhmm,positive\n", "'positive'"),
        ("text,label\nok,1\nhmm,\n", "''"),
        ("text,label\nok,1\nhmm,1.5\n", "'1.5'"),
    ],
)
def test_labels_must_be_integers_and_the_error_names_the_row(tmp_path, content, bad):
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(SeqlabUsageError, match=rf"row 2: label {re.escape(bad)} .* not an integer"):
        load_text_dataset(str(tmp_path / "labels.csv"))


def test_null_json_label_and_empty_file_are_refused(tmp_path):
    (tmp_path / "n.jsonl").write_text('{"text": "a", "label": 1}\n{"text": "b", "label": NaN}\n')
    with pytest.raises(SeqlabUsageError, match=r"row 2: label nan"):
        load_text_dataset(str(tmp_path / "n.jsonl"))
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(SeqlabUsageError, match="holds no texts"):
        load_text_dataset(str(tmp_path / "empty.txt"))
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(SeqlabUsageError, match=r"'.md' is not one of"):
        load_text_dataset(str(tmp_path / "notes.md"))


# ----------------------------------------------------------------------------- pretraining


@pytest.fixture()
def numbered_corpus(tmp_path):
    """300 unique documents, numbered so that each can be recognised after packing."""
    rng = random.Random(0)
    words = ["the", "king", "spoke", "to", "a", "crowd", "of", "citizens", "and", "soldiers", "quickly"]
    documents = [f"doc {i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(3, 40))) for i in range(300)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(documents) + "\n")
    return str(path), documents


def _documents_in(blocks, eos):
    """Cut a packed split back into documents at </s>; the last piece may be cut short by packing."""
    stream = np.concatenate([np.asarray(b) for b in blocks]) if len(blocks) else np.zeros(0, np.int64)
    ends = np.flatnonzero(stream == eos)
    pieces = np.split(stream, ends + 1)
    return stream, pieces[:-1], pieces[-1]


def test_pretraining_packs_whole_documents_separated_by_eos(tokenizer, numbered_corpus):
    path, documents = numbered_corpus
    built = build_pretraining_dataset(tokenizer, [path], max_seq_length=32, validation_fraction=0.1, seed=0)
    assert set(built) == {"train", "validation"}
    total = sum(len(tokenizer(d, add_special_tokens=False)["input_ids"]) + 1 for d in documents)
    seen_ids = {}
    kept = 0
    for split in ("train", "validation"):
        blocks = built[split]["input_ids"]
        assert len(blocks) > 0 and all(len(block) == 32 for block in blocks)
        stream, complete, tail = _documents_in(blocks, tokenizer.eos_token_id)
        assert len(tail) < 32 + max(len(tokenizer(d)["input_ids"]) for d in documents)
        kept += len(stream)
        for piece in complete:
            text = tokenizer.decode(piece[:-1].tolist())
            assert text in documents  # each piece is exactly one whole document
            seen_ids[text] = seen_ids.get(text, ()) + (split,)
    assert all(len(splits) == 1 for splits in seen_ids.values())  # no document in both splits
    assert total - 2 * 31 <= kept <= total  # only the two remainders were dropped
    validation_tokens = len(built["validation"]) * 32
    assert 0.05 * total <= validation_tokens <= 0.2 * total


def test_pretraining_is_deterministic_by_seed_and_respects_max_tokens(tokenizer, numbered_corpus):
    path, _ = numbered_corpus
    first = build_pretraining_dataset(tokenizer, [path], max_seq_length=16, max_tokens=1000, seed=1)
    again = build_pretraining_dataset(tokenizer, [path], max_seq_length=16, max_tokens=1000, seed=1)
    other = build_pretraining_dataset(tokenizer, [path], max_seq_length=16, max_tokens=1000, seed=2)
    assert first["train"]["input_ids"] == again["train"]["input_ids"]
    assert first["validation"]["input_ids"] == again["validation"]["input_ids"]
    assert first["train"]["input_ids"] != other["train"]["input_ids"]
    kept = (len(first["train"]) + len(first["validation"])) * 16
    assert 1000 - 2 * 15 <= kept <= 1000


def test_pretraining_on_the_default_recipe_sources_is_fast_with_a_budget(tokenizer):
    built = build_pretraining_dataset(
        tokenizer, list(DEFAULT_PRETRAINING_SOURCES), max_seq_length=32, max_tokens=20_000
    )
    assert len(built["train"]) + len(built["validation"]) >= 20_000 // 32 - 2
    assert len(built["validation"]) >= 1
    assert torch.tensor(built["train"][:4]["input_ids"]).shape == (4, 32)


@pytest.mark.parametrize("source", ["sst2:validation", "imdb:test", "corpus.txt:test"])
def test_pretraining_refuses_evaluation_splits(tokenizer, source):
    with pytest.raises(SeqlabUsageError, match="evaluation texts never enter pretraining"):
        build_pretraining_dataset(tokenizer, ["tinyshakespeare", source], max_seq_length=32, max_tokens=5000)


def test_pretraining_with_too_little_text_says_so(tokenizer, tmp_path):
    (tmp_path / "tiny.txt").write_text("just a few words\n")
    with pytest.raises(SeqlabUsageError, match="too few for a training block"):
        build_pretraining_dataset(tokenizer, [str(tmp_path / "tiny.txt")], max_seq_length=32)


# ----------------------------------------------------------------------------- collators


def test_causal_lm_collator_copies_inputs_to_labels_and_pads_ragged_rows():
    batch = CausalLMCollator(pad_token_id=0)([{"input_ids": [5, 6, 7]}, {"input_ids": torch.tensor([8, 9, 10])}])
    assert torch.equal(batch["labels"], batch["input_ids"])
    assert batch["input_ids"].dtype == torch.long
    # no padding: no mask, so models take their unmasked fast path (SDPA causal kernel, one LSTM call)
    assert "attention_mask" not in batch
    ragged = CausalLMCollator(pad_token_id=0)([{"input_ids": [5, 6, 7]}, {"input_ids": [8]}])
    assert ragged["input_ids"][1].tolist() == [8, 0, 0]
    assert ragged["labels"][1].tolist() == [8, -100, -100]
    assert ragged["attention_mask"][1].tolist() == [1, 0, 0]


def _mlm_batch(tokenizer, rows=64, length=128):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, len(tokenizer), (rows, length), generator=generator)
    ids[:, 0] = tokenizer.bos_token_id
    ids[:, ::9] = tokenizer.eos_token_id
    return ids


def test_masked_lm_collator_follows_80_10_10_and_never_masks_specials(tokenizer):
    ids = _mlm_batch(tokenizer)
    original = ids.clone()
    batch = MaskedLMCollator(tokenizer, mask_rate=0.15, seed=0)([{"input_ids": row} for row in ids])
    assert torch.equal(ids, original)  # the input is not modified
    special = (ids == tokenizer.bos_token_id) | (ids == tokenizer.eos_token_id)
    chosen = batch["labels"] != -100
    assert not (chosen & special).any()
    assert torch.equal(batch["input_ids"][special], ids[special])
    assert torch.equal(batch["labels"][chosen], ids[chosen])
    rate = chosen.sum().item() / (~special).sum().item()
    assert 0.13 < rate < 0.17
    masked = (batch["input_ids"] == tokenizer.mask_token_id) & chosen
    unchanged = (batch["input_ids"] == ids) & chosen
    replaced = chosen & ~masked & ~unchanged
    assert 0.75 < masked.sum().item() / chosen.sum().item() < 0.85
    assert 0.07 < replaced.sum().item() / chosen.sum().item() < 0.13
    assert 0.07 < unchanged.sum().item() / chosen.sum().item() < 0.13
    assert (batch["input_ids"][replaced] >= 5).all()  # random tokens are never special
    assert not ((batch["input_ids"] == tokenizer.mask_token_id) & ~chosen).any()


def test_masked_lm_collator_masks_padding_only_when_rows_are_ragged(tokenizer):
    collator = MaskedLMCollator(tokenizer, mask_rate=0.5, seed=0)
    assert "attention_mask" not in collator([{"input_ids": row} for row in _mlm_batch(tokenizer, rows=4, length=16)])
    ragged = collator([{"input_ids": list(range(5, 21))}, {"input_ids": list(range(5, 9))}])
    assert ragged["attention_mask"].sum(dim=1).tolist() == [16, 4]
    padding = ragged["attention_mask"] == 0
    assert (ragged["labels"][padding] == -100).all()  # padding is special: never chosen, never predicted
    assert (ragged["input_ids"][padding] == tokenizer.pad_token_id).all()


def test_masked_lm_collator_is_reproducible_with_a_seed(tokenizer):
    features = [{"input_ids": row} for row in _mlm_batch(tokenizer, rows=4, length=32)]
    first = MaskedLMCollator(tokenizer, seed=3)(features)
    second = MaskedLMCollator(tokenizer, seed=3)(features)
    other = MaskedLMCollator(tokenizer, seed=4)(features)
    assert torch.equal(first["input_ids"], second["input_ids"]) and torch.equal(first["labels"], second["labels"])
    assert not torch.equal(first["labels"], other["labels"])


def test_classification_tokenizes_with_bos_and_pads_dynamically_on_the_right(tokenizer, data_dir):
    dataset = load_text_dataset("sst2_sentence:validation").select(range(8))
    tokenized = tokenize_classification(dataset, tokenizer, max_length=24)
    assert set(tokenized.column_names) == {"labels", "input_ids"}
    lengths = [len(ids) for ids in tokenized["input_ids"]]
    assert max(lengths) <= 24 and all(ids[0] == tokenizer.bos_token_id for ids in tokenized["input_ids"])
    batch = ClassificationCollator(pad_token_id=tokenizer.pad_token_id)([tokenized[i] for i in range(8)])
    assert batch["input_ids"].shape == (8, max(lengths))
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    assert batch["labels"].tolist() == dataset["label"]
    short = int(np.argmin(lengths))
    assert (batch["input_ids"][short, lengths[short] :] == tokenizer.pad_token_id).all()


# ----------------------------------------------------------------------------- subsets and labels


@pytest.fixture(scope="module")
def sst5(data_dir):
    return load_text_dataset("sst5")


def test_stratified_subset_is_deterministic_and_proportional(sst5):
    subset = stratified_subset(sst5, 100, seed=0)
    assert len(subset) == 100
    assert subset["text"] == stratified_subset(sst5, 100, seed=0)["text"]
    full = Counter(sst5["label"])
    picked = Counter(subset["label"])
    for label, count in full.items():
        assert abs(picked[label] - 100 * count / len(sst5)) <= 1.5
    assert subset["text"] != stratified_subset(sst5, 100, seed=1)["text"]


def test_stratified_subset_keeps_every_class_and_accepts_all(sst5):
    assert set(stratified_subset(sst5, 5, seed=0)["label"]) == {0, 1, 2, 3, 4}
    assert len(stratified_subset(sst5, "all", seed=0)) == len(sst5)
    assert stratified_subset(sst5, None) is sst5


def test_stratified_subset_refuses_more_examples_than_exist(sst5):
    with pytest.raises(SeqlabUsageError, match=r"num_examples=9000 .* 8544 examples"):
        stratified_subset(sst5, 9000, seed=0)


def test_check_labels_names_the_row_outside_the_range(sst5):
    check_labels(sst5, 5)
    assert infer_num_labels(sst5) == 5
    with pytest.raises(SeqlabUsageError, match=r"row \d+ has label [2-4], outside 0..1 for num_labels=2"):
        check_labels(sst5, 2)
