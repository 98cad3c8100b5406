"""GPT-style decoder-only Transformer as a ``transformers`` model.

Each block is pre-LayerNorm: ``x + SelfAttention(LN(x))`` then ``x + MLP(LN(x))``, with masked
(causal) multi-head self-attention so that a token only attends to itself and to earlier tokens,
and a GELU feed-forward network. Positions come from a learned table or from the fixed sinusoidal
positional encoding. The language-modelling head shares its weights with the token embeddings.

This file imports only ``torch``, ``transformers`` and its own configuration, so that
``register_for_auto_class`` can copy it into a saved folder that loads with
``trust_remote_code=True`` on a machine without seqlab.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel

from .configuration_decoder import DecoderConfig

# transformers 5.24 renamed the cache from `past_key_values` to `cache`, as `generate`'s argument and as the output
# field it reads back (the old names are deprecated until 5.40); 5.17-5.23 know only `past_key_values`. Outputs are
# built under the name the installed version declares, and `forward` accepts both names: a model that read only the
# old name would run every cached step of 5.24's `generate` without its past.
_CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


# Copied from seqlab.models.recurrent.modeling_recurrent._one_cache with recurrent state->KV cache
def _one_cache(cache, past_key_values):
    if cache is not None and past_key_values is not None:
        raise ValueError("Pass the KV cache as `cache` or as `past_key_values`, not both.")
    return cache if cache is not None else past_key_values


def sinusoidal_positional_encoding(position_ids: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """The fixed encoding of "Attention Is All You Need": ``sin(pos / 10000^(2i/d))`` in the first
    half of the features, ``cos`` in the second. Computed on the fly (it is cheap) so that nothing
    is stored in the checkpoint."""
    half = (dim + 1) // 2
    frequencies = torch.exp(
        torch.arange(half, device=position_ids.device, dtype=torch.float32) * (-math.log(10000.0) * 2 / dim)
    )
    angles = position_ids.to(torch.float32).unsqueeze(-1) * frequencies
    return torch.cat([angles.sin(), angles.cos()], dim=-1)[..., :dim].to(dtype)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention written out, returning the attention weights.

    Accepts every mask the masking utilities build: an additive float mask (eager), a boolean mask
    (sdpa, used when ``output_attentions`` forces this path), or ``None``, which for a causal module
    means the plain causal triangle that sdpa would apply through ``is_causal``.
    """
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    lowest = torch.finfo(scores.dtype).min  # finite, so fully padded rows give uniform weights, not NaN
    if attention_mask is None:
        if getattr(module, "is_causal", False) and query.shape[-2] > 1:
            allowed = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool, device=scores.device).tril()
            scores = scores.masked_fill(~allowed, lowest)
    elif attention_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attention_mask, lowest)
    else:
        scores = scores + attention_mask
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


class DecoderSelfAttention(nn.Module):
    """Masked multi-head self-attention: one fused projection to queries, keys and values, one
    attention kernel (sdpa or eager, from the config), one output projection."""

    is_causal = True

    def __init__(self, config: DecoderConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_probs_dropout_prob
        self.qkv_proj = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.resid_dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch_size, length, _ = hidden_states.shape
        # split, not a permuted view + unbind: the backward then concatenates the three gradients straight
        # into the projection's layout (no extra copy); 1.07x vs 0.95x of compiled HF GPT-2 on CPU
        query, key, value = (
            part.view(batch_size, length, self.num_heads, self.head_dim).transpose(1, 2)  # (batch, heads, length, dim)
            for part in self.qkv_proj(hidden_states).split(self.num_heads * self.head_dim, dim=-1)
        )
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)

        if output_attentions:  # only the eager kernel materialises the weights: use it for this call
            attention = eager_attention_forward
        else:
            attention = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        output, weights = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
        )
        output = self.resid_dropout(self.out_proj(output.reshape(batch_size, length, -1)))
        return output, weights


class DecoderMLP(nn.Module):
    """Position-wise feed-forward network: expand, GELU, project back."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.fc_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc_out = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc_out(F.gelu(self.fc_in(hidden_states))))


class DecoderBlock(GradientCheckpointingLayer):
    """Pre-LayerNorm block: normalising before each sub-layer keeps the residual path an identity,
    which makes training stable without a careful warm-up."""

    def __init__(self, config: DecoderConfig, layer_idx: int):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = DecoderSelfAttention(config, layer_idx)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = DecoderMLP(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        output_attentions: bool = False,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attention_output, weights = self.self_attn(
            self.attention_norm(hidden_states), attention_mask, cache, output_attentions
        )
        hidden_states = hidden_states + attention_output
        hidden_states = hidden_states + self.mlp(self.mlp_norm(hidden_states))
        return hidden_states, weights


class DecoderPreTrainedModel(PreTrainedModel):
    config_class = DecoderConfig
    config: DecoderConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["DecoderBlock"]
    _skip_keys_device_placement = ["cache", "past_key_values"]
    _supports_sdpa = True
    _supports_attention_backend = True

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentPreTrainedModel.save_pretrained
    def save_pretrained(self, save_directory, *args, **kwargs):
        if self._auto_class is not None:
            # every head of the family lives in this file: list them all in auto_map, so that a saved
            # language model also loads as a classifier or a bare body with trust_remote_code=True
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **_FAMILY_AUTO_MAP}
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # transformers' init helpers skip tensors already loaded from a checkpoint
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


def _position_ids_from(
    attention_mask: torch.Tensor | None, past_length: int, length: int, device: torch.device
) -> torch.Tensor:
    """Positions of the new tokens. With a padding mask covering past and new tokens, count only
    real tokens (left-padded prompts then start at position 0, as the same prompt alone would);
    otherwise continue from the cache length."""
    if attention_mask is not None and attention_mask.ndim == 2 and attention_mask.shape[-1] == past_length + length:
        positions = attention_mask.long().cumsum(-1) - 1
        positions = positions.masked_fill(attention_mask == 0, 0)
        return positions[:, -length:]
    return torch.arange(past_length, past_length + length, device=device).unsqueeze(0)


class DecoderModel(DecoderPreTrainedModel):
    """The bare decoder: token embeddings plus positional encodings, the blocks, a final LayerNorm.

    ``hidden_states`` (with ``output_hidden_states=True``) holds ``num_hidden_layers + 1`` tensors:
    the embeddings, the output of every block but the last, and the final normalised output.
    """

    def __init__(self, config: DecoderConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        if config.position_embedding_type == "learned":
            self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = nn.ModuleList([DecoderBlock(config, i) for i in range(config.num_hidden_layers)])
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentModel.get_input_embeddings
    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentModel.set_input_embeddings
    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def _check_length(self, past_length: int, length: int) -> None:
        if length == 0:  # would fail deep inside attention with a shape error
            raise ValueError(
                "DecoderModel got an empty input (0 tokens, e.g. input_ids of shape (1, 0)): pass at least one "
                "token; to generate from nothing, start from the tokenizer's bos_token_id (<s>)."
            )
        limit = self.config.max_position_embeddings
        if self.config.position_embedding_type == "learned" and past_length + length > limit:
            raise ValueError(
                f"Sequence length {past_length + length} ({past_length} cached + {length} new tokens) exceeds "
                f"max_position_embeddings={limit} of this decoder's learned positional encodings: truncate the "
                f"input, lower max_new_tokens, or use a model with more positions."
            )

    def _embed(self, input_ids, inputs_embeds, position_ids) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if self.config.position_embedding_type == "learned":
            return inputs_embeds + self.embed_positions(position_ids)
        # as in "Attention Is All You Need": scale the tokens so the unit-amplitude sinusoids do not drown them
        scaled = inputs_embeds * math.sqrt(self.config.hidden_size)
        return scaled + sinusoidal_positional_encoding(position_ids, self.config.hidden_size, inputs_embeds.dtype)

    def _causal_mask(self, hidden_states, attention_mask, cache, given_position_ids) -> torch.Tensor | None:
        if (
            attention_mask is None
            and cache is None
            and given_position_ids is None
            and self.config._attn_implementation == "sdpa"
        ):
            # Nothing padded, cached or packed: sdpa's is_causal kernel (flash on GPU) needs no mask. Deciding it
            # here keeps that kernel under torch.compile too, where transformers 5.17 builds a full causal mask.
            return None
        # With no padding and no cache this is None for sdpa, which then runs its fast is_causal kernel.
        # Only caller-given positions are passed on: they may describe packed documents. The cache goes by
        # position: its parameter is `cache` from transformers 5.24 on, `past_key_values` before.
        return create_causal_mask(self.config, hidden_states, attention_mask, cache, position_ids=given_position_ids)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast | tuple:
        r"""``cache`` (transformers >= 5.24's name; ``past_key_values`` before, still accepted): the KV cache of
        the tokens before ``input_ids``; updated in place and returned when ``use_cache``."""
        cache = _one_cache(cache, past_key_values)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("DecoderModel.forward needs exactly one of input_ids or inputs_embeds.")
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if self.gradient_checkpointing and self.training:
            use_cache, cache = False, None  # recomputing a block would append its keys to the cache twice
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)

        length = input_ids.shape[1] if input_ids is not None else inputs_embeds.shape[1]
        past_length = cache.get_seq_length() if cache is not None else 0
        self._check_length(past_length, length)
        given_position_ids = position_ids
        if position_ids is None:
            device = input_ids.device if input_ids is not None else inputs_embeds.device
            position_ids = _position_ids_from(attention_mask, past_length, length, device)

        hidden_states = self.dropout(self._embed(input_ids, inputs_embeds, position_ids))
        causal_mask = self._causal_mask(hidden_states, attention_mask, cache, given_position_ids)

        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states, weights = layer(
                hidden_states,
                attention_mask=causal_mask,
                cache=cache,
                output_attentions=output_attentions,
            )
            if output_attentions:
                all_attentions += (weights,)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)

        output = BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
            **{_CACHE_FIELD: cache if use_cache else None},
        )
        return output if return_dict else output.to_tuple()


class DecoderForCausalLM(DecoderPreTrainedModel, GenerationMixin):
    """The decoder with a language-modelling head (tied to the token embeddings) predicting the
    next token. ``labels`` are the input ids themselves: they are shifted inside, -100 is ignored."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: DecoderConfig):
        super().__init__(config)
        self.model = DecoderModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentForCausalLM.get_input_embeddings
    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentForCausalLM.set_input_embeddings
    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentForCausalLM.get_output_embeddings
    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentForCausalLM.set_output_embeddings
    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        r"""``logits_to_keep``: project only the last N positions onto the vocabulary (0: all);
        ``generate`` passes 1. ``num_items_in_batch`` (keyword) turns the mean loss into a sum
        divided by that count, for gradient accumulation. ``cache``: as in ``DecoderModel.forward``."""
        return_dict = self.config.return_dict if return_dict is None else return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=_one_cache(cache, past_key_values),
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        hidden_states = outputs.last_hidden_state
        if isinstance(logits_to_keep, int) and logits_to_keep > 0:
            hidden_states = hidden_states[:, -logits_to_keep:]
        elif isinstance(logits_to_keep, torch.Tensor):
            hidden_states = hidden_states[:, logits_to_keep]
        logits = self.lm_head(hidden_states)

        loss = None
        if labels is not None:
            if logits.shape[1] != labels.shape[1]:
                raise ValueError(
                    f"labels cover {labels.shape[1]} positions but only {logits.shape[1]} logits were kept: "
                    f"call with logits_to_keep=0 to compute the loss."
                )
            loss = _next_token_loss(logits, labels, kwargs.get("num_items_in_batch"))

        output = CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            **{_CACHE_FIELD: getattr(outputs, _CACHE_FIELD)},
        )
        return output if return_dict else output.to_tuple()


def _next_token_loss(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    # shifting the labels left (not the logits) avoids copying the large logits tensor
    targets = F.pad(labels, (0, 1), value=-100)[:, 1:].to(logits.device)
    reduction = "mean" if num_items_in_batch is None else "sum"
    loss = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction=reduction
    )
    if num_items_in_batch is not None:
        loss = loss / num_items_in_batch
    return loss


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


# Copied from seqlab.models.recurrent.modeling_recurrent.pool_hidden_states
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


class DecoderForSequenceClassification(DecoderPreTrainedModel):
    """Sentence classification with a decoder: the hidden states are pooled (``config.pooling``; by
    default the last real token, which has attended to the whole sequence) and dropout and a linear
    layer classify the summary.

    Real tokens are found from ``attention_mask`` (right or left padding), or, without a mask, as
    the tokens that are not ``pad_token_id``.
    """

    def __init__(self, config: DecoderConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = DecoderModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        pooled_size = config.hidden_size * (3 if config.pooling == "concat" else 1)
        self.classifier = nn.Linear(pooled_size, config.num_labels)
        self.post_init()

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentForCausalLM.get_input_embeddings
    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentForCausalLM.set_input_embeddings
    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def _real_token_mask(self, input_ids, attention_mask) -> torch.Tensor | None:
        if attention_mask is not None and attention_mask.ndim == 2:
            return attention_mask != 0
        if input_ids is not None and self.config.pad_token_id is not None:
            return input_ids != self.config.pad_token_id
        return None  # inputs_embeds without a mask: every position is real

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast | tuple:
        return_dict = self.config.return_dict if return_dict is None else return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=_one_cache(cache, past_key_values),
            inputs_embeds=inputs_embeds,
            use_cache=bool(use_cache),
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        mask = self._real_token_mask(input_ids, attention_mask)
        pooled = pool_hidden_states(outputs.last_hidden_state, mask, self.config.pooling)
        logits = self.classifier(self.dropout(pooled))
        loss = (
            _classification_loss(self.config, logits, labels, kwargs.get("num_items_in_batch"))
            if labels is not None
            else None
        )

        output = SequenceClassifierOutputWithPast(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            **{_CACHE_FIELD: getattr(outputs, _CACHE_FIELD)},
        )
        return output if return_dict else output.to_tuple()


_FAMILY_AUTO_MAP = {
    "AutoModel": "modeling_decoder.DecoderModel",
    "AutoModelForCausalLM": "modeling_decoder.DecoderForCausalLM",
    "AutoModelForSequenceClassification": "modeling_decoder.DecoderForSequenceClassification",
}

__all__ = [
    "DecoderPreTrainedModel",
    "DecoderModel",
    "DecoderForCausalLM",
    "DecoderForSequenceClassification",
]
