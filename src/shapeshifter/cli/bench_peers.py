"""Peer benchmark: Kronecker layers (order 2 and 3) against low rank U·V, PHM, tensorly-torch's TT-matrix / CP /
Tucker layers and the dense layer, at about the same parameter count (``--budget``, default 0.1 = about 10x
fewer than dense), forward + backward time and peak memory as ratios to dense, interleaved in one process.
Shapes: linear 512x512, 512->1024, 1024->512 and the 8,848 x 512 embedding (`shapeshifter.bench.peers`).

    python pipelines/bench_peers.py                          # CUDA when available, else CPU
    python pipelines/bench_peers.py --tokens 512 --reps 3    # quicker

Writes ``<out>/peers-<device>.json``, ``.md`` (the table) and ``.png`` (the plot).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from shapeshifter.bench.peers import SHAPES, PeerConfig, run_peers, to_markdown
from shapeshifter.bench.plots import plot_peers
from shapeshifter.threads import add_threads_argument, apply_threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--budget", type=float, default=PeerConfig.budget, help="peer params / dense params")
    parser.add_argument("--tokens", type=int, default=PeerConfig.tokens, help="rows of the input batch")
    parser.add_argument("--reps", type=int, default=PeerConfig.reps)
    parser.add_argument("--warmup", type=int, default=PeerConfig.warmup)
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    apply_threads(args.threads)

    cfg = PeerConfig(tuple(args.shapes), args.budget, args.tokens, args.reps, args.warmup)
    record = run_peers(cfg, torch.device(args.device))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"peers-{torch.device(args.device).type}"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    md = to_markdown(record)
    stem.with_suffix(".md").write_text(md)
    plot_peers(record, stem.with_suffix(".png"))
    print(md)
    print(f"wrote {stem}.json, .md, .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
