"""Prepare a translation data-bin with one of the recipes (IWSLT'14 De-En, WMT En-Ro, the offline sample).

The work is done by `shapeshifter.cli.prepare_data`; ``--help`` lists the options.
"""

from shapeshifter.cli.prepare_data import main

if __name__ == "__main__":
    raise SystemExit(main())
