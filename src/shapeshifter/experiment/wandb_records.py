"""Run records kept in W&B: attach each finished record to its W&B run, and fetch them back as local records.

Tables are built from local record files only (``reports.registry.build_all``). When the runs of a paper were
made on machines whose record folders are gone, their W&B project still holds one ``shapeshifter_record.json``
per run (the exact bytes of the local record); ``fetch_records`` writes those back into the local layout
``<dest>/<group>/<name>-<config_hash>.json`` so that the same tables can be rebuilt from W&B.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shapeshifter.experiment.records import write_record
from shapeshifter.paths import anchored

log = logging.getLogger(__name__)

RECORD_FILE = "shapeshifter_record.json"
RECORD_ARTIFACT_TYPE = "shapeshifter-record"
# Put in the W&B run summary too, so runs can be filtered in the W&B UI without opening the file.
SUMMARY_KEYS = ("config_hash", "kind", "status")
# Fields of the record's ``training`` shown in the summary as ``train/<field>`` (a table's "epochs", "stopped by").
TRAINING_SUMMARY = ("epochs", "steps", "stopped_by", "best")
SAMPLE_ROWS = 20  # test translations shown in the run's table
REQUIRED_KEYS = ("config_hash", "kind", "status", "config")


def attach_record(record: Mapping[str, Any]) -> Path | None:
    """Attach the final record to the active W&B run (if any); returns the file written there, else None.

    The file goes into the run's files folder, so an offline run keeps it for ``wandb sync``; it is written
    with ``write_record`` so its bytes equal the local record's, and logged as an artifact of type
    `RECORD_ARTIFACT_TYPE` too. The summary gets the record's training outcome (`TRAINING_SUMMARY`), and a
    translation run's first `SAMPLE_ROWS` test translations are logged as the table ``test/translations``. W&B
    trouble must never fail a finished training run: any error is logged as a warning.
    """
    try:
        import wandb
    except ImportError:
        return None
    run = wandb.run
    if run is None:
        return None
    try:
        path = write_record(record, Path(run.dir) / RECORD_FILE)
        run.save(str(path), base_path=run.dir, policy="now")
        run.summary.update({key: record.get(key) for key in SUMMARY_KEYS})
    except Exception as err:  # whatever W&B raises: the run itself succeeded
        log.warning("could not attach the run record to W&B run %s: %s: %s", getattr(run, "id", "?"),
                    type(err).__name__, err)
        return None
    try:  # what the dashboard shows besides: its failure must not undo the attached record
        log_outcome(run, record, path)
    except Exception as err:
        log.warning("could not log the record artifact or sample translations to W&B run %s: %s: %s",
                    getattr(run, "id", "?"), type(err).__name__, err)
    return path


def log_outcome(run: Any, record: Mapping[str, Any], path: Path) -> None:
    """The record's training outcome in the summary, the record as an artifact and the sample translations table."""
    import wandb

    training = record.get("training") or {}
    run.summary.update({f"train/{key}": training[key] for key in TRAINING_SUMMARY if key in training})
    artifact = wandb.Artifact(f"record-{record.get('config_hash')}", type=RECORD_ARTIFACT_TYPE,
                              metadata={key: record.get(key) for key in SUMMARY_KEYS})
    artifact.add_file(str(path), name=RECORD_FILE)
    run.log_artifact(artifact)
    samples = sample_translations(record)
    if samples:
        run.log({"test/translations": wandb.Table(columns=list(samples[0]), data=samples[1:])})


def sample_translations(record: Mapping[str, Any], rows: int = SAMPLE_ROWS) -> list[list[str]]:
    """The header and first ``rows`` rows of a translation run's test TSV (id, source, reference, hypothesis), named
    by its record (relative to the project folder); empty for other runs or when the file is gone."""
    tsv = (((record.get("metrics") or {}).get("test") or {}).get("files") or {}).get("tsv")
    if not tsv:
        return []

    path = anchored(tsv)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()[: rows + 1]
    return [line.split("\t") for line in lines]


def _canonical(record: Any) -> str:
    """Content of a record independent of the file's formatting (NaN-safe, unlike comparing dicts)."""
    return json.dumps(record, sort_keys=True, default=str)


def _run_label(project: str, run: Any) -> str:
    return f"W&B run {project}/{getattr(run, 'id', '?')} ({getattr(run, 'name', None)!r})"


def _path_part(value: Any, what: str, label: str) -> str:
    """A folder or file name taken from remote data: refuse anything that could leave ``dest``."""
    text = str(value) if value is not None else ""
    if not text or text in (".", "..") or "/" in text or "\\" in text or "\0" in text:
        raise ValueError(f"{label}: {what} {value!r} cannot be used as a file name under the records folder")
    return text


def _download_record(project: str, run: Any, tmp: Path) -> dict[str, Any] | None:
    """The run's record as a dict; None when the run has no record file (W&B lists a missing name as size 0)."""
    label = _run_label(project, run)
    found = [f for f in run.files(names=[RECORD_FILE]) if f.name == RECORD_FILE and (f.size or 0) > 0]
    if not found:
        return None
    root = tmp / str(getattr(run, "id", "run"))
    with found[0].download(root=str(root), replace=True) as fh:
        text = fh.read()
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{label}: {RECORD_FILE} is not valid JSON: {err}") from err
    if not isinstance(record, dict):
        raise ValueError(f"{label}: {RECORD_FILE} is not a JSON object (got {type(record).__name__})")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise ValueError(f"{label}: {RECORD_FILE} is not a run record, it lacks {', '.join(missing)}")
    if not isinstance(record["config"], dict):
        raise ValueError(f"{label}: {RECORD_FILE} has a config that is not a JSON object")
    return record


def _target(dest: Path, project: str, run: Any, record: Mapping[str, Any]) -> Path:
    """Where the local pipeline would have written this record: ``<group>/<name>-<config_hash>.json``."""
    label = _run_label(project, run)
    run_cfg = record["config"].get("run")
    run_cfg = run_cfg if isinstance(run_cfg, dict) else {}
    group = _path_part(run_cfg.get("group") or getattr(run, "group", None), "group", label)
    name = _path_part(run_cfg.get("name") or getattr(run, "name", None), "run name", label)
    config_hash = _path_part(record["config_hash"], "config_hash", label)
    return dest / group / f"{name}-{config_hash}.json"


def _may_replace(old: Any, new: Mapping[str, Any]) -> bool:
    """Other content may replace a record only when it is a finished record and the old one is not."""
    old_done = isinstance(old, dict) and old.get("status") == "done"
    return new.get("status") == "done" and not old_done


def _read_local(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # unreadable: treated as an unfinished record


# Records fetched so far, by the local file they go to, each with the label of the run it came from.
_Fetched = dict[Path, tuple[dict[str, Any], str]]


def _add_fetched(fetched: _Fetched, path: Path, record: dict[str, Any], label: str) -> None:
    """Two runs that give the same file must agree, unless one is finished and the other not (the finished wins)."""
    if path in fetched and _canonical(fetched[path][0]) != _canonical(record):
        other, other_label = fetched[path]
        if _may_replace(record, other):  # the one already fetched wins: keep it
            return
        if not _may_replace(other, record):
            raise ValueError(f"{label} and {other_label} both give {path} with different content")
    fetched[path] = (record, label)


def _download_all(project: str, runs: Any, dest: Path) -> tuple[_Fetched, list[str]]:
    """Every run's record by its local file, and the labels of the runs without one."""
    fetched: _Fetched = {}
    skipped = []
    with tempfile.TemporaryDirectory(prefix="shapeshifter-wandb-") as tmp:
        for run in runs:
            record = _download_record(project, run, Path(tmp))
            label = _run_label(project, run)
            if record is None:
                skipped.append(label)
                continue
            _add_fetched(fetched, _target(Path(dest), project, run, record), record, label)
    return fetched, skipped


def _check_local(fetched: _Fetched) -> None:
    """A local record may be replaced only by its finished version; checked for all before anything is written."""
    for path, (record, label) in fetched.items():
        if not path.exists():
            continue
        local = _read_local(path)
        if _canonical(local) == _canonical(record):
            continue
        if not _may_replace(local, record):
            raise ValueError(f"local record {path} differs from the one of {label}; not replaced since only a "
                             "finished record may replace an unfinished one: move one of them aside")
        log.warning("replacing unfinished local record %s with the finished one of %s", path, label)


def fetch_records(project: str, dest: Path, api: Any = None, group: str | None = None) -> list[Path]:
    """Download the run records of a W&B project ("entity/project") into ``dest`` in the local layout.

    ``group`` keeps only the runs of that W&B group. Runs without a record file (failed runs, runs from
    before records were attached) are skipped with a warning. Everything is downloaded and checked before
    anything is written, so a bad run leaves ``dest`` untouched. Returns the record files, sorted.
    """
    parts = project.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"W&B project must be given as ENTITY/PROJECT, got {project!r}")
    if api is None:
        import wandb

        api = wandb.Api()
    runs = api.runs(project, filters={"group": group} if group else {})
    fetched, skipped = _download_all(project, runs, dest)
    _check_local(fetched)
    for path, (record, _) in fetched.items():
        write_record(record, path)
    for label in skipped:
        log.warning("%s has no %s: skipped", label, RECORD_FILE)
    log.info("fetched %d record(s) from W&B project %s into %s; skipped %d run(s) without a record",
             len(fetched), project, dest, len(skipped))
    return sorted(fetched)
