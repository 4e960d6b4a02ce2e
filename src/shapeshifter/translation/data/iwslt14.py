"""IWSLT'14 raw-archive handling: locating/downloading ``de-en.tgz`` and extracting its text.

Mirrors the first half of fairseq's ``examples/translation/prepare-iwslt14.sh``:

* ``train.tags.de-en.{de,en}`` (``meta_rule="fairseq"``, the default): drop lines containing ``<url>``,
  ``<talkid>`` or ``<keywords>`` (prepare-iwslt14.sh) and also ``<speaker>``, ``<reviewer``, ``<translator``,
  ``<doc``, ``</doc>`` (as fairseq's later IWSLT'17 script does; harmless where absent), and strip the
  ``<title>``/``<description>`` tags, keeping their text as a training line, as fairseq does.
  ``meta_rule="strict"`` also drops the ``<title>``/``<description>`` lines and any line that is wholly a tag.
* ``IWSLT14.TED*.{de,en}.xml``: the text inside ``<seg id="N"> … </seg>`` lines, with ``’`` replaced by ``'``
  (fairseq's sed does this for dev/test only).

The test set is the concatenation, in this order, of ``TED.dev2010``, ``TEDX.dev2012``, ``TED.tst2010``,
``TED.tst2011``, ``TED.tst2012`` (as in fairseq's script); the committed sample has no ``TEDX.dev2012``.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from shapeshifter import atomic
from shapeshifter.experiment.data_identity import DataError
from shapeshifter.translation.data.text import read_lines

IWSLT14_URL = "http://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz"
ARCHIVE_NAME = "de-en.tgz"
IWSLT14_TEST_SETS = ("TED.dev2010", "TEDX.dev2012", "TED.tst2010", "TED.tst2011", "TED.tst2012")
SAMPLE_TEST_SETS = ("TED.dev2010", "TED.tst2010", "TED.tst2011", "TED.tst2012")

_FAIRSEQ_DROP = ("<url>", "<talkid>", "<keywords>", "<speaker>", "<reviewer", "<translator", "<doc", "</doc>")
_FAIRSEQ_STRIP_RE = re.compile(r"</?(?:title|description)>")
_STRICT_DROP = _FAIRSEQ_DROP + ("<title>", "<description>")
_SEG_RE = re.compile(r'<seg id="[0-9]*">\s*')
_SEG_END_RE = re.compile(r"\s*</seg>\s*")


def pair_name(src: str, tgt: str, raw_dir: Path) -> str:
    """The archive's language-pair name (``de-en`` serves both directions)."""
    for name in (f"{src}-{tgt}", f"{tgt}-{src}"):
        if (raw_dir / f"train.tags.{name}.{src}").is_file():
            return name
    return f"{src}-{tgt}"


def train_file(raw_dir: Path, pair: str, lang: str) -> Path:
    return raw_dir / f"train.tags.{pair}.{lang}"


def xml_file(raw_dir: Path, test_set: str, pair: str, lang: str) -> Path:
    return raw_dir / f"IWSLT14.{test_set}.{pair}.{lang}.xml"


def _has_train(d: Path) -> bool:
    return d.is_dir() and any(d.glob("train.tags.*"))


def locate_raw_dir(
    raw_dir: Path, extract_to: Path, download: bool, log: Callable[[str], None] = print
) -> Path:
    """Find the extracted IWSLT'14 dir, extracting (or first downloading) ``de-en.tgz`` when needed.

    Accepts ``raw_dir`` itself holding ``train.tags.*``, ``raw_dir/de-en/``, or ``raw_dir/de-en.tgz``
    (extracted under ``extract_to``).  Without network, raises a :class:`DataError` saying where to put the
    archive.
    """
    for cand in (raw_dir, raw_dir / "de-en", extract_to / "de-en"):
        if _has_train(cand):
            return cand
    archive = raw_dir / ARCHIVE_NAME
    if not archive.is_file():
        if not download:
            raise DataError(
                f"IWSLT'14 raw data not found: expected {raw_dir}/de-en/train.tags.de-en.de or {archive}. "
                f"Download {IWSLT14_URL} and place it at {archive} (or extract it so that {raw_dir}/de-en/ exists)."
            )
        download_archive(archive, log=log)
    extract_archive(archive, extract_to)
    out = extract_to / "de-en"
    if not _has_train(out):
        raise DataError(f"archive {archive} did not contain de-en/train.tags.* (corrupt or wrong file?)")
    return out


def download_archive(dest: Path, url: str = IWSLT14_URL, log: Callable[[str], None] = print) -> Path:
    """Fetch the archive; on any network failure, a clear error with the manual-placement instructions."""
    log(f"[download] {url} -> {dest}")
    try:
        with atomic.replacing(dest) as tmp, urllib.request.urlopen(url, timeout=30) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise DataError(
            f"could not download {url} ({e}). This machine may have no access to it: download it elsewhere and "
            f"place it at {dest}, or extract it so that {dest.parent / 'de-en'}/train.tags.de-en.de exists."
        ) from None
    return dest


def extract_archive(archive: Path, dest: Path) -> None:
    """Extract into a scratch dir first and move it into place, so an interrupted run leaves no partial tree."""
    scratch = dest.with_name(dest.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(scratch, filter="data")
    except (tarfile.TarError, EOFError, OSError) as e:
        shutil.rmtree(scratch, ignore_errors=True)
        raise DataError(f"cannot extract {archive} (corrupt archive?): {e}") from None
    dest.mkdir(parents=True, exist_ok=True)
    for item in scratch.iterdir():
        target = dest / item.name
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        item.replace(target)
    scratch.rmdir()


def _is_tag_line(line: str) -> bool:
    s = line.strip()
    return s.startswith("<") and s.endswith(">")


def strip_train_meta(lines: list[str], rule: str = "fairseq") -> list[str]:
    """Remove the meta lines of a ``train.tags`` file (see module docstring for the two rules)."""
    if rule == "fairseq":
        return [_FAIRSEQ_STRIP_RE.sub("", ln) for ln in lines if not any(t in ln for t in _FAIRSEQ_DROP)]
    if rule == "strict":
        return [ln for ln in lines if not any(t in ln for t in _STRICT_DROP) and not _is_tag_line(ln)]
    raise ValueError(f"unknown meta rule {rule!r}")


def read_train(path: Path, rule: str = "fairseq") -> list[str]:
    return strip_train_meta(read_lines(path), rule)


def extract_segs(lines: list[str]) -> list[str]:
    """Text of ``<seg id="N"> … </seg>`` lines (fairseq: grep '<seg id' | sed …; ’ -> ')."""
    out = []
    for ln in lines:
        if "<seg id" not in ln:
            continue
        text = _SEG_END_RE.sub("", _SEG_RE.sub("", ln))
        out.append(text.replace("\u2019", "'"))
    return out


def read_xml(path: Path) -> list[str]:
    lines = read_lines(path)
    segs = extract_segs(lines)
    if not segs:
        raise DataError(f"no <seg id=...> lines in {path} (corrupt or wrong file?)")
    return segs
