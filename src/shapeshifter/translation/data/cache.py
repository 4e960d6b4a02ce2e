"""Stage caching: skip a stage when its outputs exist and its inputs + parameters are unchanged.

Each stage writes ``<work_dir>/.stamps/<stage>.json`` holding a SHA-256 of its input files' contents and its
parameters, and the SHA-256 of every output.  A stage reruns when the stamp is missing, the key differs, or
an output is missing or its content changed (truncated, overwritten, corrupted in place at the same size), so
a half-finished or damaged stage never looks complete: the stamp is written last.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from shapeshifter.experiment.data_identity import DataError, file_digest


@contextlib.contextmanager
def work_dir_lock(work_dir: Path, log: Callable[[str], None] = print) -> Iterator[None]:
    """Hold an exclusive lock on ``<work_dir>/.lock`` (released when the process ends, however it ends).

    Jobs launched in parallel on the same data would otherwise run the same stages at once and rewrite files
    that another job is reading; with the lock the first prepares and the others find every stage fresh.
    """
    import fcntl

    work_dir.mkdir(parents=True, exist_ok=True)
    with open(work_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"[data] waiting for another job preparing {work_dir}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stage_key(inputs: Iterable[Path], params: dict[str, Any]) -> str:
    """Hash of the inputs' contents (in the given order) and the JSON-encoded parameters."""
    h = hashlib.sha256()
    for p in inputs:
        h.update(str(Path(p).name).encode())
        h.update(file_digest(Path(p)).encode())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _stamp_path(work_dir: Path, stage: str) -> Path:
    return work_dir / ".stamps" / f"{stage}.json"


def is_fresh(work_dir: Path, stage: str, key: str, outputs: Sequence[Path]) -> bool:
    stamp = _stamp_path(work_dir, stage)
    if not stamp.is_file():
        return False
    try:
        rec = json.loads(stamp.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if rec.get("key") != key:
        return False
    digests = rec.get("outputs", {})
    return all(out.is_file() and digests.get(str(out)) == file_digest(out) for out in outputs)


def run_stage(
    work_dir: Path,
    stage: str,
    inputs: Sequence[Path],
    params: dict[str, Any],
    outputs: Sequence[Path],
    fn: Callable[[], None],
    log: Callable[[str], None] = print,
) -> bool:
    """Run ``fn`` unless the stage is fresh; returns True when it ran.  ``fn`` must write all ``outputs``."""
    key = stage_key(inputs, params)
    if is_fresh(work_dir, stage, key, outputs):
        log(f"[{stage}] skipped (up to date)")
        return False
    log(f"[{stage}] running")
    stamp = _stamp_path(work_dir, stage)
    stamp.unlink(missing_ok=True)
    t0 = time.perf_counter()
    fn()
    missing = [str(o) for o in outputs if not o.is_file()]
    if missing:
        raise DataError(f"stage {stage} did not produce: {', '.join(missing)}")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    rec = {"key": key, "params": params, "outputs": {str(o): file_digest(o) for o in outputs}}
    stamp.write_text(json.dumps(rec, indent=1, sort_keys=True, default=str))
    log(f"[{stage}] done in {time.perf_counter() - t0:.1f} s")
    return True
