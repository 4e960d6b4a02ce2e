"""Fused q/k/v in-projection: one Kronecker factorization of the 3d x d matrix vs one per d x d slice.

The work is done by `shapeshifter.cli.bench_fused_qkv`; ``--help`` lists the options.
"""

from shapeshifter.cli.bench_fused_qkv import main

if __name__ == "__main__":
    raise SystemExit(main())
