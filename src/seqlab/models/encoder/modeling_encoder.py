"""BERT-style encoder-only Transformer as a ``transformers`` model.

Every token attends to every non-pad token, before and after it (bidirectional self-attention),
so the encoder reads a whole sentence at once; it is pretrained by masked language modelling
(predict the tokens replaced by ``<mask>``) and fine-tuned as a classifier on the ``<s>`` token.

Blocks are **pre-LayerNorm** (``x + SelfAttention(LN(x))``, ``x + MLP(LN(x))``, one final
LayerNorm), unlike BERT's post-LN: it trains stably across learning rates without a long
warm-up, and matches the seqlab decoder block for block, so that the two differ only in the
attention mask and the pretraining objective.

This file imports only ``torch``, ``transformers`` and its own configuration, so that
``register_for_auto_class`` can copy it into a saved folder that loads with
``trust_remote_code=True`` on a machine without seqlab (hence the few helpers it shares in spirit
with the decoder are written out here again).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F
from transformers import initialization as init
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput, SequenceClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel

from .configuration_encoder import EncoderConfig


# Copied from seqlab.models.decoder.modeling_decoder.sinusoidal_positional_encoding
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
    """Scaled dot-product attention written out, returning the attention weights. Accepts an
    additive float mask (eager), a boolean mask (sdpa, when ``output_attentions`` forces this path)
    or ``None`` (no padding: attend everywhere)."""
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


class EncoderSelfAttention(nn.Module):
    """Bidirectional multi-head self-attention: fused query/key/value projection, one attention
    kernel (sdpa or eager, from the config), one output projection."""

    is_causal = False  # read by the sdpa kernel: never apply a causal triangle here

    # Copied from seqlab.models.decoder.modeling_decoder.DecoderSelfAttention.__init__ with Decoder->Encoder
    def __init__(self, config: EncoderConfig, layer_idx: int):
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
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch_size, length, _ = hidden_states.shape
        # split, not a permuted view + unbind: the backward then concatenates the three gradients straight
        # into the projection's layout (no extra copy); 1.07x vs 0.95x of compiled HF GPT-2 on CPU
        query, key, value = (
            part.view(batch_size, length, self.num_heads, self.head_dim).transpose(1, 2)  # (batch, heads, length, dim)
            for part in self.qkv_proj(hidden_states).split(self.num_heads * self.head_dim, dim=-1)
        )
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


# Copied from seqlab.models.decoder.modeling_decoder.DecoderMLP with Decoder->Encoder
class EncoderMLP(nn.Module):
    """Position-wise feed-forward network: expand, GELU, project back."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.fc_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc_out = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc_out(F.gelu(self.fc_in(hidden_states))))


class EncoderBlock(GradientCheckpointingLayer):
    """Pre-LayerNorm block: attention sub-layer then feed-forward sub-layer, each added back to
    the residual stream."""

    # Copied from seqlab.models.decoder.modeling_decoder.DecoderBlock.__init__ with Decoder->Encoder
    def __init__(self, config: EncoderConfig, layer_idx: int):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = EncoderSelfAttention(config, layer_idx)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = EncoderMLP(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attention_output, weights = self.self_attn(
            self.attention_norm(hidden_states), attention_mask, output_attentions
        )
        hidden_states = hidden_states + attention_output
        hidden_states = hidden_states + self.mlp(self.mlp_norm(hidden_states))
        return hidden_states, weights


class EncoderMaskedLMHead(nn.Module):
    """BERT's prediction head: dense + GELU + LayerNorm, then the vocabulary projection (tied to the
    token embeddings) with its own bias."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.layer_norm(F.gelu(self.dense(hidden_states))))


class EncoderClassificationHead(nn.Module):
    """BERT's sentence head on the first real token (``<s>``, the ``[CLS]``): dense + tanh (BERT's
    pooler), dropout, then the output layer.

    Both linear layers are new when a masked LM is loaded as a classifier, so both live in this one
    module named ``classifier`` (``dense`` + ``out_proj``, the layout of transformers'
    ``RobertaClassificationHead``): PEFT saves modules named ``classifier`` by default
    (``modules_to_save``), so a reloaded adapter brings the whole head back, not a random pooler.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, first_token_states: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(torch.tanh(self.dense(first_token_states))))


# Checkpoints written before the head moved under `classifier` kept the pooler apart; loading renames their keys.
_LEGACY_HEAD_KEYS = {
    r"^pooler\.dense\.": "classifier.dense.",
    r"^classifier\.weight$": "classifier.out_proj.weight",
    r"^classifier\.bias$": "classifier.out_proj.bias",
}


class EncoderPreTrainedModel(PreTrainedModel):
    config_class = EncoderConfig
    config: EncoderConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["EncoderBlock"]
    _supports_sdpa = True
    _supports_attention_backend = True

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentPreTrainedModel.save_pretrained
    def save_pretrained(self, save_directory, *args, **kwargs):
        if self._auto_class is not None:
            # every head of the family lives in this file: list them all in auto_map, so that a saved
            # language model also loads as a classifier or a bare body with trust_remote_code=True
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **_FAMILY_AUTO_MAP}
        return super().save_pretrained(save_directory, *args, **kwargs)

    # Copied from seqlab.models.decoder.modeling_decoder.DecoderPreTrainedModel._init_weights
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


class EncoderModel(EncoderPreTrainedModel):
    """The bare encoder: token embeddings plus positional encodings, the blocks, a final LayerNorm.

    ``hidden_states`` (with ``output_hidden_states=True``) holds ``num_hidden_layers + 1`` tensors:
    the embeddings, the output of every block but the last, and the final normalised output.
    """

    # Copied from seqlab.models.decoder.modeling_decoder.DecoderModel.__init__ with Decoder->Encoder
    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        if config.position_embedding_type == "learned":
            self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = nn.ModuleList([EncoderBlock(config, i) for i in range(config.num_hidden_layers)])
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentModel.get_input_embeddings
    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentModel.set_input_embeddings
    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def _check_length(self, length: int) -> None:
        limit = self.config.max_position_embeddings
        if self.config.position_embedding_type == "learned" and length > limit:
            raise ValueError(
                f"Sequence length {length} exceeds max_position_embeddings={limit} of this encoder's learned "
                f"positional encodings: truncate the input (tokenizer truncation=True, max_length={limit})."
            )

    # Copied from seqlab.models.decoder.modeling_decoder.DecoderModel._embed
    def _embed(self, input_ids, inputs_embeds, position_ids) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if self.config.position_embedding_type == "learned":
            return inputs_embeds + self.embed_positions(position_ids)
        # as in "Attention Is All You Need": scale the tokens so the unit-amplitude sinusoids do not drown them
        scaled = inputs_embeds * math.sqrt(self.config.hidden_size)
        return scaled + sinusoidal_positional_encoding(position_ids, self.config.hidden_size, inputs_embeds.dtype)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutput | tuple:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("EncoderModel.forward needs exactly one of input_ids or inputs_embeds.")
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict

        length = input_ids.shape[1] if input_ids is not None else inputs_embeds.shape[1]
        self._check_length(length)
        if position_ids is None:
            device = input_ids.device if input_ids is not None else inputs_embeds.device
            position_ids = torch.arange(length, device=device).unsqueeze(0)
            if attention_mask is not None and attention_mask.ndim == 2:
                # count real tokens only, so that left padding does not shift the positions
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0).to(device)

        hidden_states = self.dropout(self._embed(input_ids, inputs_embeds, position_ids))
        if attention_mask is None and self.config._attn_implementation == "sdpa":
            # Nothing padded: sdpa runs unmasked (flash on GPU). Deciding it here keeps that kernel under
            # torch.compile too, where transformers 5.17 builds a full all-true mask.
            padding_mask = None
        else:
            # None when nothing is padded: sdpa then runs unmasked
            padding_mask = create_bidirectional_mask(
                config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask
            )

        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states, weights = layer(
                hidden_states, attention_mask=padding_mask, output_attentions=output_attentions
            )
            if output_attentions:
                all_attentions += (weights,)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)

        output = BaseModelOutput(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, attentions=all_attentions
        )
        return output if return_dict else output.to_tuple()


class EncoderForMaskedLM(EncoderPreTrainedModel):
    """The encoder with BERT's masked-language-modelling head.

    Logits have shape ``(batch, sequence, vocab_size)``, as every transformers masked LM returns them.
    With ``config.sparse_prediction`` and ``labels`` given, the head runs only where ``labels != -100``
    (the masked tokens, ~15%), which is where most of the pretraining time would otherwise go:
    ``logits`` then has shape ``(num_masked, vocab_size)``, its rows in the order of
    ``labels[labels != -100]``. Either way ``loss`` is the mean cross entropy over the masked tokens.
    """

    _tied_weights_keys = {"lm_head.decoder.weight": "model.embed_tokens.weight"}

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        self.model = EncoderModel(config)
        self.lm_head = EncoderMaskedLMHead(config)
        self.post_init()

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentForCausalLM.get_input_embeddings
    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentForCausalLM.set_input_embeddings
    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head.decoder = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MaskedLMOutput | tuple:
        r"""``num_items_in_batch`` (keyword) turns the mean loss into a sum divided by that count,
        for gradient accumulation."""
        return_dict = self.config.return_dict if return_dict is None else return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        hidden_states = outputs.last_hidden_state
        loss = None
        if labels is None:
            logits = self.lm_head(hidden_states)
        else:
            labels = labels.to(hidden_states.device)
            is_masked = labels != -100
            if self.config.sparse_prediction:
                logits = scored = self.lm_head(hidden_states[is_masked])
            else:
                logits = self.lm_head(hidden_states)
                scored = logits[is_masked]
            # the same rows and the same reduction on both paths, so the loss does not depend on the switch
            loss = _masked_lm_loss(scored, labels[is_masked], kwargs.get("num_items_in_batch"))

        output = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


def _masked_lm_loss(logits: torch.Tensor, targets: torch.Tensor, num_items_in_batch) -> torch.Tensor:
    """Mean cross entropy of the masked tokens' logits ``(num_masked, vocab)``; a sum divided by
    ``num_items_in_batch`` when Trainer passes it (gradient accumulation)."""
    if targets.numel() == 0:
        return logits.sum() * 0.0  # nothing masked: a zero that keeps the graph (and DDP) intact
    if num_items_in_batch is None:
        return F.cross_entropy(logits.float(), targets)
    return F.cross_entropy(logits.float(), targets, reduction="sum") / num_items_in_batch


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


class EncoderForSequenceClassification(EncoderPreTrainedModel):
    """Sentence classification as in BERT: the first token (``<s>``), which reads every other token
    through bidirectional attention, pooled by dense + tanh, then dropout and a linear layer (all of
    the head in ``classifier``, see ``EncoderClassificationHead``).

    With left padding the first *real* token is used: found from ``attention_mask``, or without a
    mask as the first token that is not ``pad_token_id``.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = EncoderModel(config)
        self.classifier = EncoderClassificationHead(config)
        self.post_init()

    @classmethod
    def from_pretrained(cls, *args, key_mapping: dict | None = None, **kwargs):
        """``PreTrainedModel.from_pretrained``; a checkpoint saved with the earlier head layout
        (``pooler.dense`` + ``classifier``) loads into ``classifier.dense`` + ``classifier.out_proj``."""
        loaded = super().from_pretrained(*args, key_mapping={**_LEGACY_HEAD_KEYS, **(key_mapping or {})}, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        # transformers reverses a load-time renaming when saving: the renaming is one-way (always save the new names)
        conversions = getattr(model, "_weight_conversions", None)
        if conversions:
            legacy = set(_LEGACY_HEAD_KEYS)
            model._weight_conversions = [c for c in conversions if not set(getattr(c, "source_patterns", ())) & legacy]
        return loaded

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentForCausalLM.get_input_embeddings
    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    # Copied from seqlab.models.recurrent.modeling_recurrent.RecurrentForCausalLM.set_input_embeddings
    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def _first_token_index(self, input_ids, attention_mask, batch_size: int, device) -> torch.Tensor:
        if attention_mask is not None and attention_mask.ndim == 2:
            is_real = attention_mask.to(device) != 0
        elif input_ids is not None and self.config.pad_token_id is not None:
            is_real = input_ids.to(device) != self.config.pad_token_id
        else:
            return torch.zeros(batch_size, dtype=torch.long, device=device)
        return is_real.int().argmax(-1)  # argmax returns the first of the maximal entries

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        return_dict = self.config.return_dict if return_dict is None else return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        hidden_states = outputs.last_hidden_state
        first = self._first_token_index(input_ids, attention_mask, hidden_states.shape[0], hidden_states.device)
        batch = torch.arange(hidden_states.shape[0], device=hidden_states.device)
        logits = self.classifier(hidden_states[batch, first])
        loss = (
            _classification_loss(self.config, logits, labels, kwargs.get("num_items_in_batch"))
            if labels is not None
            else None
        )
        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


_FAMILY_AUTO_MAP = {
    "AutoModel": "modeling_encoder.EncoderModel",
    "AutoModelForMaskedLM": "modeling_encoder.EncoderForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_encoder.EncoderForSequenceClassification",
}

__all__ = [
    "EncoderPreTrainedModel",
    "EncoderModel",
    "EncoderForMaskedLM",
    "EncoderForSequenceClassification",
]
