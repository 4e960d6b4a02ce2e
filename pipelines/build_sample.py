"""Build the committed German-English sample under ``data/sample/de-en/`` (stand-in for IWSLT'14 De-En).

The work is done by `shapeshifter.cli.build_sample`; ``--help`` lists the options.
"""

from shapeshifter.cli.build_sample import main

if __name__ == "__main__":
    raise SystemExit(main())
