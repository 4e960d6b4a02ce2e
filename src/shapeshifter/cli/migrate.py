"""Rename a policy in existing run records (e.g. ``paper`` -> ``r1-emb16``), re-hash them and rename their files;
or make the paths in existing records relative to the folder the runs were made in.

    shapeshifter-migrate results/records results/demo/records --rename paper=r1-emb16
    shapeshifter-migrate results/records --portable-paths /work/main
    shapeshifter-migrate results/records --rehash   # after a change of what the hash covers
    shapeshifter-migrate results/records --add-curves   # records made before training.curve
    shapeshifter-migrate results/records --data-content --rehash --run-folders outputs

``--data-content`` gives records made before ``data.content`` (the data's identity, `translation.data.identity`)
the content of the data their config names, read here; ``--rehash`` then names them by it. With ``--rehash``,
``--run-folders`` moves each run folder ``<job>/<old hash>/`` of a re-hashed record to its new hash (the
checkpoints' ``CONFIG_HASH`` mark and the job's ``.hydra/config.yaml`` updated), so unfinished runs resume: pass
the records folders that hold the runs' records, "running" ones included. A re-hashed record's paths into its
old hash folder are rewritten to the new one.

The policy's name is part of the config hash, so a renamed policy would otherwise re-run every finished job.
Each record's ``shapeshift.name`` and ``run.name`` are rewritten, its ``config_hash`` recomputed and the file
renamed to ``<run.name>-<hash>.json``; ``migrated_from`` keeps the old hash. A target file that exists with other
content is an error (nothing is overwritten). Rebuild the tables afterwards (``make tables``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from omegaconf import OmegaConf

from shapeshifter.experiment.records import config_hash, map_strings, monitored_metric, portable_record, write_record
from shapeshifter.experiment.run_folder import CONFIG_FILE
from shapeshifter.experiment.runner import save_job_config, stamp_data_content
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
    record.setdefault("migrated_from", []).append(record["config_hash"])
    record["config_hash"] = config_hash(config)
    return True


def _records(roots: list[Path]) -> Iterator[tuple[Path, dict]]:
    """``(path, record)`` for every run record (a JSON object with a ``config``) under ``roots``, in path order."""
    for root in roots:
        for path in sorted(root.rglob("*.json")):
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


def _replacing(old: str, new: str) -> Callable[[str], str]:
    """A string map for `map_strings`: paths into a run's old hash folder name the new one."""
    return lambda text: text.replace(old, new)


def add_data_content(roots: list[Path]) -> list[Path]:
    """Give translation and GLUE records without ``data.content`` the content of the data their config names
    (relative paths read from the project folder); the changed files. Data that is not here is an error naming
    the record: a record must not be re-hashed to a guess."""
    changed = []
    for path, record in _records(roots):
        data = record["config"].get("data")
        if not isinstance(data, dict) or data.get("kind") not in ("translation", "glue") or "content" in data:
            continue
        cfg = OmegaConf.create(record["config"])
        try:
            stamp_data_content(cfg, fetch=True)
        except (OSError, ValueError) as err:
            raise SystemExit(f"{path}: cannot read its data ({err})") from None
        data["content"] = cfg.data.content
        write_record(record, path)
        changed.append(path)
    return changed


def move_run_folders(roots: list[Path], renamed: dict[str, str]) -> list[tuple[Path, Path]]:
    """Move every run folder ``<job>/<old hash>/`` under ``roots`` whose hash ``renamed`` maps to a new one (the
    records' re-hash), with its checkpoints' ``CONFIG_HASH`` mark, and give the job's composed config
    (``.hydra/config.yaml``) its data's content where it lacks it, so the folder names its hash again and an
    unfinished run resumes; the moves."""
    moved = []
    for root in roots:
        for folder in sorted(p for p in root.glob("**/*") if p.is_dir() and p.name in renamed):
            job, new = folder.parent, renamed[folder.name]
            if (job / new).exists():
                raise FileExistsError(f"{job / new} exists; not moving {folder} onto it")
            folder.rename(job / new)
            mark = job / new / "checkpoints" / "CONFIG_HASH"
            if mark.is_file():
                mark.write_text(new + "\n")
            config_file = job / CONFIG_FILE
            if config_file.is_file():
                cfg = OmegaConf.load(config_file)
                stamp_data_content(cfg, fetch=True)
                save_job_config(cfg, job)
            moved.append((folder, job / new))
    return moved


def rehash(roots: list[Path]) -> list[tuple[Path, Path]]:
    """Recompute every record's ``config_hash`` from its config and rename the files whose hash changed."""
    moved = []
    for path, record in _records(roots):
        old = record.get("config_hash")
        digest = config_hash(record["config"])
        if old is None or digest == old:
            continue
        config = record.pop("config")
        record = {"config": config, **map_strings(record, _replacing(f"/{old}/", f"/{digest}/"))}
        record.setdefault("migrated_from", []).append(old)
        record["config_hash"] = digest
        target = path.with_name(f"{record['config']['run']['name']}-{digest}.json")
        if target.exists():
            raise FileExistsError(f"{target} exists; not overwriting it (from {path})")
        write_record(record, target)
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
                        help="add data.content (the data's identity) where a record lacks it; then --rehash")
    parser.add_argument("--run-folders", action="append", default=[], type=Path, metavar="OUTPUTS",
                        help="with --rehash: move the run folders of re-hashed records to their new hash (repeatable)")
    parser.add_argument("--add-curves", action="store_true",
                        help="add training.curve from the run folders' CSV logs where a record lacks it")
    args = parser.parse_args(argv)
    if not (args.rename or args.portable_paths or args.rehash or args.add_curves or args.data_content
            or args.run_folders):
        parser.error("nothing to do: give --rename OLD=NEW, --rehash, --portable-paths RUN_ROOT, --add-curves, "
                     "--data-content and/or --run-folders OUTPUTS")
    renames = dict(item.split("=", 1) for item in args.rename)
    for old, new in migrate(args.roots, renames) if renames else []:
        print(f"{old} -> {new.name}")
    for path in make_portable(args.roots, args.portable_paths):
        print(f"{path}: paths made relative")
    for path in add_curves(args.roots, repo_root()) if args.add_curves else []:  # before the run folders move
        print(f"{path}: learning curve added")
    for path in add_data_content(args.roots) if args.data_content else []:
        print(f"{path}: data content added")
    renamed = {}
    for old, new in rehash(args.roots) if args.rehash else []:
        record = json.loads(new.read_text())
        renamed[record["migrated_from"][-1]] = record["config_hash"]
        print(f"{old} -> {new.name}")
    for old, new in move_run_folders(args.run_folders, renamed):
        print(f"{old} -> {new.name}")
    return 0
