"""What word-level and hidden-state distillation cost per training step, against the plain student's step.

The code is `shapeshifter.cli.bench_distill`; ``python pipelines/bench_distill.py --help`` shows its options.
"""

from shapeshifter.cli.bench_distill import main

if __name__ == "__main__":
    raise SystemExit(main())
