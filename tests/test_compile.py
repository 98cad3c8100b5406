"""`torch.compile` (the GPU throughput option, `torch_compile: true`) traces every family and trains to the
same loss and gradients as eager mode.

The `aot_eager` backend runs dynamo's tracing and AOTAutograd's joint graph, where a model breaks under
compile, without generating kernels, so these tests take seconds on a CPU.
"""

import pytest
import torch
import torch._dynamo

from seqlab import (
    DecoderConfig,
    DecoderForCausalLM,
    EncoderConfig,
    EncoderForMaskedLM,
    RecurrentConfig,
    RecurrentForCausalLM,
)

TRANSFORMER = dict(
    vocab_size=64,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)
MODELS = {
    "decoder": lambda: DecoderForCausalLM(DecoderConfig(**TRANSFORMER)),
    "encoder": lambda: EncoderForMaskedLM(EncoderConfig(**TRANSFORMER)),
    # seqlab's pretraining projects only the masked tokens: a data-dependent shape under the compiler
    "encoder-sparse": lambda: EncoderForMaskedLM(EncoderConfig(**TRANSFORMER, sparse_prediction=True)),
    "recurrent": lambda: RecurrentForCausalLM(
        RecurrentConfig(
            vocab_size=64,
            cell_type="lstm",
            embedding_size=16,
            hidden_size=24,
            num_hidden_layers=2,
            embedding_dropout_prob=0.0,
            hidden_dropout_prob=0.0,
            output_dropout_prob=0.0,
        )
    ),
}


def _batch(family):
    ids = torch.randint(5, 64, (4, 24), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    if family.startswith("encoder"):
        labels[:, 1::3] = -100  # the masked-LM head scores only the chosen positions
    return {"input_ids": ids, "labels": labels}  # packed blocks: no attention_mask, the fast path


def _loss_and_grads(model, batch):
    loss = model(**batch).loss
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    return loss.detach(), grads


@pytest.mark.parametrize("family", sorted(MODELS))
def test_compiled_training_step_matches_eager(family):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = MODELS[family]().train()
    batch = _batch(family)
    eager_loss, eager_grads = _loss_and_grads(model, batch)
    compiled = torch.compile(model, backend="aot_eager")
    for _ in range(2):  # the second call runs the cached graph
        loss, grads = _loss_and_grads(compiled, batch)
        torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=1e-6)
        assert len(grads) == len(eager_grads)
        for got, want in zip(grads, eager_grads):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_decoder_compiles_to_one_graph_on_packed_blocks():
    # no graph break: the whole step (attention through SDPA's causal kernel, loss) is one compiled graph
    torch._dynamo.reset()
    model = MODELS["decoder"]().train()
    explanation = torch._dynamo.explain(model)(**_batch("decoder"))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
