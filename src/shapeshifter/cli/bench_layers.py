"""Layer benchmark: KroneckerLinear / KroneckerEmbedding against dense layers, same process, same inputs.

For every (shape, order, rank, tokens) it times the forward pass (inference, autograd off) and a training
step (forward + backward) of the dense layer and of the Kronecker layer on each execution path
("factored", "dense", and "auto", the one `KroneckerMatrix.choose_path` picks), and prints time ratios to
dense beside the parameter ratio. Shapes are those of fairseq's ``transformer_iwslt_de_en``: attention
512x512, FFN 512->1024 and 1024->512, and the 8,848 x 512 embedding / tied output projection.

    python pipelines/bench_layers.py                     # default grid
    python pipelines/bench_layers.py --quick             # a few points, about a minute
    python pipelines/bench_layers.py --out results/bench/layers.json

Results are written as JSON (one record per point plus machine/versions) for tables and plots.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn

from shapeshifter.nn import KroneckerEmbedding, KroneckerLinear
from shapeshifter.threads import add_threads_argument, apply_threads

SHAPES = {  # name: (in_features, out_features)
    "attn 512x512": (512, 512),
    "fc1 512->1024": (512, 1024),
    "fc2 1024->512": (1024, 512),
    "output 512->8848": (512, 8848),
}


def timeit(fn, min_time: float = 0.2, max_reps: int = 50) -> float:
    """Median seconds per call after a warm-up, repeating until ``min_time`` has been spent."""
    fn()
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_time and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def train_step(layer: nn.Module, x: torch.Tensor):
    def run() -> None:
        layer.zero_grad(set_to_none=True)
        xx = x.detach().requires_grad_(True)
        layer(xx).sum().backward()

    return run


def infer(layer: nn.Module, x: torch.Tensor):
    def run() -> None:
        with torch.no_grad():
            layer(x)

    return run


def bench_linear(in_f: int, out_f: int, order: int, rank: int, tokens: int, min_time: float) -> dict:
    torch.manual_seed(0)
    x = torch.randn(tokens, in_f)
    dense = nn.Linear(in_f, out_f)
    layer = KroneckerLinear(in_f, out_f, rank, order)
    rec: dict = {
        "in_features": in_f, "out_features": out_f, "order": order, "rank": rank, "tokens": tokens,
        "factors": str(layer.kshape), "auto_path": layer.matrix.choose_path(tokens),
        "param_ratio": sum(p.numel() for p in layer.parameters()) / sum(p.numel() for p in dense.parameters()),
        "linear_train_s": timeit(train_step(dense, x), min_time),
        "linear_infer_s": timeit(infer(dense, x), min_time),
    }
    for path in ("factored", "dense", "auto"):
        layer.matrix.path = path
        rec[f"kron_{path}_train_s"] = timeit(train_step(layer, x), min_time)
    layer.matrix.path = "auto"
    rec["kron_infer_s"] = timeit(infer(layer, x), min_time)
    base = rec["linear_train_s"]
    rec["train_ratio"] = rec["kron_auto_train_s"] / base
    rec["factored_ratio"] = rec["kron_factored_train_s"] / base
    rec["dense_path_ratio"] = rec["kron_dense_train_s"] / base
    rec["infer_ratio"] = rec["kron_infer_s"] / rec["linear_infer_s"]
    return rec


def bench_embedding(num: int, dim: int, order: int, rank: int, tokens: int, min_time: float) -> dict:
    torch.manual_seed(0)
    idx = torch.randint(0, num, (tokens,))
    dense = nn.Embedding(num, dim, padding_idx=1)
    layer = KroneckerEmbedding(num, dim, rank, order, padding_idx=1)

    def step(mod):
        def run() -> None:
            mod.zero_grad(set_to_none=True)
            mod(idx).sum().backward()
        return run

    rec = {
        "num_embeddings": num, "embedding_dim": dim, "order": order, "rank": rank, "tokens": tokens,
        "factors": str(layer.kshape),
        "param_ratio": sum(p.numel() for p in layer.parameters()) / dense.weight.numel(),
        "dense_train_s": timeit(step(dense), min_time), "kron_train_s": timeit(step(layer), min_time),
        "dense_infer_s": timeit(infer(dense, idx), min_time), "kron_infer_s": timeit(infer(layer, idx), min_time),
    }
    rec["train_ratio"] = rec["kron_train_s"] / rec["dense_train_s"]
    rec["infer_ratio"] = rec["kron_infer_s"] / rec["dense_infer_s"]
    return rec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--orders", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--tokens", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds spent per timing")
    parser.add_argument("--quick", action="store_true", help="a small grid (ranks 1,8; order 2,3; 4096 tokens)")
    add_threads_argument(parser)
    parser.add_argument("--out", type=Path, default=Path("results/bench/layers.json"))
    args = parser.parse_args()
    if args.quick:
        args.ranks, args.orders, args.tokens, args.min_time = [1, 8], [2, 3], [4096], 0.2
    apply_threads(args.threads)

    linear, embedding = [], []
    header = (f"{'layer':18s} {'N':>2s} {'r':>3s} {'tokens':>6s} {'factors':>26s} {'params':>7s} "
              f"{'path':>8s} {'train':>6s} {'(fact':>6s} {'dense)':>6s} {'infer':>6s}")
    print(header)
    for name in args.shapes:
        in_f, out_f = SHAPES[name]
        for order in args.orders:
            for rank in args.ranks:
                for tokens in args.tokens:
                    r = bench_linear(in_f, out_f, order, rank, tokens, args.min_time)
                    r["layer"] = name
                    linear.append(r)
                    print(f"{name:18s} {order:>2d} {rank:>3d} {tokens:>6d} {r['factors']:>26s} "
                          f"{r['param_ratio']:>7.4f} {r['auto_path']:>8s} {r['train_ratio']:>6.2f} "
                          f"{r['factored_ratio']:>6.2f} {r['dense_path_ratio']:>6.2f} "
                          f"{r['infer_ratio']:>6.2f}", flush=True)
    print(f"\n{'embedding':18s} {'N':>2s} {'r':>3s} {'tokens':>6s} {'factors':>26s} {'params':>7s} "
          f"{'train':>6s} {'infer':>6s}")
    for order in args.orders:
        for rank in args.ranks:
            for tokens in args.tokens:
                r = bench_embedding(8848, 512, order, rank, tokens, args.min_time)
                embedding.append(r)
                print(f"{'embed 8848x512':18s} {order:>2d} {rank:>3d} {tokens:>6d} {r['factors']:>26s} "
                      f"{r['param_ratio']:>7.4f} {r['train_ratio']:>6.2f} {r['infer_ratio']:>6.2f}", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "layers",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads()},
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "ratios_are": "Kronecker time / dense time, measured in this process; param_ratio = Kronecker / dense",
        "linear": linear,
        "embedding": embedding,
    }
    args.out.write_text(json.dumps(record, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
