"""Build a table from run records (demo tables).

The code is `shapeshifter.cli.tables` (installed as ``shapeshifter-tables``);
``python pipelines/tables.py --help`` shows its options.
"""

from shapeshifter.cli.tables import main

if __name__ == "__main__":
    raise SystemExit(main())
