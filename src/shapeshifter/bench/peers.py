"""Kronecker layers against their peers at about the same parameter count: low rank ``U @ V``, PHM, tensorly-torch's
factorized layers (TT-matrix, CP, Tucker) and the dense layer, forward + backward time and peak memory as ratios
to dense, all measured interleaved in one process (`shapeshifter.bench.timing`, `shapeshifter.bench.memory`).

Each peer gets the rank whose parameter count is nearest (on a log scale) to ``budget * dense parameters``; the
count it reaches is reported beside the times, since integer ranks (and PHM's ``n^3 + rows * cols / n``) cannot
hit a budget exactly. tensorly-torch is optional: without it, or where it cannot build a layer, the row says why.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from shapeshifter.nn import (
    KroneckerEmbedding,
    KroneckerLinear,
    LowRankEmbedding,
    LowRankLinear,
    exact_factors,
)

from .memory import peak_bytes, tensor_bytes
from .timing import interleaved_times, median_ratios

# name: ("linear", in_features, out_features) or ("embedding", num_embeddings, embedding_dim), the shapes of
# fairseq's transformer_iwslt_de_en (attention, FFN in and out, source embedding)
SHAPES: dict[str, tuple[str, int, int]] = {
    "linear 512x512": ("linear", 512, 512),
    "linear 512->1024": ("linear", 512, 1024),
    "linear 1024->512": ("linear", 1024, 512),
    "embedding 8848x512": ("embedding", 8848, 512),
}
# name: (tensorly-torch factorization, FactorizedLinear implementation). TT-matrix contracts the input with its
# cores ("factorized"); CP and Tucker materialize the weight first ("reconstructed", tltorch's from_linear
# default): in tensorly-torch 0.5 their "factorized" contraction asks for 8 GB (Tucker) to 146 GB (CP) at 256
# tokens of a 512x512 layer.
TLTORCH_FACTORIZATIONS = {"tltorch TT": ("blocktt", "factorized"), "tltorch CP": ("cp", "reconstructed"),
                          "tltorch Tucker": ("tucker", "reconstructed")}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def nearest_rank(build: Callable[[int], nn.Module], budget: float, ranks: Iterable[int]) -> nn.Module:
    """The module among ``build(r)`` whose parameter count is nearest ``budget`` on a log scale."""
    best: tuple[float, nn.Module] | None = None
    for r in ranks:
        module = build(r)
        gap = abs(math.log(n_params(module) / budget))
        if best is None or gap < best[0]:
            best = (gap, module)
    assert best is not None, "no rank to try"
    return best[1]


def _kron_ranks(per_rank: int, budget: float) -> list[int]:
    guess = max(1, round(budget / per_rank))
    return sorted({max(1, guess - 1), guess, guess + 1})


def _phm_ranks(rows: int, cols: int) -> list[int]:
    return [n for n in (2, 4, 8, 16, 32, 64) if n <= min(rows, cols)]


def _own_peers(dense: Callable[[], nn.Module], kron_cls: type, lowrank_cls: type, a: int, b: int, budget: float,
               phm_dims: tuple[int, int]) -> dict[str, Callable[[], nn.Module]]:
    """Builders of the dense layer and of this package's structured layers, ``kron_cls(a, b, rank, order)`` and
    ``lowrank_cls(a, b, rank)``, each at the rank nearest to ``budget`` parameters."""
    def kron(order: int) -> Callable[[], nn.Module]:
        per_rank = kron_cls(a, b, 1, order).matrix.kshape.params_per_rank()
        return lambda: nearest_rank(lambda r: kron_cls(a, b, r, order), budget, _kron_ranks(per_rank, budget))

    return {
        "dense": dense,
        "Kronecker o2": kron(2),
        "Kronecker o3": kron(3),
        "low rank U·V": lambda: nearest_rank(lambda r: lowrank_cls(a, b, r), budget, _kron_ranks(a + b, budget)),
        "PHM": lambda: nearest_rank(lambda n: kron_cls(a, b, n, 2, shape=f"phm{n}"), budget, _phm_ranks(*phm_dims)),
    }


def linear_peers(in_f: int, out_f: int, budget: float) -> dict[str, Callable[[], nn.Module]]:
    """Builders of the dense layer and each peer for one linear shape (``budget`` parameters, bias included)."""
    peers = _own_peers(lambda: nn.Linear(in_f, out_f), KroneckerLinear, LowRankLinear, in_f, out_f, budget,
                       (out_f, in_f))
    for name, (factorization, implementation) in TLTORCH_FACTORIZATIONS.items():
        peers[name] = _tltorch_linear(in_f, out_f, factorization, implementation, budget / (in_f * out_f + out_f))
    return peers


def _tltorch_linear(in_f: int, out_f: int, factorization: str, implementation: str,
                    fraction: float) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import tltorch  # optional (the pipeline extra); imported only here, it sets tensorly's backend

        return tltorch.FactorizedLinear(exact_factors(in_f, 3), exact_factors(out_f, 3), factorization=factorization,
                                        rank=fraction, implementation=implementation)
    return build


def embedding_peers(num: int, dim: int, budget: float) -> dict[str, Callable[[], nn.Module]]:
    """Builders of the dense table and each peer for one embedding shape (``budget`` parameters)."""
    peers = _own_peers(lambda: nn.Embedding(num, dim), KroneckerEmbedding, LowRankEmbedding, num, dim, budget,
                       (num, dim))
    for name, (factorization, _) in TLTORCH_FACTORIZATIONS.items():
        peers[name] = _tltorch_embedding(num, dim, factorization, budget / (num * dim))
    return peers


def _tltorch_embedding(num: int, dim: int, factorization: str, fraction: float) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import tltorch

        return tltorch.FactorizedEmbedding(num, dim, factorization=factorization, rank=fraction)
    return build


def step_fn(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """Forward + backward as inside a network: gradients for the parameters and (linear) for the input."""
    def step() -> None:
        module.zero_grad(set_to_none=True)
        inp = x.detach().requires_grad_(True) if x.is_floating_point() else x
        module(inp).sum().backward()
    return step


@dataclass
class PeerConfig:
    """What one peer benchmark measures; written into its JSON."""

    shapes: tuple[str, ...] = tuple(SHAPES)
    budget: float = 0.1  # parameters of every peer / parameters of the dense layer (about 10x fewer)
    tokens: int = 2048
    reps: int = 7
    warmup: int = 2
    seed: int = 0


def _build_all(builders: dict[str, Callable[[], nn.Module]], x: torch.Tensor
               ) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """The peers that build and run one step; for the others, why not (not installed, out of memory, ...)."""
    modules: dict[str, nn.Module] = {}
    skipped: dict[str, str] = {}
    for name, build in builders.items():
        try:
            module = build().to(x.device)
            step_fn(module, x)()
            modules[name] = module
        except Exception as err:  # noqa: BLE001 -- a peer that cannot run is a row that says why
            if name == "dense":
                raise
            skipped[name] = f"{type(err).__name__}: {str(err)[:200]}"
    return modules, skipped


def bench_shape(shape: str, cfg: PeerConfig, device: torch.device) -> list[dict[str, Any]]:
    """One row per peer of one shape: parameters, median time ratio to dense, peak memory ratio to dense."""
    kind, a, b = SHAPES[shape]
    torch.manual_seed(cfg.seed)
    if kind == "linear":
        builders, x = linear_peers(a, b, cfg.budget * (a * b + b)), torch.randn(cfg.tokens, a, device=device)
    else:
        builders, x = embedding_peers(a, b, cfg.budget * a * b), torch.randint(0, a, (cfg.tokens,), device=device)
    modules, skipped = _build_all(builders, x)
    steps = {name: step_fn(m, x) for name, m in modules.items()}
    times = interleaved_times(steps, device, cfg.reps, cfg.warmup)
    ratios = median_ratios(times, "dense")
    peaks = {name: peak_bytes(step, device, tensor_bytes(modules[name], x)) for name, step in steps.items()}
    dense_params = n_params(modules["dense"])
    rows = [{"shape": shape, "peer": name, "params": n_params(m), "param_ratio": n_params(m) / dense_params,
             "module": type(m).__name__, "detail": _detail(m), "median_s": sorted(times[name])[len(times[name]) // 2],
             "time_ratio": ratios[name], "peak_bytes": peaks[name], "memory_ratio": peaks[name] / peaks["dense"]}
            for name, m in modules.items()]
    rows += [{"shape": shape, "peer": name, "skipped": why} for name, why in skipped.items()]
    return rows


def _detail(module: nn.Module) -> str:
    """The factor structure, short: ``rank 4, 32x16 ⊗ 16x32`` or tensorly-torch's rank."""
    matrix = getattr(module, "matrix", None)
    if matrix is not None:
        return f"rank {matrix.rank}, {matrix.describe()}"
    weight = getattr(module, "weight", None)
    rank = getattr(weight, "rank", None)
    return f"rank {rank}" if rank is not None else ""


def machine() -> dict[str, Any]:
    """Where the numbers come from (they mean little without it)."""
    import os

    versions = {"torch": torch.__version__, "python": platform.python_version()}
    for pkg in ("tensorly", "tltorch"):
        try:
            versions[pkg] = __import__(pkg).__version__
        except ImportError:
            versions[pkg] = None
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "versions": versions}


def run_peers(cfg: PeerConfig, device: torch.device) -> dict[str, Any]:
    """The whole benchmark as one JSON-able record."""
    rows = [row for shape in cfg.shapes for row in bench_shape(shape, cfg, device)]
    return {"benchmark": "peers", "device": str(device), "config": vars(cfg) | {"shapes": list(cfg.shapes)},
            "machine": machine(), "ratios_are": "peer / dense nn.Linear or nn.Embedding of the same shape, "
            "forward + backward, median of same-repetition ratios; memory: peak bytes of one step (params, input, "
            "everything the step allocates)", "rows": rows}


def to_markdown(record: dict[str, Any]) -> str:
    """The record as a Markdown table, one row per (shape, peer)."""
    cfg = record["config"]
    lines = [f"## Peers at about {1 / cfg['budget']:.0f}× fewer parameters than dense ({record['device']}, "
             f"{cfg['tokens']} tokens, {record['machine']['torch_threads']} thread(s), median of {cfg['reps']} "
             "interleaved repetitions)", "",
             "| shape | layer | structure | params (× dense) | fwd+bwd time (× dense) | peak memory (× dense) |",
             "|---|---|---|---|---|---|"]
    for r in record["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['shape']} | {r['peer']} | not measured: {r['skipped'][:80]} | – | – | – |")
            continue
        lines.append(f"| {r['shape']} | {r['peer']} | {r['detail'] or r['module']} | {r['params']:,} "
                     f"({r['param_ratio']:.3f}) | {r['time_ratio']:.2f} | {r['memory_ratio']:.2f} |")
    return "\n".join(lines) + "\n"
