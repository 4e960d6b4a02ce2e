"""Migrate run records and run folders after a rename or a change of what the config hash covers.

The code is `shapeshifter.cli.migrate` (installed as ``shapeshifter-migrate``);
``python pipelines/migrate_records.py --help`` shows its options.
"""

from shapeshifter.cli.migrate import main

if __name__ == "__main__":
    raise SystemExit(main())
