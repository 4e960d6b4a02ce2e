"""torch.compile of dense and factorized models: outputs, one training step's loss and gradients, and inference
equal to eager; bucketed lengths do not recompile. The fast tests use the ``aot_eager`` backend (the same captured
forward and backward graphs, no code generation); one slow test runs inductor."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from shapeshifter.nn import KroneckerEmbedding, KroneckerLinear, LowRankLinear
from shapeshifter.nn.compiled import CompileCounter, bucket_length, compile_model, prime_inference_cache
from shapeshifter.nn.grouped import group_weights

KINDS = {
    "dense": lambda i, o: nn.Linear(i, o),
    "kron-o2": lambda i, o: KroneckerLinear(i, o, rank=2, order=2),
    "kron-o3": lambda i, o: KroneckerLinear(i, o, rank=2, order=3),
    "phm": lambda i, o: KroneckerLinear(i, o, rank=2, shape="phm2"),
    "lowrank": lambda i, o: LowRankLinear(i, o, rank=3),
}


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> None:
    """Each test compiles its own models: dynamo's per-code-object cache (and its recompile limit) starts empty."""
    torch._dynamo.reset()


class Tiny(nn.Module):
    """Embedding, two same-shaped layers (a weight group) and an output layer per kind, in sequence; "all" chains
    every kind in one model (one compilation covers them all)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        kinds = sorted(KINDS) if kind == "all" else [kind]
        self.embed = nn.Embedding(50, 16, padding_idx=0) if kind == "dense" else KroneckerEmbedding(50, 16, 2,
                                                                                                    padding_idx=0)
        self.hidden = nn.ModuleList([KINDS[k](16, 16) for k in kinds for _ in range(2)])
        self.out = KINDS[kinds[-1]](16, 10)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.out(h)


def _loss_and_grads(model: nn.Module, tokens: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    loss = model(tokens).logsumexp(-1).mean()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("kind", ["all", *(pytest.param(k, marks=pytest.mark.slow) for k in sorted(KINDS))])
def test_compiled_training_step_and_inference_equal_eager(kind: str) -> None:
    torch.manual_seed(0)
    eager = Tiny(kind)
    group_weights(eager, cpu=True)
    compiled = compile_model(copy.deepcopy(eager), CompileCounter("aot_eager"))
    tokens = torch.randint(0, 50, (3, 8))
    for _ in range(2):
        loss0, grads0 = _loss_and_grads(eager, tokens)
        loss1, grads1 = _loss_and_grads(compiled, tokens)
        torch.testing.assert_close(loss1, loss0, atol=1e-5, rtol=1e-5)
        for a, b in zip(grads1, grads0, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        prime_inference_cache(compiled)
        torch.testing.assert_close(compiled(tokens), eager(tokens), atol=1e-5, rtol=1e-5)
    assert compiled.compile_counter.compiles >= 1


def test_bucketed_lengths_do_not_recompile() -> None:
    torch.manual_seed(1)
    model = compile_model(Tiny("kron-o2"), CompileCounter("aot_eager"), dynamic=False)
    for length in (5, 7, 8, 6):  # all pad to 8
        padded = torch.zeros(2, bucket_length(length), dtype=torch.long)
        padded[:, :length] = torch.randint(1, 50, (2, length))
        _loss_and_grads(model, padded)
    assert model.compile_counter.compiles == 1
    with pytest.raises(ValueError, match="positive"):
        bucket_length(5, 0)


@pytest.mark.slow
def test_new_lengths_recompile_at_most_once_with_automatic_dynamic_shapes() -> None:
    torch.manual_seed(2)
    model = compile_model(Tiny("kron-o2"), CompileCounter("aot_eager"))
    for length in (8, 16, 24, 32):
        _loss_and_grads(model, torch.randint(1, 50, (2, length)))
    assert model.compile_counter.compiles <= 2  # the first shape, then one graph with a dynamic length


@pytest.mark.slow
def test_inductor_compiled_step_equals_eager() -> None:
    torch.manual_seed(3)
    eager = Tiny("kron-o3")
    compiled = compile_model(copy.deepcopy(eager), CompileCounter("inductor"), dynamic=False)
    tokens = torch.randint(0, 50, (3, 8))
    loss0, grads0 = _loss_and_grads(eager, tokens)
    loss1, grads1 = _loss_and_grads(compiled, tokens)
    torch.testing.assert_close(loss1, loss0, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads1, grads0, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
