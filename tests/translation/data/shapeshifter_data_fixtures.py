"""Writers of tiny corpora in the real raw formats (IWSLT'14 archive, WMT plain text + SGM) for the data tests."""

from __future__ import annotations

from pathlib import Path

DE_WORDS = ["Haus", "Katze", "Hund", "Baum", "Auto", "Buch", "Tisch", "Stadt", "Wasser", "Licht"]
EN_WORDS = ["house", "cat", "dog", "tree", "car", "book", "table", "city", "water", "light"]


def sentence_pair(i: int) -> tuple[str, str]:
    """A deterministic pair carrying a unique marker (``Satz{i}`` / ``sentence{i}``) so lines can be traced."""
    k = 2 + i % 5
    de = " ".join(DE_WORDS[(i + j) % 10] for j in range(k))
    en = " ".join(EN_WORDS[(i + j) % 10] for j in range(k))
    return f"Das Satz{i}: {de}, nicht wahr?", f"The sentence{i}: {en}, isn't it?"


def write_iwslt(raw: Path, n_train: int = 60, test_sizes: dict[str, int] | None = None,
                bad_pairs: bool = True) -> dict[str, list[tuple[str, str]]]:
    """Write ``raw/train.tags.de-en.{de,en}`` + ``IWSLT14.TED.*.xml``; returns the pairs written per part.

    Train gets IWSLT meta lines around two documents, and (``bad_pairs``) one too-long and one bad-ratio pair
    placed after ``n_train`` good pairs.
    """
    raw.mkdir(parents=True, exist_ok=True)
    test_sizes = test_sizes or {"TED.dev2010": 3, "TED.tst2010": 2, "TED.tst2011": 2, "TED.tst2012": 3}
    pairs = [sentence_pair(i) for i in range(n_train)]
    extra = []
    if bad_pairs:
        extra = [("lang " * 180 + "ende", "long " * 180 + "end"), ("Ja.", "Yes , of course , really , truly , yes .")]
    de_lines: list[str] = []
    en_lines: list[str] = []
    half = n_train // 2
    for doc, chunk in enumerate([pairs[:half], pairs[half:] + extra]):
        for lines, lang in ((de_lines, "de"), (en_lines, "en")):
            lines += [f"<url>http://www.ted.com/talks/t{doc}.html</url>",
                      f"<keywords>talks, {lang}</keywords>",
                      "<speaker>Jane Doe</speaker>",
                      f"<talkid>{doc}</talkid>",
                      f"<title>Titel{doc}</title>" if lang == "de" else f"<title>Title{doc}</title>",
                      ]
        de_lines += [p[0] for p in chunk]
        en_lines += [p[1] for p in chunk]
    (raw / "train.tags.de-en.de").write_text("\n".join(de_lines) + "\n", encoding="utf-8")
    (raw / "train.tags.de-en.en").write_text("\n".join(en_lines) + "\n", encoding="utf-8")
    out: dict[str, list[tuple[str, str]]] = {"train": pairs + extra}
    start = 1000
    for name, n in test_sizes.items():
        tp = [sentence_pair(start + i) for i in range(n)]
        start += 100
        out[name] = tp
        for lang, idx in (("de", 0), ("en", 1)):
            rows = ['<?xml version="1.0" encoding="UTF-8"?>', "<mteval>",
                    f'<srcset setid="iwslt2014.{name}" srclang="german">',
                    '<doc docid="1" genre="lectures">', "<url>http://www.ted.com/talks/x.html</url>",
                    "<talkid>1</talkid>"]
            rows += [f'<seg id="{j}"> {p[idx]} </seg>' for j, p in enumerate(tp, 1)]
            rows += ["</doc>", "</srcset>", "</mteval>"]
            (raw / f"IWSLT14.{name}.de-en.{lang}.xml").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out


def write_sgm(path: Path, segs: list[str], setid: str, lang: str) -> None:
    rows = [f'<srcset setid="{setid}" srclang="any">', f'<doc sysid="ref" docid="d1" genre="news" origlang="{lang}">',
            "<p>"]
    rows += [f'<seg id="{i}">{s}</seg>' for i, s in enumerate(segs, 1)]
    rows += ["</p>", "</doc>", "</srcset>"]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


RO_TRAIN = [
    ("The house is big.", "Casa este mare."),
    ("The girl sings.", "Fata cântă."),
    ("We are in the city.", "Suntem în oraș."),
    ("This is the country.", "Aceasta este țara."),
    ("He said \u201ehello\u201d.", "El a spus \u201ebună\u201d."),
    ("The tree is tall.", "Copacul este \u00eenalt."),
]


def write_wmt(raw: Path) -> None:
    """Two small training corpora (plain text), newsdev2016 and newstest2016 as SGM, in WMT16 naming."""
    raw.mkdir(parents=True, exist_ok=True)
    half = len(RO_TRAIN) // 2
    for name, chunk in (("europarl-v8.ro-en", RO_TRAIN[:half]), ("SETIMES.en-ro", RO_TRAIN[half:])):
        (raw / f"{name}.en").write_text("".join(e + "\n" for e, _ in chunk), encoding="utf-8")
        (raw / f"{name}.ro").write_text("".join(r + "\n" for _, r in chunk), encoding="utf-8")
    dev = [("The city is big.", "Ora\u015ful este mare."), ("The girl is here.", "Fata este aici.")]
    test = [("The house sings.", "Casa c\u00e2nt\u0103."), ("We are tall.", "Suntem \u00eenal\u0163i.")]
    for set_name, pairs in (("newsdev2016", dev), ("newstest2016", test)):
        write_sgm(raw / f"{set_name}-enro-src.en.sgm", [e for e, _ in pairs], set_name, "en")
        write_sgm(raw / f"{set_name}-enro-ref.ro.sgm", [r for _, r in pairs], set_name, "en")
