"""What a run's data *is*, independent of where it lies: a digest of the input files' names and bytes.

The config hash names a run by what changes its result. A data folder's path does not (the same corpus copied
elsewhere is the same experiment), its content does (a corrupted or edited file is another one). A run computes
this digest once before any work (`Task.identity`), keeps it beside its config (the record's ``data_content``, the
run folder's ``.hydra/data.json``), and `shapeshifter.experiment.records.semantic_config` hashes it in place of
the data's folders.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

from shapeshifter.experiment.records import file_sha256

# Files that sit beside the inputs without being data: locks and stamps of the preparation, editor and OS debris.
_SKIPPED = (".lock", ".DS_Store")
# Of a fairseq data-bin, the files the training reads (preprocess.log names the machine's paths).
_DATA_BIN_SUFFIXES = (".bin", ".idx", ".txt")


class DataError(RuntimeError):
    """A required input file is missing, unreadable or malformed (the message names the file)."""


def file_digest(path: Path) -> str:
    """SHA-256 of an input file's content (`records.file_sha256`); a missing file is a `DataError` naming it."""
    try:
        return file_sha256(path)
    except FileNotFoundError:
        raise DataError(f"missing input file: {path}") from None


_memo: dict[tuple[str, int, int], str] = {}


def _digest(path: Path) -> str:
    """`file_digest`, remembered per (path, size, mtime) so a sweep that hashes many configs reads a file once."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _memo:
        _memo[key] = file_digest(path)
    return _memo[key]


def files_under(folder: Path, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    """The regular files under ``folder`` (recursively; hidden files and locks skipped), optionally by suffix:
    for inputs that are a folder as a whole (a data-bin, a saved dataset), not a list of named files."""
    if not folder.is_dir():
        raise DataError(f"data folder not found: {folder}")
    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".") and p.name not in _SKIPPED]
    return sorted(p for p in files if suffixes is None or p.suffix in suffixes)


def named_digest(files: Mapping[str, Path]) -> str:
    """``sha256:<16 hex>`` over each file's name (the key) and content digest, in name order. No files is an
    error: no data has no identity."""
    if not files:
        raise DataError("no data files to identify")
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + _digest(files[name]).encode() + b"\n")
    return "sha256:" + h.hexdigest()[:16]


def content_digest(files: Iterable[Path], root: Path | None = None) -> str:
    """`named_digest` of ``files`` named relative to ``root`` (else by their base names)."""
    return named_digest({str(p.relative_to(root)) if root is not None else p.name: p for p in files})


def folder_digest(folder: Path, suffixes: tuple[str, ...] | None = None) -> str:
    """`content_digest` of the files under ``folder``, named relative to it."""
    return content_digest(files_under(folder, suffixes), folder)


def data_bin_digest(data_bin: Path) -> str:
    """The identity of a prepared fairseq data-bin: its dictionaries and binarized splits."""
    return folder_digest(data_bin, _DATA_BIN_SUFFIXES)
