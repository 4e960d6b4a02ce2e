"""Build the committed German-English sample under ``data/sample/de-en/`` (stand-in for IWSLT'14 De-En).

IWSLT'14 cannot be downloaded on the project's machines, so the demo and the end-to-end tests run the real
IWSLT'14 recipe on human-written German-English text taken from two Debian packages:

* LibreOffice help (``libreoffice-help-de`` + ``libreoffice-help-en-us``, MPL-2.0): the HTML pages have the
  same relative paths in both languages and paragraphs/headings carry the same ``id`` (``par_id…``,
  ``hd_id…``, ``bm_id…``), so joining on (page, id) yields aligned pairs.
* Ding dictionary (``trans-de-en``, GPL-2+): ``Deutsch | Unterform :: English | subform`` lines whose
  `` | `` sub-entries align 1:1; sub-entries whose German side is a sentence (ends in ``.``, ``!``, ``?``,
  >= 3 words) are example sentences.

Re-run (needs the unpacked packages; nothing is installed)::

    cd /tmp/sampledl && apt-get update && \
        apt-get download libreoffice-help-de libreoffice-help-en-us trans-de-en && \
        for f in *.deb; do dpkg -x "$f" x; done
    .venv/bin/python pipelines/build_sample.py --root /tmp/sampledl/x --out data/sample/de-en

The output is written in the raw IWSLT'14 archive format (``train.tags.de-en.{de,en}`` with ``<url>``,
``<keywords>``, ``<talkid>``, ``<title>`` meta lines at document boundaries, and
``IWSLT14.TED.{dev2010,tst2010,tst2011,tst2012}.de-en.{de,en}.xml`` with ``<seg id="N">`` lines) so the
exact recipe code path (meta stripping, seg extraction) runs on it.  Splits are made at the document level
(a help page, or a chunk of dictionary examples) like IWSLT's talk-level splits, and a pair is kept only if
neither its German nor its English side was seen before, so no sentence appears in two splits.
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

LO_HELP = Path("usr/share/libreoffice/help")
DING_FILE = Path("usr/share/trans/de-en")
ID_RE = re.compile(r"^(par_id|hd_id|bm_id)")
WS_RE = re.compile(r"\s+")
# The IWSLT XML is read with a line regex (like fairseq's sed), so text must not contain markup characters.
BAD_CHARS_RE = re.compile(r"[<>\t\u0000-\u001f]")
DEV_SETS = ("dev2010",)
TEST_SETS = ("tst2010", "tst2011", "tst2012")


@dataclass(frozen=True)
class Pair:
    """One aligned sentence pair and the document it came from (splits are made per document)."""

    de: str
    en: str
    doc: str


class _IdTextParser(HTMLParser):
    """Collect the visible text of every element whose id starts with par_id/hd_id/bm_id.

    Nested spans are included; ``hidden`` variants of ``switchinline`` (the macOS/other-OS alternatives that
    JavaScript picks from) are skipped except the ``default…`` one, so each paragraph is read once.
    """

    VOID = {"br", "img", "input", "meta", "link", "hr", "area", "base", "col", "embed", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str | None, bool]] = []  # (tag, collected id, hidden)
        self.buffers: dict[str, list[str]] = {}
        self.order: list[str] = []
        self.title: list[str] = []
        self.in_title = False

    def _hidden(self) -> bool:
        return any(h for _, _, h in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "title":
            self.in_title = True
        if tag in self.VOID:
            if tag == "br":
                self.handle_data(" ")
            return
        eid = a.get("id") or ""
        hidden = "hidden" in a and not eid.startswith("default")
        cid = eid if ID_RE.match(eid) and eid not in self.buffers else None
        if cid is not None:
            self.buffers[cid] = []
            self.order.append(cid)
        self.stack.append((tag, cid, hidden))

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in self.VOID:
            return
        # Pop to the matching tag (the help HTML is well formed, this guards against stray end tags).
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        if self._hidden():
            return
        for _, cid, _ in self.stack:
            if cid is not None:
                self.buffers[cid].append(data)


def _clean(text: str) -> str:
    return WS_RE.sub(" ", text).strip()


def parse_help_page(path: Path) -> tuple[str, dict[str, str]]:
    """Return (page title, {element id: text}) for one LibreOffice help page."""
    p = _IdTextParser()
    p.feed(path.read_text(encoding="utf-8"))
    p.close()
    return _clean("".join(p.title)), {k: _clean("".join(p.buffers[k])) for k in p.order}


def libreoffice_pairs(root: Path) -> tuple[list[Pair], dict[str, tuple[str, str]], int]:
    """Join German and English help pages on (relative path, element id).

    Returns the pairs, the per-page (German, English) titles, and the raw number of joined pairs.
    """
    de_root, en_root = root / LO_HELP / "de", root / LO_HELP / "en-US"
    if not de_root.is_dir() or not en_root.is_dir():
        raise FileNotFoundError(f"LibreOffice help not found under {root / LO_HELP} (see module docstring)")
    pairs: list[Pair] = []
    titles: dict[str, tuple[str, str]] = {}
    joined = 0
    for en_path in sorted(en_root.rglob("*.html")):
        rel = en_path.relative_to(en_root)
        de_path = de_root / rel
        if not de_path.is_file():
            continue
        en_title, en_ids = parse_help_page(en_path)
        de_title, de_ids = parse_help_page(de_path)
        doc = f"lo:{rel.as_posix()}"
        titles[doc] = (de_title, en_title)
        for eid, en in en_ids.items():
            de = de_ids.get(eid)
            if de is None:
                continue
            joined += 1
            pairs.append(Pair(de, en, doc))
    return pairs, titles, joined


_ANNOT_RE = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|<[^<>]*>")


def _strip_annotations(text: str) -> str:
    return _clean(_ANNOT_RE.sub(" ", text))


def ding_pairs(root: Path, chunk: int = 40) -> tuple[list[Pair], int]:
    """Example sentences of the Ding dictionary; documents are consecutive chunks of ``chunk`` pairs.

    Returns the pairs and the number of sentence-like sub-entries seen (before any dedup).
    """
    path = root / DING_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Ding dictionary not found at {path} (see module docstring)")
    pairs: list[Pair] = []
    seen = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or " :: " not in line:
            continue
        de_side, en_side = line.split(" :: ", 1)
        de_subs, en_subs = de_side.split(" | "), en_side.split(" | ")
        if len(de_subs) != len(en_subs):
            continue
        for de_raw, en_raw in zip(de_subs, en_subs, strict=True):
            de, en = _strip_annotations(de_raw), _strip_annotations(en_raw)
            if not de.endswith((".", "!", "?")) or len(de.split()) < 3:
                continue
            seen += 1
            # Alternatives separated by ';' are not aligned with each other: drop such entries.
            if ";" in de or ";" in en:
                continue
            pairs.append(Pair(de, en, f"ding:{len(pairs) // chunk}"))
    return pairs, seen


def keep_pair(p: Pair, min_en_words: int, max_words: int) -> bool:
    """Filter: both sides non-empty, no markup characters, length limits."""
    if not p.de or not p.en or BAD_CHARS_RE.search(p.de) or BAD_CHARS_RE.search(p.en):
        return False
    n_de, n_en = len(p.de.split()), len(p.en.split())
    return n_en >= min_en_words and n_de <= max_words and n_en <= max_words and n_de >= 1


def dedup(pairs: list[Pair]) -> list[Pair]:
    """Keep the first pair for each German side and each English side (so no side repeats anywhere)."""
    seen_de: set[str] = set()
    seen_en: set[str] = set()
    out = []
    for p in pairs:
        if p.de in seen_de or p.en in seen_en:
            continue
        seen_de.add(p.de)
        seen_en.add(p.en)
        out.append(p)
    return out


def group_docs(pairs: list[Pair]) -> list[list[Pair]]:
    docs: dict[str, list[Pair]] = {}
    for p in pairs:
        docs.setdefault(p.doc, []).append(p)
    return list(docs.values())


def _meta_lines(
    talkid: int, doc: str, title: tuple[str, str] | None, banned: set[str]
) -> tuple[list[str], list[str]]:
    """IWSLT-like document header lines for the German and English train files.

    The recipe keeps ``<title>`` text as a training line (as fairseq does), so a title equal to a dev/test
    sentence (``banned``) is left out to keep the splits disjoint.
    """
    url = f"<url>https://example.invalid/{doc.replace(':', '/')}</url>"
    de = [url, "<keywords>talks, sample</keywords>", f"<talkid>{talkid}</talkid>"]
    en = list(de)
    ok = title is not None and title[0] and title[1] and not BAD_CHARS_RE.search(title[0] + title[1])
    if title is not None and ok and title[0] not in banned and title[1] not in banned:
        de.append(f"<title>{title[0]}</title>")
        en.append(f"<title>{title[1]}</title>")
    return de, en


def write_train(
    out: Path, docs: list[list[Pair]], titles: dict[str, tuple[str, str]], start_id: int, banned: set[str]
) -> None:
    de_lines: list[str] = []
    en_lines: list[str] = []
    for i, d in enumerate(docs):
        mde, men = _meta_lines(start_id + i, d[0].doc, titles.get(d[0].doc), banned)
        de_lines += mde
        en_lines += men
        de_lines += [p.de for p in d]
        en_lines += [p.en for p in d]
    (out / "train.tags.de-en.de").write_text("\n".join(de_lines) + "\n", encoding="utf-8")
    (out / "train.tags.de-en.en").write_text("\n".join(en_lines) + "\n", encoding="utf-8")


def write_xml(out: Path, name: str, docs: list[list[Pair]], start_id: int) -> None:
    """Write one IWSLT dev/test set as ``IWSLT14.TED.{name}.de-en.{de,en}.xml`` (mteval format)."""
    for lang, attr in (("de", "de"), ("en", "en")):
        kind = "srcset" if lang == "de" else "refset"
        extra = "" if lang == "de" else ' trglang="english" refid="ref"'
        lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<mteval>",
                 f'<{kind} setid="iwslt2014.{name}" srclang="german"{extra}>']
        for i, d in enumerate(docs):
            lines.append(f'<doc docid="{start_id + i}" genre="lectures">')
            lines.append(f"<url>https://example.invalid/{d[0].doc.replace(':', '/')}</url>")
            lines.append(f"<talkid>{start_id + i}</talkid>")
            for j, p in enumerate(d, 1):
                lines.append(f'<seg id="{j}"> {getattr(p, attr)} </seg>')
            lines.append("</doc>")
        lines += [f"</{kind}>", "</mteval>"]
        (out / f"IWSLT14.TED.{name}.de-en.{lang}.xml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def take_docs(docs: Iterator[list[Pair]], n_pairs: int) -> list[list[Pair]]:
    """Take whole documents until at least ``n_pairs`` pairs are collected."""
    out: list[list[Pair]] = []
    total = 0
    while total < n_pairs:
        d = next(docs)
        out.append(d)
        total += len(d)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/sampledl/x"), help="unpacked .debs")
    ap.add_argument("--out", type=Path, default=Path("data/sample/de-en"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--n-train", type=int, default=27000)
    ap.add_argument("--n-dev", type=int, default=800)
    ap.add_argument("--n-test", type=int, default=1800)
    ap.add_argument("--max-words", type=int, default=30)
    ap.add_argument("--min-en-words-lo", type=int, default=4)
    ap.add_argument("--max-lo-doc", type=int, default=60, help="cap pairs per help page (keeps docs mixed)")
    args = ap.parse_args(argv)

    lo, titles, joined = libreoffice_pairs(args.root)
    nonempty = {(p.de, p.en) for p in lo if p.de and p.en}
    n_nonempty = sum(1 for p in lo if p.de and p.en)
    n4 = sum(1 for de, en in nonempty if len(en.split()) >= 4)
    print(f"libreoffice: joined (page, id) pairs {joined}, both sides non-empty {n_nonempty}, "
          f"unique {len(nonempty)}, unique with >= 4 English words {n4}")
    lo = dedup([p for p in lo if keep_pair(p, args.min_en_words_lo, args.max_words)])
    print(f"libreoffice: after filter + dedup {len(lo)}")
    ding, seen = ding_pairs(args.root)
    print(f"ding: sentence sub-entries {seen}, unique {len({(p.de, p.en) for p in ding})}")
    ding = dedup([p for p in ding if keep_pair(p, 1, args.max_words)])
    print(f"ding: after filter + dedup {len(ding)}")

    rng = random.Random(args.seed)
    # Shuffle within each help page and cap its size so one long page does not dominate a split.
    lo_docs = []
    for d in group_docs(lo):
        rng.shuffle(d)
        lo_docs.append(d[: args.max_lo_doc])
    ding_shuffled = list(ding)
    rng.shuffle(ding_shuffled)
    ding_docs = [ding_shuffled[i : i + 40] for i in range(0, len(ding_shuffled), 40)]
    docs = dedup([p for d in lo_docs + ding_docs for p in d])  # cross-source dedup
    all_docs = group_docs([Pair(p.de, p.en, p.doc) for p in docs])
    rng.shuffle(all_docs)
    it = iter(all_docs)
    test_docs = take_docs(it, args.n_test)
    dev_docs = take_docs(it, args.n_dev)
    train_docs = take_docs(it, args.n_train)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    banned = {side for d in test_docs + dev_docs for p in d for side in (p.de, p.en)}
    write_train(out, train_docs, titles, start_id=1, banned=banned)
    write_xml(out, "dev2010", dev_docs, start_id=10001)
    # Spread the test documents over the three tst files (the recipe concatenates them in order).
    k = len(test_docs)
    bounds = [0, k // 3, 2 * k // 3, k]
    for i, name in enumerate(TEST_SETS):
        write_xml(out, name, test_docs[bounds[i] : bounds[i + 1]], start_id=20001 + 1000 * i)

    def count(ds: list[list[Pair]]) -> str:
        n = sum(len(d) for d in ds)
        n_lo = sum(len(d) for d in ds if d[0].doc.startswith("lo:"))
        return f"{n} pairs in {len(ds)} docs ({n_lo} libreoffice, {n - n_lo} ding)"

    print(f"train: {count(train_docs)}")
    print(f"dev2010: {count(dev_docs)}")
    for i, name in enumerate(TEST_SETS):
        print(f"{name}: {count(test_docs[bounds[i] : bounds[i + 1]])}")
    sizes = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"wrote {out} ({sizes / 1e6:.2f} MB)")


if __name__ == "__main__":
    raise SystemExit(main())
