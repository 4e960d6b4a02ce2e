"""Reproduce a table: run the jobs it still lacks, then rebuild it.

The code is `shapeshifter.cli.reproduce` (installed as ``shapeshifter-reproduce``);
``python pipelines/reproduce.py --help`` shows its options.
"""

from shapeshifter.cli.reproduce import main

if __name__ == "__main__":
    raise SystemExit(main())
