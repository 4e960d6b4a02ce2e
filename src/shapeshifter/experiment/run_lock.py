"""One writer per run: an exclusive lock next to what a run writes (its record, its run folder).

Two identical commands started together would otherwise both train, writing the same ``last.ckpt``, the same
record and one ``metrics.csv`` with duplicated rows (or a CSV logger error that loses the first run's curve).
The lock is an ``flock`` on a small file that names its holder (pid, host, command, since when): the kernel
releases it when the holder dies however it dies (kill -9 included), so a lock left by a dead process is taken
over by the next run without a word, and a live holder is named in the refusal. The file is removed when the
lock is released; a file whose lock is free is only a leftover.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from shapeshifter.experiment.records import now


class RunLockedError(RuntimeError):
    """Another live process holds the lock of this run (the message names it and the lock file)."""


def holder_of(path: Path) -> str:
    """Who holds the lock at ``path``, in words (as far as the file says)."""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return "another process (the lock file does not say which)"
    return (f"pid {info.get('pid')} on {info.get('host')} (since {info.get('since')}: "
            f"{info.get('command') or '?'})")


def _try_lock(path: Path, wait: bool) -> int | None:
    """The file descriptor of ``path`` locked by this process, or None while another holds it (``wait``:
    block until it is free). A file removed by its holder between our open and our lock is retried."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder released and removed it meanwhile: lock the new file


@contextlib.contextmanager
def run_lock(path: Path, what: str, wait: bool = False, poll_s: float = 2.0) -> Iterator[Path]:
    """Hold the lock file ``path`` (``what``: the run it guards, for the message) for the ``with`` block.

    Held by a live process: `RunLockedError` naming it, at once; ``wait=True`` (``run.wait_for_lock=true``)
    waits for it instead, polling every ``poll_s`` seconds.
    """
    path = Path(path)
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]  # removed again if left empty
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _try_lock(path, wait=False)
    while fd is None:
        if not wait:
            raise RunLockedError(
                f"{what} is being run by {holder_of(path)}; lock file {path}. Wait for that run to end (rerun "
                "then: a finished run is skipped), stop it, or pass run.wait_for_lock=true to wait")
        time.sleep(poll_s)
        fd = _try_lock(path, wait=False)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": now(),
                                 "command": " ".join(sys.argv)[:500]}).encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                os.unlink(path)  # before unlocking: a waiter that locked the old file sees it gone and retries
        os.close(fd)  # releases the flock
        for folder in made:  # innermost first; a folder the run wrote into stays
            with contextlib.suppress(OSError):
                folder.rmdir()


@contextlib.contextmanager
def run_locks(paths: list[tuple[Path, str]], wait: bool = False) -> Iterator[None]:
    """`run_lock` on each ``(path, what)`` in order (all held, or none when one is refused)."""
    with contextlib.ExitStack() as stack:
        for path, what in paths:
            stack.enter_context(run_lock(path, what, wait))
        yield
