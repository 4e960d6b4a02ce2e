"""Run records: one JSON file per run with config, parameters, metrics, timings, versions and git commit.

Tables and plots are generated from these records only. A record's ``config_hash`` identifies the run
(the resolved config minus fields that do not change results: output paths, display names; other runs' folders
taken below the outputs folder), so a sweep can skip runs whose record already exists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from shapeshifter import atomic
from shapeshifter.paths import repo_root

log = logging.getLogger("shapeshifter")

# Keys that name where things go or what watches a run, not what is computed: left out of the config hash.
# ``callbacks`` holds only callbacks that cannot change a result (`experiment.callbacks` refuses any other); ``adapter``
# names the task class (`experiment.task.build_task`), which the data group already decides.
NON_SEMANTIC_KEYS = {"run", "hydra", "logger", "paths", "callbacks", "adapter"}


# Where a run's data lies: left out of the hash of a run whose data identity is known (what the data is).
DATA_PATH_KEYS = {"raw_dir", "work_dir", "data_bin", "data_dir", "cache_dir", "train", "validation", "test",
                  "trainpref", "validpref", "testpref"}


def without_target(node: Any) -> Any:
    """A node without its ``_target_``: the class Hydra builds it with (``trainer``: Lightning's Trainer) is code,
    not a setting of the result, and configs made before the key existed keep their hash."""
    if isinstance(node, Mapping) and "_target_" in node:
        return {k: v for k, v in node.items() if k != "_target_"}
    return node


# Pure labels: names that title a run, a table row or a W&B tag and pick nothing that is computed (the settings
# they name sit beside them: ``shapeshift.layers``/``scheme``/``rank``, ``arch.overrides``). Left out of the hash,
# so renaming a label never re-runs a finished job. Names that pick behaviour stay in (``arch.name``: the fairseq
# architecture; ``data.name``: the slice of the sample, the GLUE task).
DISPLAY_NAMES = {"shapeshift": {"name", "layers_name", "scheme_name"}, "arch": {"label"}, "data": {"name_in_tables"},
                 "scale": {"name", "suffix"}}

# Config values that name another run's folder (a distillation teacher, the dense run a projection starts from),
# as ``(node, key)``. A run folder is ``<run.outputs>/<group>/<name>``: the hash covers the part below the outputs
# folder, so the same job names the same run wherever ``run.outputs`` points.
RUN_REFERENCES = (("distill", "teacher"), ("shapeshift", "init_from"))
OUTPUTS_MARK = "<run.outputs>"  # what stands for the outputs folder in a reference, in the hash only


def without_labels(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` without its display names (`DISPLAY_NAMES`); a node that held nothing else is left out."""
    out = dict(config)
    for node, keys in DISPLAY_NAMES.items():
        if isinstance(out.get(node), Mapping):
            out[node] = {k: v for k, v in out[node].items() if k not in keys}
            if not out[node]:
                del out[node]
    return out


def _outputs_roots(config: Mapping[str, Any]) -> list[str]:
    """The outputs folder as the config names it: ``run.outputs`` and its resolved form ``paths.output_dir``."""
    roots = [(config.get(node) or {}).get(key) for node, key in (("run", "outputs"), ("paths", "output_dir"))]
    return [os.path.normpath(str(root)) for root in roots if root]


def run_reference(value: Any, config: Mapping[str, Any]) -> Any:
    """A reference to another run's folder as the hash sees it: below the outputs folder, ``<run.outputs>/<group>/
    <name>``; a path elsewhere (or not a path) as given."""
    if not isinstance(value, str):
        return value
    path = os.path.normpath(value)
    for root in _outputs_roots(config):
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return OUTPUTS_MARK + path[len(root.rstrip("/")):]
    return value


UNSET = "???"  # a field nothing set, in a plain container (`OmegaConf.to_container`)
SETTINGS_NODES = ("optim", "ckpt", "batching", "eval")  # the nodes typed by a schema (`experiment.settings`)


def without_unset(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` without the settings nothing set: a schema (`experiment.settings`) declares every field of its
    node, and a config that sets fewer must write and hash as it did before the schema existed."""
    return {k: {kk: vv for kk, vv in v.items() if vv != UNSET} if k in SETTINGS_NODES and isinstance(v, Mapping)
            else v for k, v in config.items()}


class _NoData:
    """The data identity of a config that names no task (a benchmark's, an analysis'): its data node, if any, is
    hashed as written."""

    def __repr__(self) -> str:
        return "NO_DATA"


NO_DATA: Any = _NoData()


def identity_config(config: Mapping[str, Any], data_content: str | None = NO_DATA) -> dict[str, Any]:
    """What the config hash covers: the result-defining settings (`semantic_config`) without display names
    (`without_labels`), with references to other runs' folders taken below the outputs folder (`run_reference`)."""
    out = without_labels(semantic_config(config, data_content))
    for node, key in RUN_REFERENCES:
        if isinstance(out.get(node), Mapping) and key in out[node]:
            out[node] = {**out[node], key: run_reference(out[node][key], config)}
    return out


def semantic_config(config: Mapping[str, Any], data_content: str | None = NO_DATA) -> dict[str, Any]:
    """The result-defining part of a resolved config, as written: what seed replicas must share and what the hash
    covers (through `identity_config`, which also drops display names and takes run references below the outputs
    folder).

    ``distill`` without kinds (``distill=none``) is left out, so that every record made before distillation
    existed keeps its hash. Settings only one task reads come with that task's config (``conf/adapter``), so
    another task's config has none to leave out.

    ``data_content``: the identity of a task run's data (`experiment.data_identity`, kept beside the config: the
    record's ``data_content``, a run folder's `run_folder.DATA_FILE`; None when its inputs are not here). It stands
    in for the data's folders and files (`DATA_PATH_KEYS`), as ``data.content``: the same data elsewhere is the same
    experiment."""
    out = {k: without_target(v) for k, v in without_unset(config).items() if k not in NON_SEMANTIC_KEYS}
    if not (out.get("distill") or {}).get("kinds"):  # distill=none: hashed as before the distill group existed
        out.pop("distill", None)
    data = out.get("data")
    if isinstance(data, Mapping) and data_content is not NO_DATA:
        out["data"] = {**{k: v for k, v in data.items() if k not in DATA_PATH_KEYS}, "content": data_content}
    return out


def config_hash(config: Mapping[str, Any], data_content: str | None = NO_DATA) -> str:
    """Stable short hash of the result-defining part of a resolved config and its data's identity
    (`identity_config`)."""
    blob = json.dumps(identity_config(config, data_content), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks (checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit(repo: Path | None = None) -> str | None:
    """HEAD commit of the repository (with ``-dirty`` when the tree has changes), None outside git."""
    try:
        cwd = str(repo or repo_root())
    except FileNotFoundError:
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def versions(packages: Iterable[str] = ("torch", "lightning", "hydra-core", "ve-fairseq", "sacrebleu", "wandb",
                                         "transformers", "datasets", "numpy")) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_model() -> str | None:
    """The processor's name (Linux ``/proc/cpuinfo``; else what `platform` knows, or None)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine() -> dict[str, Any]:
    """Where the run ran. The CPU's model and the vector instructions torch's kernels use (``cpu_capability``)
    are here because they change float rounding: one commit, data and seed on another host can train to other
    losses, and these two fields tell that apart from a code change."""
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "cpus": os.cpu_count(), "cpu_model": cpu_model(),
                            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def now() -> str:
    """The local time with its UTC offset, to the millisecond: records of parallel jobs that start and end within
    one second still order correctly."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def monitored_metric(record: Mapping[str, Any]) -> str | None:
    """The validation metric a run's early stopping and checkpointing watched: ``training.monitor``, or for records
    written before it was stored, the config's ``ckpt.monitor``."""
    training = record.get("training") or {}
    return training.get("monitor") or record["config"].get("ckpt", {}).get("monitor")


def record_data(record: Mapping[str, Any]) -> str | None:
    """The data identity a record was hashed with (``data_content``); `NO_DATA` for a run of no task."""
    return record.get("data_content", NO_DATA)


def record_settings(record: Mapping[str, Any]) -> dict[str, Any]:
    """`semantic_config` of a record: its config with the data identity it was hashed with (`record_data`)."""
    return semantic_config(record["config"], record_data(record))


def new_record(config: Mapping[str, Any], kind: str, data_content: str | None = NO_DATA) -> dict[str, Any]:
    """The common header of every record (``data_content``: a task run's data identity, `semantic_config`); the
    caller adds params, metrics and timings."""
    return {
        "kind": kind,
        "config_hash": config_hash(config, data_content),
        "config": dict(config),
        **({} if data_content is NO_DATA else {"data_content": data_content}),
        "started_at": now(),
        "git_commit": git_commit(),
        "versions": versions(),
        "machine": machine(),
        "status": "running",
    }


def map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """``value`` with ``fn`` applied to every string in it, through mappings, lists and tuples (as lists)."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, Mapping):
        return {k: map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [map_strings(v, fn) for v in value]
    return value


def portable_paths(value: Any, root: Path) -> Any:
    """``value`` with every string that is an absolute path inside ``root`` made relative to it (recursively):
    committed records then name run outputs the same way on every machine."""
    prefix = str(root).rstrip("/") + "/"
    return map_strings(value, lambda s: s[len(prefix):] if s.startswith(prefix) else s)


def portable_config(config: Any, root: Path) -> Any:
    """``config`` as resolved, except that the parts outside the hash (`NON_SEMANTIC_KEYS`: run folders,
    ``paths.root_dir``, ...) and the references to other runs' folders (`RUN_REFERENCES`, hashed relative to
    ``run.outputs``, which is made relative with them) name paths inside ``root`` relative to it (``root`` itself
    as ``.``)."""
    if not isinstance(config, Mapping):
        return config
    out = dict(config)
    for key in NON_SEMANTIC_KEYS & out.keys():
        out[key] = portable_paths(out[key], root)
    for node, key in RUN_REFERENCES:
        if isinstance(out.get(node), Mapping) and key in out[node]:
            out[node] = {**out[node], key: portable_paths(out[node][key], root)}
    if isinstance(out.get("paths"), Mapping):  # the project folder itself, when it is the working directory
        out["paths"] = {k: "." if v == str(root).rstrip("/") else v for k, v in out["paths"].items()}
    return out


def portable_record(record: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """``record`` with its paths inside ``root`` made relative (`portable_paths`); of the config only the parts
    outside the hash (`portable_config`), the rest kept as resolved."""
    return {k: portable_config(v, root) if k == "config" else portable_paths(v, root) for k, v in record.items()}


def write_record(record: Mapping[str, Any], path: Path) -> Path:
    """Write atomically (a crash never leaves half a record behind). Paths inside the working directory (run
    folders, checkpoints, translations), else inside the project folder (a run started elsewhere), are written
    relative to it; the config is written as resolved, but for the parts outside the hash (`portable_config`)."""
    body = portable_record(record, Path.cwd())
    try:
        body = portable_record(body, repo_root())
    except FileNotFoundError:  # an installed package run outside any checkout: nothing to be relative to
        pass
    return atomic.write_text(path, json.dumps(body, indent=1, sort_keys=True, default=str))


def finish_record(record: dict[str, Any], path: Path) -> Path:
    """Mark a run's record "done" (what makes sweeps skip it and tables use it) and write it."""
    record["status"] = "done"
    record["finished_at"] = now()
    return write_record(record, path)


def fail_record(record: dict[str, Any], path: Path, err: BaseException) -> Path:
    """Mark a run whose data or model could not be built "failed", with the error: a "running" record would
    read as an interrupted job to be resumed, and nothing was trained."""
    record["status"] = "failed"
    record["error"] = f"{type(err).__name__}: {err}"
    record["finished_at"] = now()
    return write_record(record, path)


STATUSES = ("done", "running", "failed", "debug")  # what `new_record`, `finish_record`, `fail_record` write
UNIT_METRICS = ("accuracy", "macro_f1", "f1", "majority_rate")  # fractions in [0, 1]


def _translation_metrics_problem(metrics: Mapping[str, Any]) -> str | None:
    test = metrics.get("test")
    if not isinstance(test, Mapping) or not _is_number(test.get("tokenized_bleu")):
        return "metrics.test.tokenized_bleu must be a number (the test BLEU of the run)"
    return None


def _glue_metrics_problem(metrics: Mapping[str, Any]) -> str | None:
    if not isinstance(metrics.get("main_metric"), str):
        return "metrics.main_metric must be the name of the task's main metric"
    for split in ("validation", "test"):
        if not isinstance(metrics.get(split, {}), Mapping):
            return f"metrics.{split} must be a mapping of scores"
    return None


# records whose metrics a table turns into rows, each with the check of what its table reads from them
SCORED_KINDS: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "translation": _translation_metrics_problem, "glue": _glue_metrics_problem}


def _kind_problem(record: Mapping[str, Any]) -> str | None:
    """What a finished translation or GLUE record lacks that its table reads (None: nothing)."""
    for key in ("metrics", "params", "timings"):
        if not isinstance(record.get(key), Mapping):
            return f"has no {key} (a finished {record['kind']} run records them)"
    if not isinstance(record["params"].get("total"), int) or isinstance(record["params"].get("total"), bool):
        return f"params.total must be an integer, got {record['params'].get('total')!r}"
    return SCORED_KINDS[record["kind"]](record["metrics"])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(node: Any, where: str) -> Iterable[tuple[str, float]]:
    """Every number under ``node`` with its dotted path."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _numbers(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _numbers(value, f"{where}[{i}]")
    elif _is_number(node):
        yield where, node


def _value_problem(where: str, value: float) -> str | None:
    """A number a table would print that cannot be right: NaN or infinite, a BLEU outside [0, 100], an
    accuracy (or F1, majority rate) outside [0, 1]."""
    if not math.isfinite(value):
        return f"{where} is {value}, not a finite number"
    leaf = where.rsplit(".", 1)[-1]
    if leaf.endswith("bleu") and not 0 <= value <= 100:
        return f"{where} is {value}: a BLEU score lies in [0, 100]"
    if (leaf in UNIT_METRICS or ".majority_rate." in where) and not 0 <= value <= 1:
        return f"{where} is {value}: an accuracy (F1, majority rate) lies in [0, 1]"
    return None


def record_problem(record: Any) -> str | None:
    """Why ``record`` (a parsed record file) cannot be used by a table, in words; None when it can.

    Checks the header every record has (status, kind, config hash, config as a mapping), and for a finished
    translation or GLUE record what its table reads (metrics, params, timings), with every number under them
    finite, BLEU in [0, 100] and accuracies in [0, 1]. Fields it does not know are left alone."""
    if not isinstance(record, Mapping):
        return f"is a JSON {type(record).__name__}, not an object"
    if record.get("status") not in STATUSES:
        return f"status is {record.get('status')!r}, expected one of {', '.join(STATUSES)}"
    for key, kind in (("kind", str), ("config_hash", str), ("config", Mapping)):
        if not isinstance(record.get(key), kind):
            return f"{key} must be a {'mapping' if kind is Mapping else 'string'}, got {record.get(key)!r:.80}"
    if record["status"] != "done" or record["kind"] not in SCORED_KINDS:
        return None
    problem = _kind_problem(record)
    if problem:
        return problem
    for node in ("metrics", "params", "timings"):
        for where, value in _numbers(record[node], node):
            if problem := _value_problem(where, value):
                return problem
    return None


def load_records(root: Path, pattern: str = "**/*.json", partial: bool = False) -> list[dict[str, Any]]:
    """Every finished record under ``root``, sorted by path (deterministic order for tables).

    Each record is checked first (`record_problem`): one a table cannot use is a ValueError naming its file,
    before any table output is written. Records that are not "done" (running, failed, debug) are an error
    listing them by name; ``partial=True`` (a table explicitly built from what has finished) only warns."""
    records, unfinished = [], []
    for path in sorted(Path(root).glob(pattern)):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"run record {path} is not valid JSON: {err}") from err
        if problem := record_problem(rec):
            raise ValueError(f"run record {path}: {problem}")
        if rec["status"] != "done":
            unfinished.append(f"{path} ({rec['status']})")
            continue
        rec["_path"] = str(path)
        records.append(rec)
    if unfinished:
        message = f"{len(unfinished)} record(s) under {root} are not done: " + ", ".join(unfinished)
        if not partial:
            raise ValueError(f"{message}; finish them (rerun the command that wrote them) or move them out of the "
                             "records folder before building a table")
        log.warning("%s (left out of the table)", message)
    return records


def claim_checkpoint_dir(ckpt_dir: Path, config_hash: str) -> Path:
    """The run's checkpoint folder, marked with its config hash so that only the same config resumes from it.

    The output folder is named after ``run.name``, which does not change with e.g. the learning rate: a
    folder left there by another config (or by an unmarked older run) is moved aside to
    ``checkpoints.<its hash>`` (kept, not deleted) instead of being resumed.
    """
    mark = ckpt_dir / "CONFIG_HASH"
    owner = mark.read_text().strip() if mark.is_file() else "unmarked"
    if ckpt_dir.is_dir() and owner != config_hash and any(ckpt_dir.iterdir()):
        aside, n = ckpt_dir.with_name(f"{ckpt_dir.name}.{owner}"), 1
        while aside.exists():
            aside, n = ckpt_dir.with_name(f"{ckpt_dir.name}.{owner}.{n}"), n + 1
        ckpt_dir.rename(aside)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(mark, config_hash + "\n")
    return ckpt_dir
