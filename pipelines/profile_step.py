"""Where a training step's time goes (wall vs device kernel time, kernels per step), dense vs Shapeshifter.

The code is `shapeshifter.cli.profile_step`; ``python pipelines/profile_step.py --help`` shows its options.
"""

from shapeshifter.cli.profile_step import main

if __name__ == "__main__":
    raise SystemExit(main())
