"""Where a run's files live: ``<outputs>/<group>/<name>/<config hash>/`` (checkpoints, logs, translations).

The readable ``<group>/<name>`` folder is Hydra's job folder; the config hash below it keeps two configurations
that share a name (a sweep over a key the name does not show, say ``optim.lr``) from ever sharing files, run
one after another or in parallel. Folders written before the hash level existed are adopted when their
``checkpoints/CONFIG_HASH`` mark names the same config, so an interrupted run still resumes.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger("shapeshifter")

RUN_FILES = ("checkpoints", "csv", "translations", "wandb")  # what a run writes into its folder


def run_dir(job_dir: Path, config_hash: str) -> Path:
    """The run folder of ``config_hash`` under Hydra's job folder, created (or adopted from the old layout)."""
    job_dir = Path(job_dir)
    work = job_dir / config_hash
    mark = job_dir / "checkpoints" / "CONFIG_HASH"
    if not work.exists() and mark.is_file() and mark.read_text().strip() == config_hash:
        work.mkdir(parents=True)
        for name in RUN_FILES:
            if (job_dir / name).exists():
                shutil.move(str(job_dir / name), str(work / name))
        log.info("adopted the run files of %s in %s into %s", config_hash, job_dir, work)
    work.mkdir(parents=True, exist_ok=True)
    return work


def find_checkpoint(path: Path, pattern: str = "best-*.ckpt") -> Path:
    """A checkpoint file: ``path`` itself, or the one ``checkpoints/<pattern>`` of the run folder ``path`` (its
    evaluated weights), looking one level down for the config-hash folders of a job folder."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint or run folder at {path}")
    found = sorted(path.glob(f"checkpoints/{pattern}")) or sorted(path.glob(f"*/checkpoints/{pattern}"))
    if len(found) != 1:
        names = ", ".join(str(p.relative_to(path)) for p in found) or "none"
        raise FileNotFoundError(f"expected exactly one checkpoints/{pattern} under {path}, found {names}")
    return found[0]


def checkpoint_dir(job_dir: Path, config_hash: str) -> Path:
    """The checkpoints folder of ``config_hash`` in a job folder (the folder of the old layout when that is
    where they are)."""
    job_dir = Path(job_dir)
    current = job_dir / config_hash / "checkpoints"
    return current if current.is_dir() or not (job_dir / "checkpoints").is_dir() else job_dir / "checkpoints"
