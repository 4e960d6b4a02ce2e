"""Tables a page copies from the generated tables: copied between their markers (table and notes, no title or
stamp), the rest of the page untouched, a missing table an error that leaves the page as it was, and the README
and docs/ current with the committed tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from shapeshifter.reports.pages import sync_page, synced, table_body

ROOT = Path(__file__).resolve().parents[2]
GENERATED = "## Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nNotes.\n\nBuilt from 1 run record(s): x\n"


def page(body: str) -> str:
    return f"Intro.\n\n<!-- table: t.md -->\n{body}<!-- /table -->\n\nAfter the table.\n"


def test_a_marked_block_becomes_the_table_of_its_file_and_nothing_else_changes(tmp_path: Path) -> None:
    (tmp_path / "t.md").write_text(GENERATED)
    path = tmp_path / "page.md"
    path.write_text(page("| a | b |\n|---|---|\n| 0 | 0 |\n"))
    assert sync_page(path, tmp_path)
    assert path.read_text() == page("| a | b |\n|---|---|\n| 1 | 2 |\n\nNotes.\n")
    assert not sync_page(path, tmp_path)  # current: unchanged


def test_a_missing_table_names_its_marker_and_the_page_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "page.md"
    path.write_text(page("| old |\n"))
    with pytest.raises(FileNotFoundError, match=r"<!-- table: t.md -->.*make tables"):
        sync_page(path, tmp_path)
    (tmp_path / "t.md").write_text("## A title, no table\n")
    with pytest.raises(FileNotFoundError, match="no Markdown table"):
        sync_page(path, tmp_path)
    assert path.read_text() == page("| old |\n")


def test_the_readme_and_docs_show_the_committed_tables_as_they_are() -> None:
    readme = (ROOT / "README.md").read_text()
    assert table_body((ROOT / "results/tables/quality_10x.md").read_text()) in readme
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        assert synced(text, ROOT / "results/tables") == text, f"{path.name} differs from results/tables: make tables"
