"""Layer benchmark: KroneckerLinear / KroneckerEmbedding against dense layers, same process, same inputs.

The work is done by `shapeshifter.cli.bench_layers`; ``--help`` lists the options.
"""

from shapeshifter.cli.bench_layers import main

if __name__ == "__main__":
    raise SystemExit(main())
