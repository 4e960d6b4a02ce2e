"""Peak memory of a step (shapeshifter.bench.memory) against allocations whose sizes are known."""

from __future__ import annotations

import torch
from torch import nn

from shapeshifter.bench import peak_bytes, tensor_bytes
from shapeshifter.bench.timing import interleaved_times, median_ratios

CPU = torch.device("cpu")


def test_cpu_peak_replays_allocations_and_frees_in_order() -> None:
    def step() -> None:
        a = torch.empty(1_000_000)  # 4 MB
        b = torch.empty(500_000)  # + 2 MB
        del a  # 2 MB live
        c = torch.empty(2_000_000)  # + 8 MB: peak 10 MB
        del b, c

    assert peak_bytes(step, CPU, resident=123) == 123 + 10_000_000


def test_tensor_bytes_counts_a_shared_storage_once() -> None:
    emb = nn.Embedding(100, 8)
    out = nn.Linear(8, 100, bias=False)
    out.weight = emb.weight  # tied, as fairseq's shared decoder input/output embedding
    model = nn.ModuleList([emb, out])
    assert tensor_bytes(model) == 100 * 8 * 4
    opt = torch.optim.Adam(model.parameters())
    model[1](torch.randn(3, 8)).sum().backward()
    opt.step()  # Adam keeps exp_avg and exp_avg_sq (and a step count) per parameter
    assert tensor_bytes(model, opt) >= 4 * 100 * 8 * 4  # weight, its gradient, two moments


def test_interleaved_ratios_are_taken_within_a_repetition() -> None:
    calls: list[str] = []
    times = interleaved_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, CPU, reps=3,
                              warmup=1)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]  # rotated order, warm-up included
    assert [len(v) for v in times.values()] == [3, 3]
    ratios = median_ratios({"dense": [1.0, 2.0, 4.0], "x": [2.0, 2.0, 2.0]}, "dense")
    assert ratios == {"dense": 1.0, "x": 1.0}
