"""Table 1 (time overhead): whole-model training step and prediction, dense vs Shapeshifter.

The code is `shapeshifter.cli.bench` (installed as ``shapeshifter-bench``);
``python pipelines/bench_model.py --help`` shows its options.
"""

from shapeshifter.cli.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
