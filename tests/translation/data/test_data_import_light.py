"""Importing shapeshifter.translation.data must not import fairseq or the tokenizers (the core package stays light)."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_pull_fairseq_or_tokenizers() -> None:
    code = (
        "import sys, shapeshifter.translation.data as d; d.TranslationDataConfig(recipe='sample');"
        "bad = [m for m in ('fairseq', 'sacremoses', 'subword_nmt', 'sentencepiece', 'torch') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
