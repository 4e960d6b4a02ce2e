"""Translation engine: fairseq Transformers (optionally shapeshifted) trained with Lightning.

This is the only package that imports fairseq; the core (`shapeshifter.nn`, `shapeshifter.surgery`)
stays framework-free. Submodules are imported explicitly (e.g. `from shapeshifter.translation.module
import TranslationModule`) so that importing this package does not pull in fairseq.
"""
