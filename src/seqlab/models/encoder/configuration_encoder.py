"""Configuration of the BERT-style encoder-only Transformer (``model_type = "seqlab_encoder"``).

This file imports nothing but ``transformers``: ``register_for_auto_class`` copies it, with
``modeling_encoder.py``, into every saved folder so that the folder loads with
``trust_remote_code=True`` on a machine without seqlab.
"""

from transformers import PreTrainedConfig

POSITION_EMBEDDING_TYPES = ("learned", "sinusoidal")


# Copied from seqlab.models.decoder.configuration_decoder._check_positive_int
def _check_positive_int(config_name: str, field: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{config_name}.{field} must be a positive integer, got {value!r}.")


# Copied from seqlab.models.decoder.configuration_decoder._check_probability
def _check_probability(config_name: str, field: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{config_name}.{field} is a dropout probability and must lie in [0, 1), got {value!r}.")


# Copied from seqlab.models.decoder.configuration_decoder._check_positive_float
def _check_positive_float(config_name: str, field: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{config_name}.{field} must be a positive number, got {value!r}.")


# Copied from seqlab.models.decoder.configuration_decoder._check_token_id
def _check_token_id(config_name: str, field: str, value, vocab_size: int) -> None:
    # eos_token_id may legitimately be a list (several stop tokens); only single ids are range-checked
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value < vocab_size:
        raise ValueError(
            f"{config_name}.{field}={value} is outside the vocabulary [0, {vocab_size}): "
            f"use the tokenizer's id or set vocab_size to len(tokenizer)."
        )


class EncoderConfig(PreTrainedConfig):
    r"""Configuration of a BERT-style encoder: a stack of pre-LayerNorm blocks, each with
    bidirectional multi-head self-attention (every token attends to every non-pad token, before and
    after it) and a GELU feed-forward network. Pretrained with masked language modelling.

    Args:
        vocab_size: size of the token vocabulary (seqlab fills it from the tokenizer).
        hidden_size: width of the token embeddings and of every block (``d_model``).
        num_hidden_layers: number of Transformer blocks.
        num_attention_heads: heads of the multi-head self-attention; must divide ``hidden_size``.
        intermediate_size: inner width of the feed-forward network.
        max_position_embeddings: the longest sequence accepted with learned positional encodings.
        hidden_dropout_prob: dropout on embeddings and on the residual branches.
        attention_probs_dropout_prob: dropout on the attention weights.
        classifier_dropout: dropout before the sequence-classification layer
            (``None``: use ``hidden_dropout_prob``).
        layer_norm_eps: epsilon of the LayerNorms.
        initializer_range: standard deviation of the normal initialisation.
        position_embedding_type: ``"learned"`` (a trained table, one vector per position) or
            ``"sinusoidal"`` (the fixed sine/cosine positional encoding of "Attention Is All You Need").
        tie_word_embeddings: share the input embedding matrix with the masked-LM decoder.
        sparse_prediction: when ``labels`` are given, run the masked-LM vocabulary projection only at the
            masked positions (``labels != -100``, about 15%) and return logits of shape
            ``(num_masked, vocab_size)``, as ModernBERT's switch of the same name does. Off by default, so
            logits keep the ``(batch, length, vocab_size)`` shape that ``Trainer``'s ``compute_metrics`` and
            ``preprocess_logits_for_metrics`` recipes expect; seqlab's own pretraining turns it on for speed.
            The loss is the same either way.
        pad_token_id, bos_token_id, eos_token_id, mask_token_id: ids of ``<pad>``, ``<s>`` (read as
            the ``[CLS]`` token by the classifier), ``</s>`` and ``<mask>`` in the shared seqlab
            tokenizer (``<pad> <s> </s> <unk> <mask>`` are ids 0..4).
    """

    model_type = "seqlab_encoder"

    # Copied from seqlab.models.recurrent.configuration_recurrent.RecurrentConfig.from_dict
    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        # a config.json written for another model type is refused by name, not half-read: its keys would mostly
        # fall back to this config's defaults, and as decoder and encoder checkpoints share parameter names and
        # shapes, the weights of one family would load silently into the other
        found = config_dict.get("model_type")
        if found and found != cls.model_type:
            raise ValueError(
                f"{cls.__name__}: this config.json is for a `{found}` model, not `{cls.model_type}`. Load the "
                f"folder with the Auto class that fits it (e.g. AutoModelForCausalLM.from_pretrained) or with "
                f"the model class of the `{found}` family."
            )
        return super().from_dict(config_dict, **kwargs)

    def __init__(
        self,
        vocab_size: int = 16000,
        hidden_size: int = 512,
        num_hidden_layers: int = 6,
        num_attention_heads: int = 8,
        intermediate_size: int = 2048,
        max_position_embeddings: int = 512,
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        classifier_dropout: float | None = None,
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        position_embedding_type: str = "learned",
        tie_word_embeddings: bool = True,
        sparse_prediction: bool = False,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 1,
        eos_token_id: int | list[int] | None = 2,
        mask_token_id: int | None = 4,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.classifier_dropout = classifier_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.position_embedding_type = position_embedding_type
        # transformers 5 no longer declares these on the base config: without them tying silently stops
        self.tie_word_embeddings = tie_word_embeddings
        self.sparse_prediction = sparse_prediction
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.mask_token_id = mask_token_id
        self._validate()  # before the base class, whose own checks would only warn
        super().__init__(**kwargs)

    def _validate(self) -> None:
        name = type(self).__name__
        for field in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
        ):
            _check_positive_int(name, field, getattr(self, field))
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"{name}.hidden_size must be divisible by num_attention_heads, got hidden_size={self.hidden_size} "
                f"and num_attention_heads={self.num_attention_heads}: pick a hidden_size that is a multiple of "
                f"num_attention_heads."
            )
        _check_probability(name, "hidden_dropout_prob", self.hidden_dropout_prob)
        _check_probability(name, "attention_probs_dropout_prob", self.attention_probs_dropout_prob)
        if self.classifier_dropout is not None:
            _check_probability(name, "classifier_dropout", self.classifier_dropout)
        _check_positive_float(name, "layer_norm_eps", self.layer_norm_eps)
        _check_positive_float(name, "initializer_range", self.initializer_range)
        if self.position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise ValueError(
                f"{name}.position_embedding_type must be one of {list(POSITION_EMBEDDING_TYPES)}, "
                f"got {self.position_embedding_type!r}."
            )
        if not isinstance(self.sparse_prediction, bool):
            raise ValueError(f"{name}.sparse_prediction must be true or false, got {self.sparse_prediction!r}.")
        for field in ("pad_token_id", "bos_token_id", "eos_token_id", "mask_token_id"):
            _check_token_id(name, field, getattr(self, field), self.vocab_size)


__all__ = ["EncoderConfig"]
