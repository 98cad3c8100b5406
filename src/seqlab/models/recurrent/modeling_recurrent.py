"""seqlab's recurrent language model: a vanilla RNN, LSTM or GRU as a real transformers model.

Shape of the network (the seeds' notation):
    x_t = Embedding(token_t)                              (dropout)
    h_t^(l) = Cell(h_t^(l-1), h_{t-1}^(l))                (dropout between layers)
    logits_t = W_out [P] h_t^(L) + b_out                  P projects hidden -> embedding size when tied

Each layer is its own `nn.RNN` / `nn.LSTM` / `nn.GRU`, so `output_hidden_states` can return every layer and
fine-tuning can give each layer its own learning rate. When nothing needs the layers one by one (no padding,
no `output_hidden_states`), the whole stack runs as ONE multi-layer kernel call with the layers' own weights
(`_StackedCall`): on a GPU, cuDNN then overlaps the layers in time as it does for a plain multi-layer
`nn.LSTM`; the arithmetic and the dropout masks are those of the layer-by-layer loop. Gradient (activation)
checkpointing recomputes one layer at a time in the backward pass, so in training it takes the loop. Padding on
either side is handled by packing: valid tokens are moved to the front of each row and run as a
`PackedSequence`, so pad tokens never touch the state.

This file imports only torch, transformers and its configuration, so that a saved folder carries it and loads
with `trust_remote_code=True` where seqlab is not installed.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache, LinearAttentionLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)

from .configuration_recurrent import RecurrentConfig

_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
_GATES = {nn.RNN: 1, nn.LSTM: 4, nn.GRU: 3}

# transformers 5.24 renamed the cache from `past_key_values` to `cache`, as `generate`'s argument and as the output
# field it reads back (the old names are deprecated until 5.40); 5.17-5.23 know only `past_key_values`. Outputs are
# built under the name the installed version declares, and `forward` accepts both names.
_CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def _one_cache(cache, past_key_values):
    if cache is not None and past_key_values is not None:
        raise ValueError("Pass the recurrent state as `cache` or as `past_key_values`, not both.")
    return cache if cache is not None else past_key_values


class RecurrentState(Cache):
    """The recurrent state h (and c for the LSTM) of every layer after the tokens seen so far.

    It plays the role a KV cache plays for a Transformer: `generate()` hands it back so that only the new
    token is fed at each step. Its size does not grow with the sequence. It is a transformers `Cache` made of
    transformers' own layers for recurrent (linear-attention) state, `LinearAttentionLayer`, one per recurrent
    layer, with one recurrent state per layer (two for the LSTM: h and c), as Mamba's cache is on 5.24; so
    beam search reorders it with the layers' own `reorder_cache`, and `generate` sees an all-linear cache that
    it never slices by sequence length. Each state is stored batch-first, `(batch, hidden)`.

    These layers exist with the same interface from transformers 5.17 to 5.24. The model builds the cache in its
    first forward (`_supports_default_dynamic_cache` is False) rather than letting `generate` build
    `DynamicCache(config=...)` from the config's `layer_types` as 5.24 does for Mamba: that would put cache
    fields (`layer_types`, the number of states per layer) into every saved config.json, and 5.17's `generate`
    picks its cache argument's name by class-name substrings ("mamba"). Built here, the cache is the same object
    on both versions. Unlike `update_recurrent_state`, `update_layer` replaces the stored tensors (see there).
    """

    def __init__(self, num_layers: int, states_per_layer: int):
        super().__init__(layers=[LinearAttentionLayer(number_of_states=states_per_layer) for _ in range(num_layers)])
        self.seen_tokens = 0  # positions fed so far (padding included); linear layers do not count them

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    @property
    def is_compileable(self) -> bool:
        # dynamo does not trace RNN modules: compiling the decoding step (which `generate` does by itself on a
        # GPU for a compileable cache) would only add graph breaks around the recurrent kernel
        return False

    def layer_state(self, layer_idx: int):
        """Layer `layer_idx`'s state as the recurrent module takes it: h of shape (1, batch, hidden), or (h, c)
        for the LSTM; None before the first update."""
        layer = self.layers[layer_idx]
        if not layer.has_previous_state[0]:
            return None
        states = tuple(layer.recurrent_states[i].unsqueeze(0) for i in range(layer.number_of_states))
        return states if len(states) > 1 else states[0]

    def update_layer(self, layer_idx: int, state) -> None:
        """Store the recurrent module's returned state, h of shape (1, batch, hidden) or the LSTM's (h, c).

        The new tensors replace the old ones rather than being copied into them (`update_recurrent_state` copies,
        to keep a static address for CUDA graphs, which this cache never uses): an earlier call's state may still
        be needed by autograd, as in truncated backpropagation through time."""
        layer = self.layers[layer_idx]
        for i, part in enumerate(state if isinstance(state, tuple) else (state,)):
            layer.recurrent_states[i] = part.squeeze(0)
            layer.is_recurrent_states_initialized[i] = True
            layer.has_previous_state[i] = True
        layer.device, layer.dtype = part.device, part.dtype  # read by reorder_cache and offloading

    def reset(self) -> None:
        super().reset()
        self.seen_tokens = 0


class _StackedCall:
    """All recurrent layers in one multi-layer kernel call.

    The call is the one a multi-layer `nn.LSTM` / `nn.GRU` / `nn.RNN` makes in its forward (`torch.lstm`,
    `torch.gru`, `torch.rnn_tanh`, `torch.rnn_relu`), given the per-layer modules' own parameters in the
    multi-layer order (`weight_ih_l{i}` ...), so the checkpoint keeps `layers.{i}.*`. Its inter-layer dropout
    is the loop's `hidden_dropout` (same probability, same random stream on CPU). Calling the kernel directly
    rather than a multi-layer module through `torch.func.functional_call` gives the same numbers without
    re-binding the parameters on every call (an eighth of a cached decoding step at the tiny size on CPU).
    A weightless (meta-device) multi-layer module of the same cell serves for one thing: on CUDA the layers'
    weights are first moved into one cuDNN buffer through it (`flatten_together`), again whenever their
    storage changed (`.to()`, loading, a layer-by-layer call); otherwise cuDNN would copy them on every call.
    Not an `nn.Module` attribute: it holds no weights of its own and must stay out of `state_dict()` and
    `.to()`. Like any module, the shared template is not meant for concurrent flattening from several threads.
    """

    def __init__(self, layers: nn.ModuleList, cell: type, **cell_kwargs):
        first = layers[0]
        self.module = cell(
            first.input_size, first.hidden_size, num_layers=len(layers), batch_first=True, device="meta", **cell_kwargs
        )
        if cell is nn.RNN:
            self.kernel = torch.rnn_relu if cell_kwargs.get("nonlinearity") == "relu" else torch.rnn_tanh
        else:
            self.kernel = torch.lstm if cell is nn.LSTM else torch.gru
        self.is_lstm = cell is nn.LSTM
        self.flat_signature = None  # data pointers of the weights when they were last flattened together
        # each layer's parameters are named `weight_ih_l0`, ...: layer i's become `weight_ih_l{i}`, ... (the
        # names are fixed at construction; the tensors are looked up on every call, as `.to()` replaces them)
        self.names = [
            (f"{name[:-1]}{i}", i, name) for i, layer in enumerate(layers) for name in layer._flat_weights_names
        ]

    def weights(self, layers: nn.ModuleList) -> dict:
        return {stacked: getattr(layers[i], name) for stacked, i, name in self.names}

    def flatten_together(self, weights: dict) -> bool:
        """Move the weights into one contiguous cuDNN buffer unless they already are; True if it flattened."""
        signature = tuple(w.data_ptr() for w in weights.values())
        if signature == self.flat_signature:
            return False
        if any(type(w) not in (torch.Tensor, nn.Parameter) or w._is_view() for w in weights.values()):
            return False  # sharded (FSDP, DTensor) or borrowed storage: leave it where its owner put it
        originals = {name: getattr(self.module, name) for name in weights}
        try:
            for name, weight in weights.items():
                setattr(self.module, name, weight)
            self.module.flatten_parameters()  # a no-op unless every weight is on a GPU cuDNN accepts
        finally:
            for name, weight in originals.items():
                setattr(self.module, name, weight)
        self.flat_signature = tuple(w.data_ptr() for w in weights.values())
        return True

    def __call__(self, layers: nn.ModuleList, x: torch.Tensor, initial, dropout: float, training: bool):
        weights = self.weights(layers)
        if x.is_cuda:
            self.flatten_together(weights)
        if initial is None:  # what the module's forward passes for no state: zeros
            zeros = x.new_zeros(self.module.num_layers, x.size(0), self.module.hidden_size)
            initial = (zeros, torch.zeros_like(zeros)) if self.is_lstm else zeros
        # arguments: input, state, weights, has biases, layers, dropout, training, bidirectional, batch first
        output, *state = self.kernel(
            x, initial, list(weights.values()), True, self.module.num_layers, dropout, training, False, True
        )
        return output, tuple(state) if self.is_lstm else state[0]


@dataclass
class _Packing:
    """Where the valid tokens of a padded batch are, so they can be run as a PackedSequence."""

    order: torch.LongTensor  # (batch, time): valid positions first, in order, then pad positions
    inverse: torch.LongTensor  # undoes `order`
    lengths: torch.LongTensor  # valid tokens per row, on CPU as pack_padded_sequence requires

    @classmethod
    def from_mask(cls, attention_mask: torch.Tensor | None, length: int) -> "_Packing | None":
        if attention_mask is None:
            return None
        mask = attention_mask[:, -length:].bool()
        if bool(mask.all()):
            return None  # no padding: the fast path, one kernel call over the whole batch
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        return cls(order=order, inverse=torch.argsort(order, dim=1), lengths=lengths)

    @staticmethod
    def _gather(x: torch.Tensor, index: torch.LongTensor) -> torch.Tensor:
        return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.size(-1)))

    def to_front(self, x: torch.Tensor) -> torch.Tensor:
        return self._gather(x, self.order)

    def to_original(self, x: torch.Tensor) -> torch.Tensor:
        return self._gather(x, self.inverse)


def _run_one_layer(layer: nn.Module, packing: "_Packing | None", x: torch.Tensor, *initial: torch.Tensor) -> tuple:
    """One recurrent layer over (batch, time, features) from `initial` (h, or h and c for the LSTM; none: zeros).

    Tensors in, a flat tuple of tensors out, (output, h) or (output, h, c): the shape torch.utils.checkpoint
    needs to recompute the layer in the backward pass, with either of its implementations."""
    state = None if not initial else (initial if len(initial) > 1 else initial[0])
    if packing is None:
        output, state = layer(x, state)
    else:
        packed = pack_padded_sequence(x, packing.lengths, batch_first=True, enforce_sorted=False)
        output, state = layer(packed, state)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=x.size(1))
    return (output, *state) if isinstance(state, tuple) else (output, state)


def _is_loaded(param: torch.Tensor) -> bool:
    # transformers marks tensors it loaded from a checkpoint; never re-initialise those
    return getattr(param, "_is_hf_initialized", False)


class RecurrentPreTrainedModel(PreTrainedModel):
    """Base of the recurrent family.

    PEFT: LoRA adapts `nn.Linear` / `nn.Embedding` modules (`embed_tokens`; in the LM `projection` and `lm_head`),
    never `nn.RNN` / `nn.LSTM` / `nn.GRU`, whose W_ih and W_hh are parameters of one fused kernel: train
    recurrent layers in full with `modules_to_save=["classifier", "layers.<i>"]`. `target_modules="all-linear"`
    leaves out the output layer, so on the classifier it finds nothing (PEFT's NoMatchingPeftModuleError).
    """

    config_class = RecurrentConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    # per layer: `activation_checkpointing_enable()` (`gradient_checkpointing_enable()` before transformers 5.24)
    # recomputes each recurrent layer in the backward pass instead of keeping its activations
    supports_gradient_checkpointing = True
    _no_split_modules = []
    _supports_cache_class = False
    _skip_keys_device_placement = ["cache", "past_key_values"]
    # the state cannot be rolled back to an earlier token: transformers 5.17-5.24 refuse assisted decoding with a
    # clear error for stateful models (5.25 dropped the check: RecurrentForCausalLM.generate refuses it itself)
    _is_stateful = True

    def save_pretrained(self, save_directory, *args, **kwargs):
        if self._auto_class is not None:
            # every head of the family lives in this file: list them all in auto_map, so that a saved
            # language model also loads as a classifier or a bare body with trust_remote_code=True
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **_FAMILY_AUTO_MAP}
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Explicit initialisation, documented because it decides whether gradients survive through time.

        - Embeddings: normal(0, initializer_range). Linear layers (projection, untied head, classifier):
          Xavier-uniform, which keeps the scale whatever the widths; zero biases.
        - W_ih: Xavier-uniform per gate. W_hh: orthogonal per gate (eigenvalues of modulus 1, so the
          linear part of the recurrence neither explodes nor vanishes at the start), or the identity
          when `recurrent_init="identity"` (IRNN: a ReLU RNN that starts by copying its state).
        - Biases zero, except the LSTM forget gate's, set to 1 so the cell starts by remembering.
        """
        std = self.config.initializer_range
        tied_head = module is getattr(self, "lm_head", None) and self.config.tie_word_embeddings
        if isinstance(module, nn.Linear):
            if not _is_loaded(module.weight):
                if tied_head:  # the same tensor as the embeddings: initialise it as one
                    nn.init.normal_(module.weight, mean=0.0, std=std)
                else:
                    nn.init.xavier_uniform_(module.weight)
            if module.bias is not None and not _is_loaded(module.bias):
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            if not _is_loaded(module.weight):
                nn.init.normal_(module.weight, mean=0.0, std=std)
        elif type(module) in _GATES:
            self._init_recurrent_layer(module)

    def _init_recurrent_layer(self, module: nn.Module) -> None:
        size = module.hidden_size
        for name, param in module.named_parameters():
            if _is_loaded(param):
                continue
            chunks = param.split(size, dim=0)  # PyTorch stacks the gates: LSTM i,f,g,o; GRU r,z,n
            if name.startswith("weight_ih"):
                for chunk in chunks:
                    nn.init.xavier_uniform_(chunk)
            elif name.startswith("weight_hh"):
                for chunk in chunks:
                    if self.config.recurrent_init == "identity":
                        nn.init.eye_(chunk)
                    else:
                        nn.init.orthogonal_(chunk)
            elif name.startswith("bias"):
                nn.init.zeros_(param)
                if isinstance(module, nn.LSTM) and name.startswith("bias_ih"):
                    nn.init.ones_(chunks[1])

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # generate must not build a key/value DynamicCache: the first forward builds the RecurrentState instead
        return False


class RecurrentModel(RecurrentPreTrainedModel):
    """Embeddings and the stack of recurrent layers; returns the last layer's hidden states h_t."""

    def __init__(self, config: RecurrentConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embedding_size)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout_prob)
        self.hidden_dropout = nn.Dropout(config.hidden_dropout_prob)
        cell = _CELLS[config.cell_type]
        extra = {"nonlinearity": config.nonlinearity} if config.cell_type == "rnn" else {}
        self.layers = nn.ModuleList(
            cell(
                config.embedding_size if i == 0 else config.hidden_size,
                config.hidden_size,
                batch_first=True,
                **extra,
            )
            for i in range(config.num_hidden_layers)
        )
        # a plain attribute (see _StackedCall): built once, holds no weights
        self._stacked = _StackedCall(self.layers, cell, **extra) if config.num_hidden_layers > 1 else None
        self.gradient_checkpointing = False  # set by transformers' activation/gradient checkpointing switch
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache: RecurrentState | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        past_key_values: RecurrentState | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast | tuple:
        r"""`cache` (transformers >= 5.24's name; `past_key_values` before): the RecurrentState a previous call
        returned; the tokens given continue that sequence. It is updated in place and returned."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("RecurrentModel: pass exactly one of `input_ids` or `inputs_embeds`.")
        cache = _one_cache(cache, past_key_values)
        if cache is not None and not isinstance(cache, RecurrentState):
            raise ValueError(
                f"RecurrentModel: the cache must be the RecurrentState a previous call returned, "
                f"got {type(cache).__name__}."
            )
        use_cache = self.config.use_cache if use_cache is None else use_cache
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict

        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        length = x.size(1)
        if length == 0:  # would fail inside the recurrent kernel with a shape error
            raise ValueError(
                "RecurrentModel got an empty input (0 tokens, e.g. input_ids of shape (1, 0)): pass at least one "
                "token; to generate from nothing, start from the tokenizer's bos_token_id (<s>)."
            )
        packing = _Packing.from_mask(attention_mask, length)
        all_hidden = [x] if output_hidden_states else None
        x = self.embedding_dropout(x)

        initial = [cache.layer_state(i) for i in range(len(self.layers))] if cache is not None else None
        if initial is not None and initial[0] is None:
            initial = None  # an empty state (fresh RecurrentState): start from zeros
        # checkpointing recomputes layer by layer, so it takes the loop: the one kernel call keeps every layer's
        # activations (the two paths give the same numbers, dropout included)
        checkpointing = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        if (
            self._stacked is not None
            and packing is None
            and not output_hidden_states
            and not checkpointing
            and self._layers_are_plain()
        ):
            x, states = self._run_stacked(x, initial)
        else:
            x, states = self._run_layer_by_layer(x, initial, packing, all_hidden, checkpointing)

        if use_cache:
            if cache is None:
                cache = RecurrentState(len(self.layers), 2 if self.config.cell_type == "lstm" else 1)
            for i, state in enumerate(states):
                cache.update_layer(i, state)
            cache.seen_tokens += length
        else:
            cache = None
        hidden_states = tuple(all_hidden) if output_hidden_states else None
        if not return_dict:
            return tuple(v for v in (x, cache, hidden_states) if v is not None)
        return BaseModelOutputWithPast(last_hidden_state=x, hidden_states=hidden_states, **{_CACHE_FIELD: cache})

    def _layers_are_plain(self) -> bool:
        """The stacked call bypasses each layer's forward: only take it when nothing hangs on that forward
        (hooks, accelerate's offload/device-map hooks, parametrizations)."""
        return not any(
            layer._forward_hooks
            or layer._forward_pre_hooks
            or getattr(layer, "_hf_hook", None) is not None
            or getattr(layer, "parametrizations", None) is not None
            for layer in self.layers
        )

    def _run_stacked(self, x: torch.Tensor, per_layer: list | None):
        """Every layer in one kernel call; the state comes back stacked (layers, batch, hidden) and is split."""
        initial = None
        if per_layer is not None:
            initial = (
                tuple(torch.cat(parts) for parts in zip(*per_layer))
                if isinstance(per_layer[0], tuple)
                else torch.cat(per_layer)
            )
        x, state = self._stacked(self.layers, x, initial, self.hidden_dropout.p, self.training)
        if isinstance(state, tuple):
            states = list(zip(*(part.split(1) for part in state)))
        else:
            states = list(state.split(1))
        return x, states

    def _run_layer_by_layer(self, x, per_layer, packing, all_hidden, checkpointing: bool = False):
        if packing is not None:
            x = packing.to_front(x)
        states = []
        for i, layer in enumerate(self.layers):
            if x.is_cuda:
                layer.flatten_parameters()  # keeps cuDNN's weights in one block after .to() or loading
            initial = per_layer[i] if per_layer is not None else None
            initial = () if initial is None else (initial if isinstance(initial, tuple) else (initial,))
            if checkpointing:
                x, *state = self._gradient_checkpointing_func(_run_one_layer, layer, packing, x, *initial)
            else:
                x, *state = _run_one_layer(layer, packing, x, *initial)
            state = tuple(state) if len(state) > 1 else state[0]
            states.append(state)
            if all_hidden is not None:
                all_hidden.append(x if packing is None else packing.to_original(x))
            if i < len(self.layers) - 1:
                x = self.hidden_dropout(x)
        if packing is not None:
            x = packing.to_original(x)
        return x, states


class RecurrentForCausalLM(RecurrentPreTrainedModel, GenerationMixin):
    """Recurrent language model: predicts token t+1 from h_t. Generation carries the RecurrentState."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: RecurrentConfig):
        super().__init__(config)
        self.model = RecurrentModel(config)
        self.output_dropout = nn.Dropout(config.output_dropout_prob)
        # tying needs the LM head to read vectors of the embedding width
        self.projection = (
            nn.Linear(config.hidden_size, config.embedding_size, bias=False) if config.projects_to_embeddings else None
        )
        head_in = config.embedding_size if config.tie_word_embeddings else config.hidden_size
        self.lm_head = nn.Linear(head_in, config.vocab_size, bias=True)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def generate(self, *args, **kwargs):
        # Assisted decoding (a draft model or prompt lookup) rolls the cache back past rejected draft tokens, which a
        # recurrent state cannot do. transformers 5.17-5.24 refuse it for `_is_stateful` models; 5.25 dropped that
        # check and fails later with "Assisted decoding requires a cache": refuse it here the same way on every version.
        config = kwargs.get("generation_config") or self.generation_config
        assisted = kwargs.get("assistant_model") is not None or any(
            kwargs.get(name, getattr(config, name, None))
            for name in ("prompt_lookup_num_tokens", "assistant_early_exit")
        )
        if assisted:
            raise ValueError(
                f"assisted generation is not supported with stateful models, such as {type(self).__name__}: its "
                "recurrent state cannot be rolled back past rejected draft tokens; call generate without "
                "assistant_model, prompt_lookup_num_tokens or assistant_early_exit"
            )
        self._check_generation_length(args[0] if args else None, kwargs, config)
        return super().generate(*args, **kwargs)

    def _check_generation_length(self, inputs, kwargs: dict, config) -> None:
        # The recurrence has no position table, so nothing would stop max_new_tokens=10**9 until the process is
        # killed. Like the decoder, refuse a total length beyond max_position_embeddings, before any step runs; no
        # weight depends on it here, so raising the config value is free.
        for name in ("inputs", "input_ids", "inputs_embeds"):
            inputs = kwargs.get(name) if inputs is None else inputs
        prompt = int(inputs.shape[1]) if torch.is_tensor(inputs) and inputs.dim() >= 2 else 0
        max_new = kwargs.get("max_new_tokens", getattr(config, "max_new_tokens", None))
        total = (
            prompt + max_new if max_new is not None else kwargs.get("max_length", getattr(config, "max_length", None))
        )
        limit = self.config.max_position_embeddings
        if isinstance(total, (int, float)) and total > limit:
            asked = f"{prompt} prompt + {max_new} new tokens" if max_new is not None else "max_length"
            raise ValueError(
                f"Sequence length {total} ({asked}) exceeds max_position_embeddings={limit} of this recurrent model, "
                f"the longest generation it allows: lower max_new_tokens (or max_length), or raise "
                f"model.config.max_position_embeddings (no weight depends on it in a recurrent model)."
            )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache: RecurrentState | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int = 0,
        past_key_values: RecurrentState | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        r"""`labels` are the input ids (shifted inside: position t is scored on token t+1); -100 is ignored.
        `logits_to_keep=k` computes the vocabulary projection for the last k positions only (0: all).
        `num_items_in_batch` (keyword) turns the mean loss into a sum divided by that count, for gradient
        accumulation. `cache` (`past_key_values` before transformers 5.24): the RecurrentState to continue from."""
        return_dict = self.config.return_dict if return_dict is None else return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            cache=_one_cache(cache, past_key_values),
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        hidden = outputs.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        hidden = self.output_dropout(hidden)
        if self.projection is not None:
            hidden = self.projection(hidden)
        logits = self.lm_head(hidden)

        loss = _next_token_loss(logits, labels, kwargs.get("num_items_in_batch")) if labels is not None else None
        state = getattr(outputs, _CACHE_FIELD)
        if not return_dict:
            out = (logits, state, outputs.hidden_states)
            out = tuple(v for v in out if v is not None)
            return (loss, *out) if loss is not None else out
        return CausalLMOutputWithPast(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, **{_CACHE_FIELD: state}
        )

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        cache: RecurrentState | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        past_key_values: RecurrentState | None = None,
        **kwargs,
    ) -> dict:
        # transformers >= 5.24 hands the state back as `cache`, earlier versions as `past_key_values`
        cache = _one_cache(cache, past_key_values)
        history = input_ids.size(1) + (inputs_embeds.size(1) if inputs_embeds is not None else 0)
        if cache is not None and cache.get_seq_length() > 0:
            # the state already summarises the prompt and earlier tokens: feed only the tokens it has not seen
            # (one while decoding); a single new token is never padding, so no mask is needed
            new = min(max(history - cache.get_seq_length(), 1), input_ids.size(1))
            mask = attention_mask[:, -new:] if attention_mask is not None and new > 1 else None
            model_inputs = {"input_ids": input_ids[:, -new:], "attention_mask": mask}
        elif inputs_embeds is not None:
            # a prompt given as embeddings: input_ids hold only the tokens generated since (none at first)
            embeds = inputs_embeds
            if input_ids.size(1) > 0:
                embeds = torch.cat([inputs_embeds, self.get_input_embeddings()(input_ids)], dim=1)
            model_inputs = {"inputs_embeds": embeds, "attention_mask": attention_mask}
        else:
            model_inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        model_inputs.update(cache=cache, use_cache=use_cache, logits_to_keep=1)
        if kwargs.get("output_hidden_states") is not None:
            model_inputs["output_hidden_states"] = kwargs["output_hidden_states"]
        return model_inputs


def _next_token_loss(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Cross entropy of position t's logits against token t+1 (-100 ignored): the mean, or the sum divided by
    `num_items_in_batch` when Trainer passes it (gradient accumulation), as the decoder's loss does."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:].to(logits.device)
    reduction = "mean" if num_items_in_batch is None else "sum"
    loss = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=-100,
        reduction=reduction,
    )
    if num_items_in_batch is not None:
        loss = loss / num_items_in_batch
    return loss


# Copied from seqlab.models.decoder.modeling_decoder._classification_loss
def _classification_loss(
    config, logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None
) -> torch.Tensor:
    """Cross entropy for single-label classes, MSE when ``num_labels == 1`` (regression), BCE for
    multi-label targets (``problem_type`` decides when set).

    With ``num_items_in_batch`` (Trainer passes the label count of all the micro-batches of one accumulated step,
    and then does not divide the loss by the accumulation steps itself) the sum over this batch is divided by it,
    so accumulated steps equal one large batch's."""
    num_labels = logits.shape[-1]
    problem_type = config.problem_type
    if problem_type is None:
        if num_labels == 1:
            problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem_type = "single_label_classification"
        else:
            problem_type = "multi_label_classification"
    labels = labels.to(logits.device)
    reduction = "mean" if num_items_in_batch is None else "sum"
    if problem_type == "regression":
        loss = F.mse_loss(logits.float().squeeze(-1), labels.float().reshape(logits.shape[0]), reduction=reduction)
    elif problem_type == "single_label_classification":
        loss = F.cross_entropy(logits.float(), labels.reshape(-1), reduction=reduction)
    else:
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction=reduction)
    if num_items_in_batch is not None:
        loss = loss / (
            num_items_in_batch.to(loss.device) if torch.is_tensor(num_items_in_batch) else num_items_in_batch
        )
    return loss


def pool_hidden_states(hidden: torch.Tensor, mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """Summarise (batch, time, hidden) into (batch, features), ignoring positions where mask is 0.

    Works for right and left padding: "last" takes the last position whose mask is 1.
    """
    if mask is None:
        mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
    mask = mask[:, -hidden.size(1) :].to(hidden.device)
    positions = torch.arange(hidden.size(1), device=hidden.device)
    last_index = (mask.long() * (positions + 1)).argmax(dim=1)
    last = hidden[torch.arange(hidden.size(0), device=hidden.device), last_index]
    if pooling == "last":
        return last
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    if pooling == "mean":
        return mean
    fill = torch.finfo(hidden.dtype).min
    maximum = hidden.masked_fill(weights == 0, fill).max(dim=1).values
    if pooling == "max":
        return maximum
    return torch.cat([last, mean, maximum], dim=-1)


class RecurrentForSequenceClassification(RecurrentPreTrainedModel):
    """Recurrent encoder of the sequence + pooling (last / mean / max / concat) + a linear classifier."""

    def __init__(self, config: RecurrentConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = RecurrentModel(config)
        pooled = config.hidden_size * (3 if config.pooling == "concat" else 1)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(pooled, config.num_labels)
        self.post_init()

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentForCausalLM.get_input_embeddings
    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentForCausalLM.set_input_embeddings
    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast | tuple:
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if attention_mask is None and input_ids is not None and self.config.pad_token_id is not None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        pooled = pool_hidden_states(outputs.last_hidden_state, attention_mask, self.config.pooling)
        logits = self.classifier(self.dropout(pooled))

        loss = (
            _classification_loss(self.config, logits, labels, kwargs.get("num_items_in_batch"))
            if labels is not None
            else None
        )
        if not return_dict:
            out = (logits,) + ((outputs.hidden_states,) if outputs.hidden_states is not None else ())
            return (loss, *out) if loss is not None else out
        return SequenceClassifierOutputWithPast(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


_FAMILY_AUTO_MAP = {
    "AutoModel": "modeling_recurrent.RecurrentModel",
    "AutoModelForCausalLM": "modeling_recurrent.RecurrentForCausalLM",
    "AutoModelForSequenceClassification": "modeling_recurrent.RecurrentForSequenceClassification",
}

__all__ = [
    "RecurrentState",
    "RecurrentPreTrainedModel",
    "RecurrentModel",
    "RecurrentForCausalLM",
    "RecurrentForSequenceClassification",
]
