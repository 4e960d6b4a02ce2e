"""Evaluate a trained translation run folder.

The code is `shapeshifter.cli.evaluate` (installed as ``shapeshifter-evaluate``);
``python pipelines/evaluate.py --help`` shows its options.
"""

from shapeshifter.cli.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
