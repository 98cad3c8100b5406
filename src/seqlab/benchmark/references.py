"""The models a user would pick instead of seqlab, built at exactly seqlab's sizes.

- decoder -> ``transformers.GPT2LMHeadModel``: same layers, width, heads, feed-forward width,
  positions, dropout and LayerNorm epsilon; SDPA attention; exact GELU (seqlab's activation; GPT-2's
  default tanh approximation ``gelu_new`` is a chain of small kernels in eager mode, which would
  flatter seqlab); tied head.
- encoder -> ``transformers.BertForMaskedLM`` at the same sizes, SDPA, tied decoder.
- recurrent LSTM -> :class:`PlainLSTMLanguageModel`: the textbook PyTorch LSTM language model.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel
from transformers.modeling_outputs import CausalLMOutput


def gpt2_reference(config) -> GPT2LMHeadModel:
    """``GPT2LMHeadModel`` matched to a seqlab ``DecoderConfig``."""
    reference = GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.max_position_embeddings,
        n_embd=config.hidden_size,
        n_layer=config.num_hidden_layers,
        n_head=config.num_attention_heads,
        n_inner=config.intermediate_size,
        activation_function="gelu",
        resid_pdrop=config.hidden_dropout_prob,
        embd_pdrop=config.hidden_dropout_prob,
        attn_pdrop=config.attention_probs_dropout_prob,
        layer_norm_epsilon=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    return GPT2LMHeadModel(reference)


def bert_reference(config) -> BertForMaskedLM:
    """``BertForMaskedLM`` matched to a seqlab ``EncoderConfig``."""
    reference = BertConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        hidden_act="gelu",
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        max_position_embeddings=config.max_position_embeddings,
        layer_norm_eps=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        pad_token_id=config.pad_token_id,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    return BertForMaskedLM(reference)


class PlainLSTMLanguageModel(nn.Module):
    """Embedding -> ``nn.LSTM`` (all layers in one module, one cuDNN call) -> projection to the
    embedding width -> output layer tied to the embeddings. Dropout on the embeddings, between the
    layers and on the output, as seqlab's recurrent model places it."""

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int,
        hidden_size: int,
        num_layers: int,
        embedding_dropout: float = 0.1,
        hidden_dropout: float = 0.1,
        output_dropout: float = 0.1,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.lstm = nn.LSTM(
            embedding_size, hidden_size, num_layers=num_layers, dropout=hidden_dropout, batch_first=True
        )
        self.output_dropout = nn.Dropout(output_dropout)
        self.projection = nn.Linear(hidden_size, embedding_size, bias=False) if hidden_size != embedding_size else None
        self.output = nn.Linear(embedding_size, vocab_size)
        self.output.weight = self.embedding.weight

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> CausalLMOutput:
        hidden, _ = self.lstm(self.embedding_dropout(self.embedding(input_ids)))
        hidden = self.output_dropout(hidden)
        if self.projection is not None:
            hidden = self.projection(hidden)
        logits = self.output(hidden)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))
        return CausalLMOutput(loss=loss, logits=logits)


def lstm_reference(config) -> PlainLSTMLanguageModel:
    """The plain LSTM language model matched to a seqlab ``RecurrentConfig`` with ``cell_type="lstm"``."""
    if config.cell_type != "lstm":
        raise ValueError(f"the plain LSTM reference needs cell_type='lstm', got {config.cell_type!r}")
    return PlainLSTMLanguageModel(
        vocab_size=config.vocab_size,
        embedding_size=config.embedding_size,
        hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers,
        embedding_dropout=config.embedding_dropout_prob,
        hidden_dropout=config.hidden_dropout_prob,
        output_dropout=config.output_dropout_prob,
    )
