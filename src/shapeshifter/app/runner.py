"""Dispatch a composed config to its pipeline, with the skip-if-done and record bookkeeping."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from shapeshifter.app.records import config_hash
from shapeshifter.app.run_folder import run_dir
from shapeshifter.threads import apply_threads

log = logging.getLogger("shapeshifter")


def run_hash(cfg: DictConfig) -> str:
    """The config hash that names this run's record and its run folder."""
    return config_hash(OmegaConf.to_container(cfg, resolve=True))


def record_path(cfg: DictConfig, digest: str | None = None) -> Path:
    """Where this run's record lives: ``<records>/<group>/<name>-<config hash>.json`` (``digest``: the hash, when
    the caller has it already). ``<records>`` is ``paths.records_dir`` (``run.records`` under the project
    folder), or ``run.records`` itself for configs saved before the ``paths`` group."""
    records = cfg.paths.records_dir if cfg.get("paths") else cfg.run.records
    return Path(records) / str(cfg.run.group) / f"{cfg.run.name}-{digest or run_hash(cfg)}.json"


def run_job(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    kind = cfg.data.get("kind")
    digest = run_hash(cfg)
    path = record_path(cfg, digest)
    if cfg.run.skip_done and path.is_file():
        try:
            existing = json.loads(path.read_text())
        except json.JSONDecodeError:
            existing = {}
        if existing.get("status") == "done":
            log.info("skipping %s: record %s is complete", cfg.run.name, path)
            existing["_path"] = str(path)
            return existing
    out_dir = run_dir(out_dir, digest)  # <job folder>/<config hash>: no two configs share files
    apply_threads(cfg.run.get("threads"))  # run.threads, else the shared rule (shapeshifter.threads)
    if kind == "translation":
        from shapeshifter.app.translation import run_translation

        record = run_translation(cfg, out_dir, path)
    elif kind == "glue":
        from shapeshifter.app.glue import run_glue

        record = run_glue(cfg, out_dir, path)
    else:
        raise ValueError(f"data.kind must be 'translation' or 'glue', got {kind!r} (config group data={cfg.data})")
    record["_path"] = str(path)
    return record
