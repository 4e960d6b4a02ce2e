"""Atomic writes: a reader sees the old file or the new one, never half of one, and no temporary file is left."""

from pathlib import Path

import pytest

from shapeshifter import atomic


def test_write_text_replaces_the_file_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "record.json"
    assert atomic.write_text(path, "one\n") == path
    assert atomic.write_text(path, "two\n") == path
    assert path.read_text() == "two\n"
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]


def test_a_block_that_raises_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("old")
    with pytest.raises(OSError, match="disk full"), atomic.replacing(path) as tmp:
        tmp.write_text("half of the ne")
        raise OSError("disk full")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_two_writers_get_temporary_files_of_their_own(tmp_path: Path) -> None:
    path = tmp_path / "mark"
    with atomic.replacing(path) as first, atomic.replacing(path) as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_text("a")
        second.write_text("b")
    assert path.read_text() == "a"  # the outer block ends last, so its content is what stays
