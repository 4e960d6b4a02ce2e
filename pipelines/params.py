"""Parameter count of a Transformer, dense and shapeshifted by a policy, by layer type.

The code is `shapeshifter.cli.params` (installed as ``shapeshifter-params``);
``python pipelines/params.py --help`` shows its options.
"""

from shapeshifter.cli.params import main

if __name__ == "__main__":
    raise SystemExit(main())
