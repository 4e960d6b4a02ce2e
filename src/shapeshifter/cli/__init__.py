"""Entry points, installed as console scripts (``shapeshifter-train``, ``shapeshifter-reproduce``, ...) and
run by the thin scripts in ``pipelines/``."""
