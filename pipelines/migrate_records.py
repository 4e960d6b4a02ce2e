"""Rename a policy in existing run records (e.g. ``paper`` -> ``r1-emb16``), re-hash them and rename their files;
or make the paths in existing records relative to the folder the runs were made in.

    python pipelines/migrate_records.py results/records results/demo/records --rename paper=r1-emb16
    python pipelines/migrate_records.py results/records --portable-paths /work/main
    python pipelines/migrate_records.py results/records --rehash   # after a change of what the hash covers
    python pipelines/migrate_records.py results/records --add-curves   # records made before training.curve

The policy's name is part of the config hash, so a renamed policy would otherwise re-run every finished job.
Each record's ``shapeshift.name`` and ``run.name`` are rewritten, its ``config_hash`` recomputed and the file
renamed to ``<run.name>-<hash>.json``; ``migrated_from`` keeps the old hash. A target file that exists with other
content is an error (nothing is overwritten). Rebuild the tables afterwards (``make tables``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shapeshifter.app.records import config_hash, monitored_metric, portable_record, write_record
from shapeshifter.app.training import learning_curve
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


def _split_name(name: str, policy: str) -> list[str]:
    """``data-<policy>-s1`` -> ``["data", policy, "s1"]``; the policy name may itself contain dashes."""
    head, sep, tail = name.partition(f"-{policy}-")
    return [head, policy, tail] if sep else [name]


def migrate(roots: list[Path], renames: dict[str, str]) -> list[tuple[Path, Path]]:
    moved = []
    for root in roots:
        for path in sorted(root.rglob("*.json")):
            record = json.loads(path.read_text())
            if not isinstance(record, dict) or "config" not in record:
                continue
            if not any(rename_policy(record, old, new) for old, new in renames.items()):
                continue
            target = path.with_name(f"{record['config']['run']['name']}-{record['config_hash']}.json")
            if target.exists() and json.loads(target.read_text()) != record:
                raise FileExistsError(f"{target} exists with other content; not overwriting it (from {path})")
            write_record(record, target)
            path.unlink()
            moved.append((path, target))
    return moved


def rehash(roots: list[Path]) -> list[tuple[Path, Path]]:
    """Recompute every record's ``config_hash`` from its config and rename the files whose hash changed."""
    moved = []
    for root in roots:
        for path in sorted(root.rglob("*.json")):
            record = json.loads(path.read_text())
            if not isinstance(record, dict) or "config" not in record or "config_hash" not in record:
                continue
            digest = config_hash(record["config"])
            if digest == record["config_hash"]:
                continue
            record.setdefault("migrated_from", []).append(record["config_hash"])
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
    for root in roots:
        for path in sorted(root.rglob("*.json")):
            record = json.loads(path.read_text())
            if not isinstance(record, dict) or "config" not in record:
                continue
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
    for root in roots:
        for path in sorted(root.rglob("*.json")):
            record = json.loads(path.read_text())
            training = record.get("training") if isinstance(record, dict) else None
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
    parser.add_argument("--add-curves", action="store_true",
                        help="add training.curve from the run folders' CSV logs where a record lacks it")
    args = parser.parse_args(argv)
    if not (args.rename or args.portable_paths or args.rehash or args.add_curves):
        parser.error("nothing to do: give --rename OLD=NEW, --rehash, --portable-paths RUN_ROOT and/or --add-curves")
    renames = dict(item.split("=", 1) for item in args.rename)
    for old, new in migrate(args.roots, renames) if renames else []:
        print(f"{old} -> {new.name}")
    for old, new in rehash(args.roots) if args.rehash else []:
        print(f"{old} -> {new.name}")
    for path in make_portable(args.roots, args.portable_paths):
        print(f"{path}: paths made relative")
    for path in add_curves(args.roots, repo_root()) if args.add_curves else []:
        print(f"{path}: learning curve added")
    return 0


if __name__ == "__main__":
    sys.exit(main())
