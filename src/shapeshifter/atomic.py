"""Files that are there whole or not at all: a reader (a resumed run, a table build) never sees half a record,
manifest, chunk or checkpoint, and a kill or a full disk during a rewrite leaves the previous file as it was."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file of its own beside ``path`` (two writers never share one, and the rename never crosses
    filesystems); it replaces ``path`` when the block ends normally and is removed if the block raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """``Path.write_text`` (UTF-8, ``\\n`` line ends) through `replacing`."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")
    return Path(path)
