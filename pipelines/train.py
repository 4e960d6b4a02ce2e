"""Train and evaluate one configuration (or a sweep with -m).

The code is `shapeshifter.cli.train` (installed as ``shapeshifter-train``);
``python pipelines/train.py --help`` shows its options.
"""

from shapeshifter.cli.train import main

if __name__ == "__main__":
    raise SystemExit(main())
