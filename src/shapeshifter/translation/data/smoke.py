"""Small slices of a raw IWSLT'14-format corpus, same formats, for smoke runs and tests."""

from __future__ import annotations

from pathlib import Path

from shapeshifter.paths import repo_root
from shapeshifter.translation.data.cache import work_dir_lock
from shapeshifter.translation.data.iwslt14 import SAMPLE_TEST_SETS
from shapeshifter.translation.data.text import read_lines, write_lines

SAMPLE_RAW = repo_root() / "data" / "sample" / "de-en"


def slice_iwslt_raw(dst: Path, src: Path = SAMPLE_RAW, n_train_lines: int = 300, n_segs: int = 30,
                    test_sets: tuple[str, ...] = tuple(SAMPLE_TEST_SETS), pair: tuple[str, str] = ("de", "en")) -> Path:
    """Copy the first ``n_train_lines`` lines of ``train.tags.*`` and the first ``n_segs`` segments of each
    dev/test XML file from ``src`` to ``dst`` (the XML structure around the segments is kept)."""
    src_lang, tgt_lang = pair
    dst.mkdir(parents=True, exist_ok=True)
    for lang in pair:
        name = f"train.tags.{src_lang}-{tgt_lang}.{lang}"
        write_lines(dst / name, read_lines(src / name)[:n_train_lines])
        for test_set in test_sets:
            fname = f"IWSLT14.{test_set}.{src_lang}-{tgt_lang}.{lang}.xml"
            lines = read_lines(src / fname)
            seg_idx = [i for i, x in enumerate(lines) if "<seg id" in x]
            drop = set(seg_idx[n_segs:])
            write_lines(dst / fname, [x for i, x in enumerate(lines) if i not in drop])
    return dst


# Named slices of the committed sample that configs refer to by ``data.name`` (conf/data/sample_smoke.yaml).
SLICES = {"sample_smoke": {"n_train_lines": 1500, "n_segs": 30}}


def ensure_slice(data_name: str, raw_dir: Path) -> bool:
    """Write the named slice into ``raw_dir`` unless it is there already; False for data that is not a slice."""
    if data_name not in SLICES:
        return False
    with work_dir_lock(raw_dir, log=lambda s: None):  # parallel jobs: one writes the slice, the others wait
        if not (raw_dir / "train.tags.de-en.de").is_file():
            slice_iwslt_raw(raw_dir, **SLICES[data_name])
    return True
