"""The shared data pipeline: text sources, pretraining blocks, classification sets and collators."""

from .classification import carve_dev_split, check_labels, infer_num_labels, stratified_subset, tokenize_classification
from .collators import (
    IGNORE_INDEX,
    CausalLMCollator,
    ClassificationCollator,
    MaskedLMCollator,
    pad_blocks,
    pad_sequences,
)
from .pretraining import DEFAULT_PRETRAINING_SOURCES, build_pretraining_dataset
from .sources import (
    DATA_DIR_ENV,
    EVALUATION_SPLITS,
    KNOWN_KEYS,
    iter_texts,
    key_label_names,
    load_text_dataset,
    parse_source,
    refuse_evaluation_splits,
    resolve_source,
)

__all__ = [
    "DATA_DIR_ENV",
    "EVALUATION_SPLITS",
    "KNOWN_KEYS",
    "DEFAULT_PRETRAINING_SOURCES",
    "IGNORE_INDEX",
    "parse_source",
    "resolve_source",
    "refuse_evaluation_splits",
    "load_text_dataset",
    "iter_texts",
    "key_label_names",
    "build_pretraining_dataset",
    "tokenize_classification",
    "stratified_subset",
    "carve_dev_split",
    "check_labels",
    "infer_num_labels",
    "pad_blocks",
    "pad_sequences",
    "CausalLMCollator",
    "MaskedLMCollator",
    "ClassificationCollator",
]
