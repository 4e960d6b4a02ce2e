"""Device check: on a CUDA machine, run every benchmark once on the GPU and fail loudly on any CUDA error.

The work is done by `shapeshifter.cli.device_check`; ``--help`` lists the options.
"""

from shapeshifter.cli.device_check import main

if __name__ == "__main__":
    raise SystemExit(main())
