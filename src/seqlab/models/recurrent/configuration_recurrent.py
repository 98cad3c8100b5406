"""Configuration of seqlab's recurrent language model: vanilla RNN, LSTM or GRU."""

from transformers import PretrainedConfig

CELL_TYPES = ("rnn", "lstm", "gru")
NONLINEARITIES = ("tanh", "relu")
POOLINGS = ("last", "mean", "max", "concat")
RECURRENT_INITS = ("orthogonal", "identity")


def _check_positive(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"RecurrentConfig: `{name}` must be a positive integer, got {value!r}.")


def _check_probability(name: str, value) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"RecurrentConfig: `{name}` is a dropout probability and must lie in [0, 1), got {value!r}.")


def _checked_choices(cell_type: str, nonlinearity: str | None, recurrent_init: str, pooling: str) -> str | None:
    """Check the options chosen from a list; return the nonlinearity, "tanh" by default for the vanilla RNN."""
    if cell_type not in CELL_TYPES:
        raise ValueError(f"RecurrentConfig: unknown `cell_type` {cell_type!r}; choose one of {CELL_TYPES}.")
    if nonlinearity is not None and cell_type != "rnn":
        raise ValueError(
            f"RecurrentConfig: `nonlinearity={nonlinearity!r}` only applies to cell_type='rnn' "
            f"(got cell_type={cell_type!r}); LSTM and GRU gates fix their own nonlinearities. Remove it."
        )
    if cell_type == "rnn":
        nonlinearity = "tanh" if nonlinearity is None else nonlinearity
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"RecurrentConfig: unknown `nonlinearity` {nonlinearity!r}; choose one of {NONLINEARITIES}."
            )
    if recurrent_init not in RECURRENT_INITS:
        raise ValueError(
            f"RecurrentConfig: unknown `recurrent_init` {recurrent_init!r}; choose one of {RECURRENT_INITS}."
        )
    if pooling not in POOLINGS:
        raise ValueError(f"RecurrentConfig: unknown `pooling` {pooling!r}; choose one of {POOLINGS}.")
    return nonlinearity


class RecurrentConfig(PretrainedConfig):
    r"""Configuration of a recurrent network language model (the seeds' RNN, LSTM and GRU).

    Args:
        vocab_size: number of tokens (taken from the shared tokenizer).
        embedding_size: width of the token embeddings x_t; defaults to `hidden_size`.
        hidden_size: width of the hidden state h_t (and of the LSTM cell state c_t).
        num_hidden_layers: stacked recurrent layers; layer l+1 reads the hidden states of layer l.
        cell_type: `"rnn"` (h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)), `"lstm"` or `"gru"`.
        nonlinearity: f of the vanilla RNN, `"tanh"` or `"relu"` (only for `cell_type="rnn"`).
        recurrent_init: `"orthogonal"` (default) or `"identity"` for W_hh. Identity initialisation with a
            ReLU RNN (IRNN) keeps gradients from vanishing through time at the start of training.
        embedding_dropout_prob: dropout on the embeddings x_t.
        hidden_dropout_prob: dropout between recurrent layers.
        output_dropout_prob: dropout on the last layer's hidden states before the heads.
        tie_word_embeddings: share the LM head with the embeddings. When `embedding_size != hidden_size` a
            projection from hidden_size to embedding_size is added so that tying is possible.
        pooling: how the classifier summarises a sequence: `"last"` (last non-pad hidden state), `"mean"`,
            `"max"`, or `"concat"` (last, mean and max concatenated, as in ULMFiT).
        classifier_dropout_prob: dropout before the classification layer.
        initializer_range: std of the normal initialisation of the embeddings (tied with the LM head).
            Default 0.3: in a 300-step probe of the tiny LSTM LM on the shared corpus, 0.02 (the Transformer
            habit) and 0.1 stayed on the unigram plateau (validation loss 6.3-6.5 nats), 0.3 reached 5.65 and
            1.0 5.89; larger embeddings drive the gates harder from the first step.
        max_position_embeddings: not a limit of the recurrence (it has no positions); kept so that
            tooling reading `max_position_embeddings` sees a length, used as the default maximum
            length of tokenized inputs and as the longest sequence `generate` produces (prompt plus new
            tokens), as for the decoder. No weight depends on it: raise it freely for longer generations.
    """

    model_type = "seqlab_recurrent"

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

    keys_to_ignore_at_inference = ["cache", "past_key_values"]  # "cache" from transformers 5.24 on

    def __init__(
        self,
        vocab_size: int = 16000,
        embedding_size: int | None = None,
        hidden_size: int = 512,
        num_hidden_layers: int = 2,
        cell_type: str = "lstm",
        nonlinearity: str | None = None,
        recurrent_init: str = "orthogonal",
        embedding_dropout_prob: float = 0.1,
        hidden_dropout_prob: float = 0.1,
        output_dropout_prob: float = 0.1,
        classifier_dropout_prob: float = 0.1,
        pooling: str = "concat",
        initializer_range: float = 0.3,
        max_position_embeddings: int = 512,
        tie_word_embeddings: bool = True,
        use_cache: bool = True,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 1,
        eos_token_id: int | None = 2,
        **kwargs,
    ):
        nonlinearity = _checked_choices(cell_type, nonlinearity, recurrent_init, pooling)
        embedding_size = hidden_size if embedding_size is None else embedding_size
        for name, value in (
            ("vocab_size", vocab_size),
            ("hidden_size", hidden_size),
            ("embedding_size", embedding_size),
            ("num_hidden_layers", num_hidden_layers),
            ("max_position_embeddings", max_position_embeddings),
        ):
            _check_positive(name, value)
        for name, value in (
            ("embedding_dropout_prob", embedding_dropout_prob),
            ("hidden_dropout_prob", hidden_dropout_prob),
            ("output_dropout_prob", output_dropout_prob),
            ("classifier_dropout_prob", classifier_dropout_prob),
        ):
            _check_probability(name, value)
        if not initializer_range > 0:
            raise ValueError(f"RecurrentConfig: `initializer_range` must be > 0, got {initializer_range!r}.")

        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.cell_type = cell_type
        self.nonlinearity = nonlinearity
        self.recurrent_init = recurrent_init
        self.embedding_dropout_prob = embedding_dropout_prob
        self.hidden_dropout_prob = hidden_dropout_prob
        self.output_dropout_prob = output_dropout_prob
        self.classifier_dropout_prob = classifier_dropout_prob
        self.pooling = pooling
        self.initializer_range = initializer_range
        self.max_position_embeddings = max_position_embeddings
        self.tie_word_embeddings = tie_word_embeddings
        self.use_cache = use_cache
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            **kwargs,
        )

    @property
    def projects_to_embeddings(self) -> bool:
        """A hidden->embedding projection exists only when tying needs it."""
        return self.tie_word_embeddings and self.embedding_size != self.hidden_size
