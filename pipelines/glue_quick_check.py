"""Quick CPU sanity check of the GLUE stack: train the small from-scratch encoder on the SNLI sample.

The work is done by `shapeshifter.cli.glue_quick_check`; ``--help`` lists the options.
"""

from shapeshifter.cli.glue_quick_check import main

if __name__ == "__main__":
    raise SystemExit(main())
