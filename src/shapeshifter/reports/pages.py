"""Tables that Markdown pages (the README, docs/) show, copied from the generated tables so that a page never
states a number the records do not.

A page marks each copy with the generated file it comes from::

    <!-- table: quality_10x.md -->
    | method | ... |
    ...
    <!-- /table -->

`sync_page` replaces what lies between the markers with that file's body under the tables folder: its table and
notes, without the title (the page has its own heading) and the records stamp. ``make tables`` does it for the
README and every page of docs/, and a test fails while a page differs from the committed tables.
"""

from __future__ import annotations

import re
from pathlib import Path

from shapeshifter import atomic
from shapeshifter.reports.frame import STAMP_PREFIX

BLOCK = re.compile(r"(<!-- table: (?P<name>[^ ]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def table_body(markdown: str) -> str:
    """A generated file's table and notes: the lines after its ``## `` title, without the records stamp."""
    lines = markdown.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if line.startswith("## ")), 0)
    body = [line for line in lines[start:] if not line.startswith(STAMP_PREFIX)]
    has_table = any(line.startswith("|") for line in body)
    return "\n".join(body).strip("\n") + "\n" if has_table else ""


def synced(text: str, tables: Path) -> str:
    """``text`` with every marked block replaced by the body of its file under ``tables``; FileNotFoundError
    naming the marker when a file is missing or holds no table."""
    def copy(match: re.Match) -> str:
        path = tables / match["name"]
        body = table_body(path.read_text()) if path.is_file() else ""
        if not body:
            raise FileNotFoundError(f"<!-- table: {match['name']} -->: no Markdown table in {path} "
                                    "(build it first: make tables)")
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(copy, text)


def sync_page(page: Path, tables: Path) -> bool:
    """Rewrite ``page``'s marked blocks from ``tables``; True when it changed. Nothing is written on an error."""
    text = page.read_text()
    new = synced(text, tables)
    changed = new != text
    if changed:
        atomic.write_text(page, new)
    return changed
