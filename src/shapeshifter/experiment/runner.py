"""Run a composed config's task (named by ``adapter._target_``), with the skip-if-done and record bookkeeping."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from shapeshifter.experiment.ddp import global_rank
from shapeshifter.experiment.records import NO_DATA, config_hash
from shapeshifter.experiment.run_folder import CONFIG_FILE, DATA_FILE, record_location, run_dir, validate_names
from shapeshifter.experiment.run_lock import run_locks
from shapeshifter.experiment.task import Task, build_task, run_task, task_node, validate_run
from shapeshifter.threads import apply_threads

log = logging.getLogger("shapeshifter")


def data_identity(cfg: DictConfig, fetch: bool = False) -> str | None:
    """The identity of the run's data (`Task.data_content`): the config hash covers what the data is, not where
    it lies. ``fetch``: get the inputs as the run would (write a sample slice, download a recipe's archive) and
    raise when they are missing; otherwise a missing input gives None, which no finished run has. `NO_DATA` for a
    config that names no task (`task.task_node`)."""
    if cfg.get("data") is None or task_node(cfg) is None:
        return NO_DATA
    return build_task(cfg).data_content(fetch)


def run_hash(cfg: DictConfig, content: str | None = NO_DATA) -> str:
    """The config hash that names this run's record and its run folder, with its data's identity (``content``,
    else `data_identity` of what is here now)."""
    if content is NO_DATA:
        content = data_identity(cfg)
    return config_hash(OmegaConf.to_container(cfg, resolve=True), content)


def record_path(cfg: DictConfig, digest: str | None = None) -> Path:
    """Where this run's record lives (`run_folder.record_location`, which refuses a name or group that would leave
    the records folder; ``digest``: the config hash, when the caller has it already)."""
    return record_location(cfg, digest or run_hash(cfg))


def save_job_config(cfg: DictConfig, job_dir: Path, content: str | None = NO_DATA) -> None:
    """Write the job's config to the job folder (`run_folder.CONFIG_FILE`) and its data's identity beside it
    (`run_folder.DATA_FILE`), so that the folder names its config hash on its own (a teacher, a run to evaluate
    or export), wherever the data is later. This replaces the file Hydra's app wrote before the job, and gives one
    to a job composed without the app."""
    config_file = Path(job_dir) / CONFIG_FILE
    config_file.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]), config_file)
    if content is not NO_DATA:
        (Path(job_dir) / DATA_FILE).write_text(json.dumps({"content": content}) + "\n")


def read_status(path: Path) -> dict[str, Any]:
    """The record at ``path`` as a dict (empty when missing or not JSON: a torn file is rewritten by the run)."""
    try:
        existing = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return existing if isinstance(existing, dict) else {}


def finished_record(cfg: DictConfig, path: Path) -> dict[str, Any] | None:
    """The "done" record of this configuration when the run is to be skipped (``run.skip_done``), else None.
    A "done" record is never overwritten unless ``run.replace=true``: ``run.skip_done=false`` alone (a rerun to
    check a result) is refused before any work, pointing at a scratch records folder."""
    existing = read_status(path)
    if existing.get("status") != "done":
        return None
    if cfg.run.skip_done:
        log.info("skipping %s: record %s is complete", cfg.run.name, path)
        existing["_path"] = str(path)
        return existing
    if not cfg.run.get("replace", False):
        raise ValueError(f"{path} is a finished record of this configuration and run.skip_done=false would "
                         "overwrite it: pass run.records=<a scratch folder> to rerun it beside the record, or "
                         "run.replace=true to replace it")
    return None


def run_job(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Run one composed config in Hydra's job folder ``out_dir``: skipped when its record is done, refused when
    another process runs the same configuration (`experiment.run_lock`), else run by its task (`task.build_task`)."""
    validate_names(cfg)  # before any file is written: the names are paths
    validate_run(cfg)  # a bad config fails before the lock files (and their folders) are made
    task = build_task(cfg)
    digest = run_hash(cfg, task.identity())
    path = record_path(cfg, digest)
    if (existing := finished_record(cfg, path)) is not None:
        return existing
    if global_rank() != 0:  # a rank of an externally launched DDP job: rank zero holds the locks and writes
        return dispatch(task, Path(out_dir), path, digest)
    what = f"configuration {cfg.run.name} ({digest})"
    locks = [(path.with_name(f".{path.stem}.lock"), what), (Path(out_dir) / f".{digest}.lock", what)]
    with run_locks(locks, wait=bool(cfg.run.get("wait_for_lock", False))):
        if (existing := finished_record(cfg, path)) is not None:  # finished while we waited for the lock
            return existing
        return dispatch(task, Path(out_dir), path, digest)


def dispatch(task: Task, out_dir: Path, path: Path, digest: str) -> dict[str, Any]:
    """Run ``task`` through the run skeleton, in ``<out_dir>/<config hash>``."""
    save_job_config(task.cfg, out_dir, task.identity())
    out_dir = run_dir(out_dir, digest)  # <job folder>/<config hash>: no two configs share files
    apply_threads(task.cfg.run.get("threads"))  # run.threads, else the shared rule (shapeshifter.threads)
    record = run_task(task, out_dir, path)
    record["_path"] = str(path)
    return record
