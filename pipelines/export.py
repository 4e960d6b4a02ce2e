"""Export a training run's model as one self-contained folder: ``python pipelines/export.py RUN_DIR OUT_DIR``.

The folder (weights as safetensors, config, dictionaries, BPE codes, manifest with sha256) is what
``pipelines/translate.py`` loads without the run folder or the data cache. The work is done by
`shapeshifter.cli.translate` (also installed as ``shapeshifter-export``).
"""

from shapeshifter.cli.translate import export_main

if __name__ == "__main__":
    raise SystemExit(export_main())
