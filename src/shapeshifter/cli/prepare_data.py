"""Prepare a translation data-bin with one of the recipes (IWSLT'14 De-En, WMT En-Ro, the offline sample).

Example (the committed sample; ``data/cache`` is git-ignored)::

    .venv/bin/python pipelines/prepare_data.py --recipe sample --raw-dir data/sample/de-en \
        --work-dir data/cache/sample

Each stage prints ``running`` or ``skipped (up to date)``; a rerun with the same inputs and options skips all.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from shapeshifter.translation.data import TranslationDataConfig, prepare_translation_data


def _count(path: Path) -> tuple[int, int]:
    """(lines, whitespace tokens) of a text file."""
    lines = toks = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            lines += 1
            toks += len(line.split())
    return lines, toks


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", choices=["iwslt14", "wmt18", "sample"], default="sample")
    ap.add_argument("--raw-dir", default=None, help="raw corpus dir (default: the recipe's)")
    ap.add_argument("--work-dir", default=None, help="output dir (default: data/cache/<recipe>)")
    ap.add_argument("--data-bin", default=None, help="validate and use this existing fairseq data-bin instead")
    ap.add_argument("--src-lang", default=None)
    ap.add_argument("--tgt-lang", default=None)
    ap.add_argument("--bpe", choices=["subword_nmt", "sentencepiece"], default="subword_nmt")
    ap.add_argument("--bpe-merges", type=int, default=None)
    ap.add_argument("--spm-vocab-size", type=int, default=8000)
    ap.add_argument("--max-train-pairs", type=int, default=None)
    ap.add_argument("--no-lowercase", action="store_true")
    ap.add_argument("--no-download", action="store_true")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)

    cfg = TranslationDataConfig(
        name=args.recipe, recipe=args.recipe, raw_dir=args.raw_dir,
        work_dir=args.work_dir or f"data/cache/{args.recipe}", data_bin=args.data_bin,
        src_lang=args.src_lang, tgt_lang=args.tgt_lang, bpe=args.bpe, bpe_merges=args.bpe_merges,
        spm_vocab_size=args.spm_vocab_size, max_train_pairs=args.max_train_pairs,
        lowercase=False if args.no_lowercase else None, download=not args.no_download, workers=args.workers,
    )
    t0 = time.perf_counter()
    data = prepare_translation_data(cfg)
    dt = time.perf_counter() - t0
    print(f"done in {dt:.1f} s; data-bin: {data.data_bin}")
    print("dictionary sizes: " + ", ".join(f"{k}={v}" for k, v in data.dict_sizes.items()))
    for split, files in data.splits.items():
        for lang, path in files.bpe.items():
            if path.is_file():
                n, toks = _count(path)
                print(f"{split}.{lang}: {n} lines, {toks} BPE tokens ({path})")


if __name__ == "__main__":
    raise SystemExit(main())
