"""Execute a Jupytext notebook (``.py`` percent format) with nbclient and save the executed ``.ipynb``.

The work is done by `shapeshifter.cli.run_notebook`; ``--help`` lists the options.
"""

from shapeshifter.cli.run_notebook import main

if __name__ == "__main__":
    raise SystemExit(main())
