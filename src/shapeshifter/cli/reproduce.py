"""Reproduce one of the paper's tables: launch the runs it still lacks, then rebuild it from the records.

    python pipelines/reproduce.py 1 --scale smoke          # Table 1, time overhead (pipelines/bench_model.py)
    python pipelines/reproduce.py 2 --scale smoke          # Table 2, IWSLT'14 quality vs size
    python pipelines/reproduce.py embedding --scale smoke  # embedding compression, order x rank
    python pipelines/reproduce.py ablation --scale smoke   # rank x scheme x layers
    python pipelines/reproduce.py 2_wmt --scale full       # Table 2 on WMT En-Ro (needs the WMT data)
    python pipelines/reproduce.py glue --scale smoke       # GLUE: tasks x configs, from scratch and pretrained
    python pipelines/reproduce.py quality_glue --scale full   # SNLI sample at ~10x fewer parameters (CPU, hours)
    python pipelines/reproduce.py quality_snli --scale full   # the full SNLI subset, data=snli_full (CPU, many hours)
    python pipelines/reproduce.py tables                   # rebuild every table from existing records only
    python pipelines/reproduce.py tables --page README.md  # ... and copy them into the page's table blocks
    python pipelines/reproduce.py tables --from-wandb ENTITY/PROJECT --records results/wandb_records
                                                           # ... from the records kept in a W&B project

``--scale smoke``: tiny Transformer, a slice of the committed sample, 1 epoch on CPU (minutes per table; the
GLUE table uses the committed SNLI sample and a tiny local BERT); ``--scale full``: the paper's data and arch on
a GPU (``trainer=gpu``).

Every job runs through Hydra's multirun and the configured launcher: each experiment file's grid is one
``pipelines/train.py -m`` (its ``hydra.sweeper.params`` expanded by Hydra, ``range(...)`` included), after its
dense baseline; the jobs of an explicit-jobs table run one ``train.py -m`` each. Without a ``launcher=`` override
Hydra's basic launcher runs a multirun's jobs one after another in its process; ``launcher=local`` runs two
1-thread jobs at a time on this machine, ``launcher=slurm`` submits them to SLURM. Runs whose record is "done"
for the same config hash are skipped, an interrupted one resumes from its ``last.ckpt``, a failed one is retried;
a failed job does not stop the others (Hydra's launcher attempts every job of a multirun before it reports the
first failure, and the next command still runs). The outcome of every job is read from its record: the failures
are listed at the end and the exit status is 1. A job that reads another job's run folder (a distillation
teacher, the dense model a projection starts from) gets it even in a fresh checkout, which holds the records but
not the folders: that job, of the same table or of a table it names as its sources, is trained again first, its
record written under ``<outputs>/source-records``.

    python pipelines/reproduce.py 2 --scale smoke launcher=local
"""

from __future__ import annotations

import argparse
import functools
import logging
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from shapeshifter.experiment.ddp import die_with_parent
from shapeshifter.experiment.run_folder import find_run
from shapeshifter.experiment.runner import read_status, record_path
from shapeshifter.experiment.sweep import compose_cfg, experiment_jobs
from shapeshifter.experiment.task import build_task
from shapeshifter.experiment.wandb_records import fetch_records
from shapeshifter.paths import repo_root
from shapeshifter.reports.pages import sync_page
from shapeshifter.reports.registry import (
    CONF,
    REGISTRY,
    TableSpec,
    build_all,
    build_table,
    get_table,
)
from shapeshifter.threads import add_threads_argument

ROOT = repo_root()

log = logging.getLogger("shapeshifter")

# Every job process stops with the process that started it: `make` killed alone (its children are not signalled)
# stops reproduce.py (`main`), which stops its train.py / bench_model.py children, instead of leaving a sweep
# running that an immediate rerun would collide with.
child_call = functools.partial(subprocess.call, preexec_fn=functools.partial(die_with_parent, signal.SIGTERM))

# A single job as a multirun: the experiment file's own grid (hydra.sweeper.params) is not expanded around it.
ONE_JOB = "hydra.sweeper.params=null"
# Config keys naming another run's folder that a job reads, and where the records of the reruns that recreate such
# a folder go (`sources_to_rebuild`): beside the run folders, not among the committed records.
SOURCE_KEYS = ("distill.teacher", "shapeshift.init_from")
SOURCE_RECORDS = "${run.outputs}/source-records"


@dataclass
class Outcome:
    """What happened to one job of a table, as its record tells."""

    overrides: list[str]
    status: str  # "ran" | "skipped" | "failed"
    name: str | None = None
    record: str | None = None
    error: str | None = None
    seconds: float = 0.0


def prepare_smoke_inputs(jobs: list[list[str]]) -> None:
    """Make what smoke jobs read and the repo does not ship (each job's task knows: the sliced sample, the tiny
    BERT), once per distinct input."""
    seen: set[str] = set()
    for job in jobs:
        cfg = compose_cfg(CONF, job)
        inputs = repr((cfg.adapter, cfg.data, (cfg.get("scale") or {}).get("glue_pretrained")))
        if inputs not in seen:
            seen.add(inputs)
            build_task(cfg).make_local_inputs(ROOT)


def hydra_commands(grid: TableSpec, base: list[str]) -> list[list[str]]:
    """``train.py -m`` command lines running a table's jobs through Hydra's sweeper and launcher, in the order of
    `TableSpec.all_jobs`: per experiment file its dense baseline (when its grid has none), then its grid; or one
    per explicit job. A command whose jobs are all done is left out (a process start costs seconds even when
    every job in it would be skipped). First come the reruns that recreate the run folders a job still to run
    reads (`sources_to_rebuild`)."""
    train = [sys.executable, str(ROOT / "pipelines" / "train.py"), "-m"]
    is_done = functools.cache(job_is_done)  # each job composed once (seconds on a large table)
    jobs = [tuple(job) for job in grid.all_jobs(base)]
    sources = sources_to_rebuild(jobs, is_done, functools.partial(source_table_jobs, grid, base))
    commands = [[*train, *map(for_multirun, job), for_multirun(f"run.records={SOURCE_RECORDS}"), ONE_JOB]
                for job in sweep_seeds(sources)]
    if grid.jobs:
        return commands + [[*train, *map(for_multirun, job), ONE_JOB] for job in jobs if not is_done(job)]
    for experiment in grid.experiments:
        grid_jobs, dense = experiment_jobs(CONF, experiment, base)
        if grid.with_dense and dense and not is_done(tuple(dense)):
            commands.append([*train, *map(for_multirun, dense), ONE_JOB])
        if not all(is_done(tuple(job)) for job in grid_jobs):
            commands.append([*train, f"experiment={experiment}", *map(for_multirun, base)])
    return commands


def sweep_seeds(jobs: Sequence[Sequence[str]]) -> list[list[str]]:
    """Jobs that differ only in their ``seed=`` override as one job sweeping the seeds (``seed=1,2``), so that a
    parallel launcher (``launcher=local``) runs them side by side; the others as they are, in their order."""
    seeds: dict[tuple[str, ...], list[str]] = {}
    for job in jobs:
        shape = tuple("seed=" if o.startswith("seed=") else o for o in job)
        seeds.setdefault(shape, []).extend(o.removeprefix("seed=") for o in job if o.startswith("seed="))
    return [[f"seed={','.join(values)}" if o == "seed=" else o for o in shape] for shape, values in seeds.items()]


def sources_to_rebuild(jobs: Sequence[tuple[str, ...]], is_done: Callable[[tuple[str, ...]], bool],
                       other_jobs: Callable[[], Sequence[tuple[str, ...]]] = tuple) -> list[list[str]]:
    """The jobs whose run folder a job still to run reads (`SOURCE_KEYS`: a distillation teacher, the dense model a
    projection starts from) but which is not finished on this machine: a fresh checkout holds their records, not
    their folders, so they would be skipped and the jobs reading them would fail (a killed rerun's folder
    resumes). Each is trained again with its record written to `SOURCE_RECORDS`, which leaves the committed record
    as it is (the hash is the same). The table's own done jobs are searched first, then ``other_jobs()`` (the
    tables it names as `TableSpec.sources`), only for a folder that none of its own jobs writes."""
    pending = [job for job in jobs if not is_done(job)]
    needed = {folder for job in pending for folder in source_folders(compose_cfg(CONF, list(job)))}
    missing = {folder for folder in needed if not finished_run(folder)}
    if not missing:
        return []
    ours = [job for job in jobs if job not in pending and job_folder(job) in missing]
    left = missing - {job_folder(job) for job in ours}
    theirs = [job for job in other_jobs() if job_folder(job) in left] if left else []
    return [list(job) for job in (*ours, *theirs)]


def source_table_jobs(grid: TableSpec, base: list[str]) -> list[tuple[str, ...]]:
    """The jobs of the tables whose run folders ``grid``'s jobs read (`TableSpec.sources`), at the scale of
    ``base`` and with its other overrides (records, outputs, extra)."""
    scale = grid.scale_of(base)
    rest = [o for o in base if o not in grid.scale_overrides(scale)]
    tables = [get_table(table) for table in grid.sources]
    return [tuple(job) for table in tables for job in table.all_jobs([*table.scale_overrides(scale), *rest])]


@functools.cache
def job_folder(job: tuple[str, ...]) -> Path:
    """The run folder a job writes (Hydra's ``hydra.run.dir``), as an absolute path."""
    return (ROOT / str(compose_cfg(CONF, list(job), hydra_config=True).hydra.run.dir)).resolve()


def finished_run(folder: Path) -> bool:
    """Whether ``folder`` holds a run whose record says "done" (a killed run's folder does not)."""
    try:
        return (find_run(folder).record or {}).get("status") == "done"
    except (FileNotFoundError, ValueError):
        return False


def source_folders(cfg: DictConfig) -> set[Path]:
    """The run folders a job's config names as inputs (`SOURCE_KEYS`), as absolute paths."""
    values = (OmegaConf.select(cfg, key) for key in SOURCE_KEYS)
    return {(ROOT / str(value)).resolve() for value in values if value}


def job_is_done(job: Sequence[str]) -> bool:
    """Whether the job would be skipped: its record is "done" and ``run.skip_done`` is on."""
    cfg = compose_cfg(CONF, list(job))
    return bool(cfg.run.skip_done) and read_status(record_path(cfg)).get("status") == "done"


def for_multirun(override: str) -> str:
    """``key=value`` as a multirun passes it on intact: a value holding an interpolation is quoted, because Hydra's
    sweeper (1.3) rewrites an unquoted one with escapes that its own parser then rejects when the interpolation
    holds a quoted string (``${oc.select:scale.suffix,''}``). The composed config is the same."""
    key, sep, value = override.partition("=")
    quote = next((q for q in ("'", '"') if q not in value), None)
    if "${" not in value or value[:1] in ("'", '"') or quote is None:
        return override
    return f"{key}{sep}{quote}{value}{quote}"


def launch(grid: TableSpec, base: list[str], jobs: list[list[str]]) -> list[Outcome]:
    """Run the table through Hydra (`hydra_commands`), every command even when one fails; the outcome of each
    job comes from its record."""
    started = time.time()
    for command in hydra_commands(grid, base):
        log.info("$ %s", shlex.join(["python", *command[1:]]))
        if child_call(command, cwd=ROOT) != 0:
            log.info("(a job of this multirun failed; the next command still runs)")
    return outcomes_from_records(jobs, started)


def outcomes_from_records(jobs: Sequence[Sequence[str]], started: float) -> list[Outcome]:
    """Each job's outcome read from its record: "skipped" when it was "done" before ``started`` (a time.time()),
    "ran" when it is "done" now, "failed" otherwise (missing, "failed" with its error, or left "running")."""
    outcomes = []
    for overrides in jobs:
        # hashed again, not reused from `is_done`: a job whose inputs were missing before it ran had no data
        # identity then (None), and its record is named by the hash with the identity it has now
        cfg = compose_cfg(CONF, overrides)
        path = record_path(cfg)
        record = read_status(path)
        out = Outcome(overrides=list(overrides), status="failed", name=str(cfg.run.name), record=str(path))
        if record.get("status") == "done":
            out.status = "skipped" if path.stat().st_mtime < started else "ran"
            out.seconds = float((record.get("timings") or {}).get("train_s") or 0.0)
        else:
            out.error = record.get("error") or f"no finished record at {path}"
        outcomes.append(out)
    return outcomes


def summary(outcomes: Sequence[Outcome]) -> str:
    """One line per job, failures spelled out."""
    lines = []
    for o in outcomes:
        line = f"{o.status:>7}  {o.name or ' '.join(o.overrides)}  ({o.seconds:.0f} s)"
        if o.error:
            line += f"\n         {o.error}"
        lines.append(line)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ran", "skipped", "failed")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


def reproduce_grid(table: str, scale: str, records: Path, tables: Path, outputs: Path,
                   extra: list[str] | None = None, dry_run: bool = False) -> int:
    """Run the missing jobs of a table, rebuild it; 1 if any job failed (after running the rest)."""
    grid = get_table(table)
    base = [*grid.scale_overrides(scale), f"run.records={records}", f"run.outputs={outputs}", *(extra or [])]
    jobs = grid.all_jobs(base)
    if dry_run:  # the jobs, one train.py command each; the multiruns that run them are logged on stderr
        for command in hydra_commands(grid, base):
            log.info("runs as: %s", shlex.join(["python", "pipelines/train.py", *command[2:]]))
        print("\n".join(shlex.join(["python", "pipelines/train.py", *job]) for job in jobs))
        return 0
    if scale == "smoke":
        try:
            prepare_smoke_inputs(jobs)
        except FileNotFoundError as err:
            print(f"cannot prepare the smoke inputs: {err}", file=sys.stderr)
            return 2
    outcomes = launch(grid, base, jobs)
    print(summary(outcomes))
    failed = [o for o in outcomes if o.status == "failed"]
    status = 1 if failed else 0
    try:
        print(build_table(grid.id, scale, records, tables))
    except FileNotFoundError as err:
        print(f"no table: {err}")
    except ValueError as err:  # a record a table cannot use, or one not done (the failed jobs'): no table
        print(f"no table: {err}", file=sys.stderr)
        status = 1
    if failed:
        print(f"{len(failed)} job(s) failed; rerun the same command to retry them", file=sys.stderr)
    return status


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", help="a table id or alias (`list` prints them), or `tables` to rebuild every table")
    p.add_argument("--scale", choices=["smoke", "full"], default="smoke")
    p.add_argument("--records", type=Path, default=Path("results/records"))
    p.add_argument("--tables", type=Path, default=Path("results/tables"))
    p.add_argument("--outputs", type=Path, default=Path("outputs"))
    p.add_argument("--device", default=None, help="Table 1 only: cpu or cuda (default: cuda when available)")
    p.add_argument("--dry-run", action="store_true", help="print the jobs (as train.py commands) and exit")
    p.add_argument("--from-wandb", metavar="ENTITY/PROJECT", default=None,
                   help="tables only: first fetch the run records kept in this W&B project into --records")
    p.add_argument("--wandb-group", default=None, help="with --from-wandb: only the runs of this W&B group")
    p.add_argument("--page", type=Path, action="append", default=[],
                   help="tables only: then copy the rebuilt tables into this Markdown page's <!-- table: FILE --> "
                        "blocks (repeatable)")
    add_threads_argument(p, help="torch threads of every job (run.threads; Table 1: bench_model --threads); "
                                 "default: the shared rule of shapeshifter.threads")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every job, e.g. seed=2")
    return p


def rebuild_tables(args: argparse.Namespace) -> int:
    """Every table from the records (fetched from W&B first with --from-wandb)."""
    if args.from_wandb:
        try:
            fetched = fetch_records(args.from_wandb, args.records, group=args.wandb_group)
        except Exception as err:  # wandb's own errors (no API key, unknown project, network) and ours
            print(f"could not fetch run records from W&B project {args.from_wandb}: {type(err).__name__}: {err}"
                  "\n(the W&B API needs WANDB_API_KEY or `wandb login`; local records were not changed)",
                  file=sys.stderr)
            return 1
        print(f"fetched {len(fetched)} record(s) from W&B project {args.from_wandb} into {args.records}")
    try:
        built = build_all(args.records, args.tables)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 1
    print("rebuilt: " + (", ".join(built) if built else "nothing (no finished records)"))
    return sync_pages(args.page, args.tables)


def sync_pages(pages: Sequence[Path], tables: Path) -> int:
    """Copy the tables into each page's marked blocks; 1 when a page names a table that is not there."""
    status = 0
    for page in pages:
        try:
            changed = sync_page(page, tables)
        except FileNotFoundError as err:
            print(f"{page}: {err}", file=sys.stderr)
            status = 1
            continue
        print(f"{page}: {'tables updated' if changed else 'tables already current'}")
    return status


def run_benchmark(spec: TableSpec, args: argparse.Namespace) -> int:
    """Table 1 (fp32 or bf16): `pipelines/bench_model.py`, which writes its records and rebuilds the table."""
    cmd = [sys.executable, str(ROOT / "pipelines/bench_model.py"), "--scale", args.scale,
           "--records", str(args.records), "--tables", str(args.tables), *spec.bench_args]
    if args.device:
        cmd += ["--device", args.device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    return child_call(cmd)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_intermixed_args(argv)  # Hydra overrides may also follow the options
    if argv is None:  # the command line (make reproduce-table-...): stop when the make that started it is stopped
        die_with_parent(signal.SIGTERM)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if (args.from_wandb or args.page) and args.table != "tables":
        p.error("--from-wandb and --page rebuild tables from records only: use them with the 'tables' target")
    if args.table == "tables":
        return rebuild_tables(args)
    if args.table == "list":  # the tables that run at this scale (make smoke builds each of them)
        print(" ".join(t.id for t in REGISTRY.values() if args.scale == "smoke" or t.full_scale or not t.experiments))
        return 0
    try:
        spec = get_table(args.table)
    except ValueError as err:
        p.error(str(err))
    if not spec.experiments:
        return run_benchmark(spec, args)
    threads = [f"run.threads={args.threads}"] if args.threads else []  # run.* is not part of the config hash
    return reproduce_grid(spec.id, args.scale, args.records, args.tables, args.outputs,
                          [*threads, *args.overrides], args.dry_run)


if __name__ == "__main__":
    raise SystemExit(main())
