"""Tables a page copies from the generated tables: copied between their markers, the rest of the page untouched,
a missing table an error that leaves the page as it was, and the README current with the committed tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from shapeshifter.reports.readme import sync_page, synced, table_lines

ROOT = Path(__file__).resolve().parents[2]
GENERATED = "## Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nNotes.\n\nBuilt from 1 run record(s): x\n"


def page(body: str) -> str:
    return f"Intro.\n\n<!-- table: t.md -->\n{body}<!-- /table -->\n\nAfter the table.\n"


def test_a_marked_block_becomes_the_table_of_its_file_and_nothing_else_changes(tmp_path: Path) -> None:
    (tmp_path / "t.md").write_text(GENERATED)
    path = tmp_path / "page.md"
    path.write_text(page("| a | b |\n|---|---|\n| 0 | 0 |\n"))
    assert sync_page(path, tmp_path)
    assert path.read_text() == page("| a | b |\n|---|---|\n| 1 | 2 |\n")
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


def test_the_readme_shows_the_committed_tables_as_they_are() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "<!-- table: quality_10x.md -->" in readme
    assert table_lines((ROOT / "results/tables/quality_10x.md").read_text()) in readme
    assert synced(readme, ROOT / "results/tables") == readme, "README differs from results/tables: run make tables"
