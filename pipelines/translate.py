"""Translate your own sentences with a trained model: ``python pipelines/translate.py MODEL < in > out``.

MODEL is an exported model (``pipelines/export.py``) or a training run folder; ``--help`` lists the options.
The work is done by `shapeshifter.cli.translate` (also installed as ``shapeshifter-translate``).
"""

from shapeshifter.cli.translate import translate_main

if __name__ == "__main__":
    raise SystemExit(translate_main())
