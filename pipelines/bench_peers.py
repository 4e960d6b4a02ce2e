"""Peer benchmark: Kronecker layers (order 2 and 3) against low rank U·V, PHM, tensorly-torch's TT-matrix / CP /
Tucker layers and the dense layer, at about the same parameter count (``--budget``, default 0.1 = about 10x
fewer than dense), forward + backward time and peak memory as ratios to dense, interleaved in one process.
Shapes: linear 512x512, 512->1024, 1024->512 and the 8,848 x 512 embedding (`shapeshifter.bench.peers`).

The work is done by `shapeshifter.cli.bench_peers`; ``--help`` lists the options.
"""

from shapeshifter.cli.bench_peers import main

if __name__ == "__main__":
    raise SystemExit(main())
