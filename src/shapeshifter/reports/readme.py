"""Tables that a Markdown page shows, copied from the generated tables so that the page never states a number the
records do not.

A page marks each copy with the table file it comes from::

    <!-- table: quality_10x.md -->
    | method | ... |
    <!-- /table -->

`sync_page` replaces what lies between the markers with the Markdown table (its ``|`` lines) of that file under
the tables folder; ``make tables`` does it for the README, and a test fails while the README differs from it.
"""

from __future__ import annotations

import re
from pathlib import Path

from shapeshifter import atomic

BLOCK = re.compile(r"(<!-- table: (?P<name>[^ ]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def table_lines(markdown: str) -> str:
    """The table of a generated Markdown file: its ``|`` lines (title, notes and stamp left out)."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return "\n".join(lines) + "\n" if lines else ""


def synced(text: str, tables: Path) -> str:
    """``text`` with every marked table replaced by the table of its file under ``tables``; FileNotFoundError
    naming the marker when a file is missing or holds no table."""
    def copy(match: re.Match) -> str:
        path = tables / match["name"]
        body = table_lines(path.read_text()) if path.is_file() else ""
        if not body:
            raise FileNotFoundError(f"<!-- table: {match['name']} -->: no Markdown table in {path} "
                                    "(build it first: make tables)")
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(copy, text)


def sync_page(page: Path, tables: Path) -> bool:
    """Rewrite ``page``'s marked tables from ``tables``; True when it changed. Nothing is written on an error."""
    text = page.read_text()
    new = synced(text, tables)
    if new != text:
        atomic.write_text(page, new)
    return new != text
