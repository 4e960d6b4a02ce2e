"""Fused q/k/v in-projection: one Kronecker factorization of the 3d x d matrix vs one per d x d slice.

At equal parameter counts it prints (see `shapeshifter.bench.fused_qkv`):

* the relative Frobenius error of the best fit to the in_proj_weight of a small nn.TransformerEncoder trained on
  a synthetic sorting task (and to its learned update, trained minus initial weight), per-slice rank r against
  the fused fit interpolated to the same count, and one pair of ranks with exactly equal counts;
* the median forward + backward time of the factorized nn.MultiheadAttention over the dense one (per-slice at
  rank r, fused at the rank with the nearest parameter count), repetitions interleaved.

    python pipelines/bench_fused_qkv.py                  # about a minute on one thread
    python pipelines/bench_fused_qkv.py --out results/bench/fused_qkv.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from shapeshifter.bench.fused_qkv import equal_params_row, error_rows, time_rows, train_sorting_encoder
from shapeshifter.threads import add_threads_argument, apply_threads


def print_errors(title: str, rows: list[dict]) -> None:
    print(f"\n{title}\n{'slice r':>7s} {'params':>7s} {'fused r':>7s} {'per-slice err':>13s} {'fused err':>9s} "
          f"{'fused - slice':>13s}")
    for r in rows:
        print(f"{r['rank']:>7d} {r['params']:>7d} {r['fused_rank']:>7.2f} {r['per_slice_error']:>13.4f} "
              f"{r['fused_error']:>9.4f} {r['fused_error'] - r['per_slice_error']:>+13.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, default=64, help="model size of the trained encoder")
    parser.add_argument("--steps", type=int, default=600, help="training steps per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="per-slice ranks (error)")
    parser.add_argument("--time-d", type=int, default=512, help="model size of the timed attention")
    parser.add_argument("--time-ranks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--tokens", type=int, nargs=2, default=[16, 64], metavar=("BATCH", "LENGTH"))
    parser.add_argument("--reps", type=int, default=15)
    add_threads_argument(parser, default=1)
    parser.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON")
    args = parser.parse_args()
    threads = apply_threads(args.threads)

    start = time.perf_counter()
    encoders = [train_sorting_encoder(d=args.d, steps=args.steps, seed=s) for s in args.seeds]
    trained = [w for e in encoders for w in e.weights]
    updates = [w - w0 for e in encoders for w, w0 in zip(e.weights, e.initial, strict=True)]
    losses = [(round(e.first_loss, 3), round(e.last_loss, 3)) for e in encoders]
    print(f"trained {len(encoders)} encoders (d={args.d}, {args.steps} steps): loss first -> last {losses}")
    errors = {"trained": error_rows(trained, args.ranks) + [equal_params_row(trained)],
              "update": error_rows(updates, args.ranks) + [equal_params_row(updates)]}
    print_errors("in_proj_weight of the trained encoders (last row: exactly equal parameters)", errors["trained"])
    print_errors("learned update (trained - initial in_proj_weight)", errors["update"])

    batch, length = args.tokens
    timing = time_rows(args.time_d, 8, args.time_ranks, batch, length, args.reps)
    print(f"\nforward + backward of nn.MultiheadAttention d={args.time_d}, 8 heads, {batch}x{length} tokens, "
          f"{threads} thread(s), median of {args.reps} interleaved repetitions (time / dense)")
    print(f"{'slice r':>7s} {'params':>7s} {'fused r':>7s} {'params':>7s} {'dense ms':>8s} {'per-slice':>9s} "
          f"{'fused':>6s}")
    for r in timing:
        print(f"{r['rank']:>7d} {r['per_slice_params']:>7d} {r['fused_rank']:>7d} {r['fused_params']:>7d} "
              f"{r['dense_ms']:>8.1f} {r['per_slice_ratio']:>9.3f} {r['fused_ratio']:>6.3f}")
    print(f"\n{time.perf_counter() - start:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                  "threads": threads, "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
                  "losses": losses, "errors": errors, "timing": timing}
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
