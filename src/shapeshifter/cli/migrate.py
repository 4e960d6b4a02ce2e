"""Rename a policy in existing run records (e.g. ``paper`` -> ``r1-emb16``), re-hash them and rename their files;
or make the paths in existing records relative to the folder the runs were made in.

    shapeshifter-migrate results/records results/demo/records --rename paper=r1-emb16
    shapeshifter-migrate results/records --portable-paths /work/main
    shapeshifter-migrate results/records --rehash   # after a change of what the hash covers
    shapeshifter-migrate results/records --add-curves   # records made before training.curve
    shapeshifter-migrate results/records --data-content --rehash --run-folders outputs
    shapeshifter-migrate results/records --data-identity --run-folders outputs
    shapeshifter-migrate results/records --task-settings --run-folders outputs

``--rehash`` recomputes every record's hash with the current rule (`records.config_hash`) and renames the files
whose hash moved; in every record under the given folders, the hashes of re-hashed ones are rewritten too (paths
into a run's hash folder, a distillation teacher's ``config_hash`` and record file, the dense run a projection
or an analysis read), so pass every records folder that refers to another's runs in one command. ``--data-content``
gives records made before the data's identity existed (`experiment.data_identity`) the identity of the data their
config names, read here; ``--rehash`` then names them by it. With ``--rehash``, ``--run-folders`` moves each run
folder ``<job>/<old hash>/`` of a re-hashed record to its new hash and rewrites every checkpoints' ``CONFIG_HASH``
mark naming an old hash (the job's ``.hydra/data.json`` written where it lacks one), so unfinished runs resume:
pass the records folders that hold the runs' records, "running" ones included.

``--data-identity`` moves the data's identity out of the configs of records (``config.data.content`` becomes the
record's ``data_content``) and, with ``--run-folders``, of each job's ``.hydra/config.yaml`` (into its
``.hydra/data.json``), as runs write them since the config is no longer changed in flight: no hash moves.

``--task-settings`` removes from the configs of GLUE runs (records, and with ``--run-folders`` each job's
``.hydra/config.yaml``) the translation task's own settings (``conf/adapter/translation.yaml``: beam search,
batching, warmup, label smoothing, checkpoint choice), which every config held before they moved there and which
the hash already left out of GLUE runs: no hash moves.

A policy's name is a display name, outside the config hash, but it is part of ``run.name``, which names the record
file: with ``--rename`` each record's ``shapeshift.name`` and ``run.name`` are rewritten, its ``config_hash``
recomputed (``migrated_from`` keeps an old one that moved) and the file renamed to ``<run.name>-<hash>.json``. A
target file that exists with other content is an error (nothing is overwritten). Rebuild the tables afterwards
(``make tables``).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from shapeshifter.experiment.records import (
    config_hash,
    map_strings,
    monitored_metric,
    portable_record,
    record_data,
    write_record,
)
from shapeshifter.experiment.run_folder import CHECKPOINT_DIR, CONFIG_FILE, DATA_FILE, read_data_identity
from shapeshifter.experiment.runner import data_identity, save_job_config
from shapeshifter.experiment.training import learning_curve
from shapeshifter.paths import repo_root


def rename_policy(record: dict, old: str, new: str) -> bool:
    """Rename policy ``old`` to ``new`` in one record, in place; False when the record does not use it."""
    config = record["config"]
    if config.get("shapeshift", {}).get("name") != old:
        return False
    config["shapeshift"]["name"] = new
    run = config.get("run", {})
    run["name"] = "-".join(new if part == old else part for part in _split_name(run.get("name", ""), old))
    if (digest := config_hash(config, record_data(record))) != record["config_hash"]:
        record.setdefault("migrated_from", []).append(record["config_hash"])
        record["config_hash"] = digest
    return True


def _records(roots: list[Path]) -> Iterator[tuple[Path, dict]]:
    """``(path, record)`` for every run record (a JSON object with a ``config``) under ``roots`` (folders, searched
    recursively, or record files), in path order."""
    for root in roots:
        for path in [root] if root.is_file() else sorted(root.rglob("*.json")):
            record = json.loads(path.read_text())
            if isinstance(record, dict) and "config" in record:
                yield path, record


def _split_name(name: str, policy: str) -> list[str]:
    """``data-<policy>-s1`` -> ``["data", policy, "s1"]``; the policy name may itself contain dashes."""
    head, sep, tail = name.partition(f"-{policy}-")
    return [head, policy, tail] if sep else [name]


def migrate(roots: list[Path], renames: dict[str, str]) -> list[tuple[Path, Path]]:
    moved = []
    for path, record in _records(roots):
        if not any(rename_policy(record, old, new) for old, new in renames.items()):
            continue
        target = path.with_name(f"{record['config']['run']['name']}-{record['config_hash']}.json")
        if target.exists() and json.loads(target.read_text()) != record:
            raise FileExistsError(f"{target} exists with other content; not overwriting it (from {path})")
        write_record(record, target)
        path.unlink()
        moved.append((path, target))
    return moved


def hash_renames(roots: list[Path]) -> dict[str, str]:
    """``{old: new}`` for every record under ``roots`` whose config hashes to another value than its
    ``config_hash`` (after a change of what the hash covers), and for every record migrated before from the hash
    it had then (the last of ``migrated_from``: records migrated in a checkout whose run folders and referring
    records elsewhere still name it). One old hash that would become two new ones (the same config written with
    different outputs folders) is an error naming both records."""
    renamed: dict[str, str] = {}
    where: dict[str, Path] = {}
    for path, record in _records(roots):
        old, new = record.get("config_hash"), config_hash(record["config"], record_data(record))
        if old == new and record.get("migrated_from"):
            old = record["migrated_from"][-1]
        if old is None or old == new:
            continue
        if renamed.setdefault(old, new) != new:
            raise ValueError(f"{path} and {where[old]} share config hash {old} but hash to {new} and "
                             f"{renamed[old]} now: migrate them separately")
        where.setdefault(old, path)
    return renamed


def _replacing(renamed: dict[str, str]) -> Callable[[str], str]:
    """A string map for `map_strings`: every old hash in ``renamed`` that stands on its own (a run folder
    ``/<hash>/``, a record file ``-<hash>.json``, a teacher's ``config_hash``; not part of a longer hex digest)
    becomes its new one."""
    if not renamed:
        return lambda text: text
    pattern = re.compile(r"(?<![0-9a-f])(" + "|".join(map(re.escape, renamed)) + r")(?![0-9a-f])")
    return lambda text: pattern.sub(lambda match: renamed[match.group(1)], text)


def add_data_content(roots: list[Path]) -> list[Path]:
    """Give translation and GLUE records without a data identity the identity of the data their config names
    (relative paths read from the project folder); the changed files. Data that is not here is an error naming
    the record: a record must not be re-hashed to a guess."""
    changed = []
    for path, record in _records(roots):
        data = record["config"].get("data")
        if (not isinstance(data, dict) or data.get("kind") not in ("translation", "glue") or "content" in data
                or "data_content" in record):
            continue
        try:
            record["data_content"] = data_identity(OmegaConf.create(record["config"]), fetch=True)
        except (OSError, ValueError) as err:
            raise SystemExit(f"{path}: cannot read its data ({err})") from None
        write_record(record, path)
        changed.append(path)
    return changed


def separate_data_identity(roots: list[Path], run_roots: list[Path]) -> list[Path]:
    """Move ``config.data.content`` of every record under ``roots`` to the record's ``data_content``, and of every
    job's composed config under ``run_roots`` to its `DATA_FILE`; the changed files."""
    changed = []
    for path, record in _records(roots):
        data = record["config"].get("data")
        if isinstance(data, dict) and "content" in data:
            record["data_content"] = data.pop("content")
            write_record(record, path)
            changed.append(path)
    for root in run_roots:
        for path in sorted(root.glob(f"**/{CONFIG_FILE}")):
            job, cfg = path.parent.parent, OmegaConf.load(path)
            if "content" in (cfg.get("data") or {}):
                save_job_config(cfg, job, read_data_identity(job, cfg))  # taken out of the config
                changed.append(job / DATA_FILE)
    return changed


def translation_settings() -> dict[str, Any]:
    """The settings only the translation task has, ``{node: keys}``; ``None`` for a node that is all its own (absent
    from ``conf/train.yaml``)."""
    conf = repo_root() / "conf"
    own = OmegaConf.to_container(OmegaConf.load(conf / "adapter" / "translation.yaml"))
    shared = OmegaConf.to_container(OmegaConf.load(conf / "train.yaml"))
    return {node: sorted(keys) if node in shared else None for node, keys in own.items()
            if node not in ("adapter", "defaults")}


def without_translation_settings(config: dict[str, Any], settings: dict[str, Any]) -> bool:
    """Remove the translation task's settings from the config of a run of another task, in place; whether any was
    there."""
    if (config.get("data") or {}).get("kind") in (None, "translation"):
        return False
    found = False
    for node, keys in settings.items():
        if keys is None:
            found |= config.pop(node, None) is not None
        elif isinstance(config.get(node), dict):
            present = [key for key in keys if key in config[node]]
            for key in present:
                del config[node][key]
            found |= bool(present)
    return found


def drop_task_settings(roots: list[Path], run_roots: list[Path]) -> list[Path]:
    """`without_translation_settings` on every record under ``roots`` and every job's composed config under
    ``run_roots``; the changed files."""
    settings, changed = translation_settings(), []
    for path, record in _records(roots):
        if without_translation_settings(record["config"], settings):
            write_record(record, path)
            changed.append(path)
    for root in run_roots:
        for path in sorted(root.glob(f"**/{CONFIG_FILE}")):
            config = OmegaConf.to_container(OmegaConf.load(path))
            if isinstance(config, dict) and without_translation_settings(config, settings):
                OmegaConf.save(OmegaConf.create(config), path)
                changed.append(path)
    return changed


def move_run_folders(roots: list[Path], renamed: dict[str, str]) -> list[tuple[Path, Path]]:
    """Move every run folder ``<job>/<old hash>/`` under ``roots`` whose hash ``renamed`` maps to a new one (the
    records' re-hash), rewrite every checkpoints' ``CONFIG_HASH`` mark that names an old hash (the older layout's
    ``<job>/checkpoints/`` too), and give the job its data's identity file (``.hydra/data.json``) where it lacks
    one, so the folder names its hash again and an unfinished run resumes; the moves."""
    moved = []
    for root in roots:
        for folder in sorted(p for p in root.glob("**/*") if p.is_dir() and p.name in renamed):
            job, new = folder.parent, renamed[folder.name]
            if (job / new).exists():
                raise FileExistsError(f"{job / new} exists; not moving {folder} onto it")
            folder.rename(job / new)
            config_file = job / CONFIG_FILE
            if config_file.is_file() and not (job / DATA_FILE).is_file():
                cfg = OmegaConf.load(config_file)
                content = read_data_identity(job, cfg)  # a config that held it gives it up
                save_job_config(cfg, job, data_identity(cfg, fetch=True) if content is None else content)
            moved.append((folder, job / new))
        for mark in sorted(root.glob(f"**/{CHECKPOINT_DIR}*/CONFIG_HASH")):
            if (old := mark.read_text().strip()) in renamed:
                mark.write_text(renamed[old] + "\n")
    return moved


def rehash(roots: list[Path]) -> list[tuple[Path, Path]]:
    """Recompute every record's ``config_hash`` from its config (`hash_renames`) and rename the files whose hash
    changed; in every record, re-hashed or not, the hashes of re-hashed records (its own run folder, a teacher's
    record and hash, the dense run a projection or an analysis started from) name the new ones. ``migrated_from``
    keeps the old hash. The changes, ``(old path, new path)``."""
    renamed = hash_renames(roots)
    replace = _replacing(renamed)
    moved = []
    for path, record in _records(roots):
        old = record.get("config_hash")
        new = renamed.get(old, old)
        body = {k: v if k in ("config", "config_hash", "migrated_from") else map_strings(v, replace)
                for k, v in record.items()}
        if body == record and new == old:
            continue
        target = path
        if new != old:
            body["migrated_from"] = [*record.get("migrated_from", []), old]
            body["config_hash"] = new
            run_name = (record["config"].get("run") or {}).get("name")  # <run.name>-<hash>.json, as runs write it
            target = path.with_name(f"{run_name or path.name.removesuffix(f'-{old}.json')}-{new}.json")
            if target.exists():
                raise FileExistsError(f"{target} exists; not overwriting it (from {path})")
        write_record(body, target)
        if target != path:
            path.unlink()
        moved.append((path, target))
    return moved


def make_portable(roots: list[Path], run_roots: list[Path]) -> list[Path]:
    """Rewrite absolute paths under any of ``run_roots`` (outside ``config``) as relative ones; the changed files."""
    changed = []
    for path, record in _records(roots):
        new = dict(record)
        for run_root in run_roots:
            new = portable_record(new, run_root)
        if new != record:
            write_record(new, path)
            changed.append(path)
    return changed


def add_curves(roots: list[Path], base: Path) -> list[Path]:
    """Give finished records without ``training.curve`` the one their run folder's CSV log holds (the folder
    above the evaluated checkpoint's ``checkpoints/``, relative to ``base``); the changed files."""
    changed = []
    for path, record in _records(roots):
        training = record.get("training")
        if not training or "curve" in training or not record.get("evaluated_weights"):
            continue
        run_dir = base / Path(record["evaluated_weights"]).parent.parent
        curve = learning_curve(run_dir / "csv" / "metrics.csv", monitored_metric(record), training.get("epochs"))
        if curve:
            training["curve"] = curve
            write_record(record, path)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="+", type=Path, help="records folders (searched recursively)")
    parser.add_argument("--rename", action="append", default=[], metavar="OLD=NEW")
    parser.add_argument("--rehash", action="store_true", help="recompute config hashes, rename changed files")
    parser.add_argument("--portable-paths", action="append", default=[], type=Path, metavar="RUN_ROOT",
                        help="the folder the runs were made in (repeatable)")
    parser.add_argument("--data-content", action="store_true",
                        help="add the data's identity where a record lacks it; then --rehash")
    parser.add_argument("--data-identity", action="store_true",
                        help="move config.data.content to the record's data_content (and, with --run-folders, "
                             "to each job's .hydra/data.json)")
    parser.add_argument("--run-folders", action="append", default=[], type=Path, metavar="OUTPUTS",
                        help="with --rehash: move the run folders of re-hashed records to their new hash (repeatable)")
    parser.add_argument("--task-settings", action="store_true",
                        help="remove the translation task's own settings from GLUE runs' configs (records and, with "
                             "--run-folders, the jobs' .hydra/config.yaml)")
    parser.add_argument("--add-curves", action="store_true",
                        help="add training.curve from the run folders' CSV logs where a record lacks it")
    args = parser.parse_args(argv)
    if not (args.rename or args.portable_paths or args.rehash or args.add_curves or args.data_content
            or args.data_identity or args.run_folders or args.task_settings):
        parser.error("nothing to do: give --rename OLD=NEW, --rehash, --portable-paths RUN_ROOT, --add-curves, "
                     "--data-content, --data-identity, --task-settings and/or --run-folders OUTPUTS")
    renames = dict(item.split("=", 1) for item in args.rename)
    for old, new in migrate(args.roots, renames) if renames else []:
        print(f"{old} -> {new.name}")
    for path in make_portable(args.roots, args.portable_paths):
        print(f"{path}: paths made relative")
    for path in add_curves(args.roots, repo_root()) if args.add_curves else []:  # before the run folders move
        print(f"{path}: learning curve added")
    for path in drop_task_settings(args.roots, args.run_folders) if args.task_settings else []:
        print(f"{path}: translation settings removed")
    for path in separate_data_identity(args.roots, args.run_folders) if args.data_identity else []:
        print(f"{path}: data identity beside the config")
    for path in add_data_content(args.roots) if args.data_content else []:
        print(f"{path}: data content added")
    renamed = hash_renames(args.roots) if args.rehash else {}
    for old, new in rehash(args.roots) if args.rehash else []:
        print(f"{old} -> {new.name}" if new != old else f"{old}: hashes of re-hashed records updated")
    for old, new in move_run_folders(args.run_folders, renamed):
        print(f"{old} -> {new.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
