"""Evaluate a trained run folder (translation or GLUE) or a checkpoint in one, without training.

The code is `shapeshifter.cli.evaluate` (installed as ``shapeshifter-evaluate``);
``python pipelines/evaluate.py --help`` shows its options.
"""

from shapeshifter.cli.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
