"""Dispatch a composed config to its pipeline, with the skip-if-done and record bookkeeping."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from shapeshifter.app import glue, translation
from shapeshifter.app.records import config_hash
from shapeshifter.app.run_folder import CONFIG_FILE, record_location, run_dir
from shapeshifter.threads import apply_threads

log = logging.getLogger("shapeshifter")


def stamp_data_content(cfg: DictConfig, fetch: bool = False) -> None:
    """Set ``data.content``, the identity of the run's data (`shapeshifter.data.identity`), on ``cfg`` unless it
    is set: the config hash then covers what the data is, not where it lies. ``fetch``: get the inputs as the
    run would (write a sample slice, download a recipe's archive) and raise when they are missing; otherwise a
    missing input leaves the content None, which no finished run has. Configs without a translation or GLUE data
    node are left as they are."""
    data = cfg.get("data")
    if data is None or data.get("kind") not in ("translation", "glue") or data.get("content") is not None:
        return
    content = (translation if data.kind == "translation" else glue).data_content(cfg, fetch)
    with open_dict(cfg):
        cfg.data.content = content


def run_hash(cfg: DictConfig) -> str:
    """The config hash that names this run's record and its run folder (the data's identity stamped first)."""
    stamp_data_content(cfg)
    return config_hash(OmegaConf.to_container(cfg, resolve=True))


def record_path(cfg: DictConfig, digest: str | None = None) -> Path:
    """Where this run's record lives (`run_folder.record_location`; ``digest``: the config hash, when the caller has
    it already)."""
    return record_location(cfg, digest or run_hash(cfg))


def save_data_content(cfg: DictConfig, job_dir: Path) -> None:
    """Add the stamped ``data.content`` to the job folder's composed config (`run_folder.CONFIG_FILE`, written by
    Hydra before the job), so that the folder names its config hash on its own, wherever the data is later."""
    config_file = Path(job_dir) / CONFIG_FILE
    if not config_file.is_file() or cfg.get("data") is None or "content" not in cfg.data:
        return
    saved = OmegaConf.load(config_file)
    if saved.get("data") is None or saved.data.get("content") == cfg.data.content:
        return
    with open_dict(saved):
        saved.data.content = cfg.data.content
    OmegaConf.save(saved, config_file)


def run_job(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    kind = cfg.data.get("kind")
    stamp_data_content(cfg, fetch=True)
    save_data_content(cfg, out_dir)
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
        record = translation.run_translation(cfg, out_dir, path)
    elif kind == "glue":
        record = glue.run_glue(cfg, out_dir, path)
    else:
        raise ValueError(f"data.kind must be 'translation' or 'glue', got {kind!r} (config group data={cfg.data})")
    record["_path"] = str(path)
    return record
