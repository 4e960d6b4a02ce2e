"""Run a table's grid in-process: the jobs of an experiment's ``hydra.sweeper.params`` plus a dense baseline.

Each job is composed with Hydra's compose API and handed to `run_job`, so it gets exactly what
``pipelines/train.py -m`` would: a job whose record is "done" for the same config hash is skipped, an
interrupted one resumes from its ``last.ckpt``, and a failed one keeps a record that is not "done" and is
retried next time. A failure does not stop the grid: every job is attempted and the outcomes are returned,
so the caller can report the failures and exit non-zero.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from shapeshifter.app.runner import record_path, run_job

log = logging.getLogger("shapeshifter")


@dataclass
class Outcome:
    """What happened to one job of a grid."""

    overrides: list[str]
    status: str  # "ran" | "skipped" | "failed"
    name: str | None = None
    record: str | None = None
    error: str | None = None
    seconds: float = 0.0
    details: dict = field(default_factory=dict)


def expand(params: Mapping[str, str]) -> list[list[str]]:
    """Cartesian product of the sweep ``params`` (``{"rank": "1,4"}``, ``{"rank": "range(1,3)"}``), parsed by
    Hydra's own override grammar, in the basic sweeper's order."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([f"{key}={value}" for key, value in params.items()])
    axes = []
    for override in parsed:
        key = override.get_key_element()
        if override.is_sweep_override():
            axes.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            axes.append([f"{key}={override.get_value_element_as_str()}"])
    return [list(combo) for combo in itertools.product(*axes)]


def compose_cfg(conf_dir: Path, overrides: Sequence[str], hydra_config: bool = False) -> DictConfig:
    with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra_config)


def dense_overrides(cfg: DictConfig) -> list[str]:
    """Overrides turning a composed grid config into its dense baseline (layers/scheme groups removed)."""
    choices = cfg.hydra.runtime.choices
    return ["shapeshift=dense"] + [f"~{group}" for group in ("layers", "scheme") if choices.get(group) is not None]


def grid_jobs(conf_dir: Path, experiment: str, base: Sequence[str] = (), with_dense: bool = True) -> list[list[str]]:
    """Override lists of every job of an experiment's grid (``hydra.sweeper.params``), dense baseline first."""
    head = [f"experiment={experiment}", *base]
    cfg = compose_cfg(conf_dir, head, hydra_config=True)
    params = dict(cfg.hydra.sweeper.get("params") or {})
    jobs = [head + combo for combo in expand(params)] if params else [head]
    has_dense = any("shapeshift=dense" in job for job in jobs)
    if with_dense and not has_dense:
        jobs.insert(0, head + dense_overrides(cfg))
    return jobs


def is_done(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("status") == "done"
    except (OSError, json.JSONDecodeError):
        return False


def job_dir(cfg: DictConfig, outputs: Path = Path("outputs")) -> Path:
    """A job's output folder: the one ``train.py -m`` uses (``hydra.sweep.dir``/``subdir``), so either command
    resumes the other's checkpoints; another config under the same name is moved aside by claim_checkpoint_dir."""
    root = cfg.paths.output_dir if cfg.get("paths") else cfg.run.get("outputs") or outputs
    return Path(root) / str(cfg.run.group) / str(cfg.run.name)


def run_grid(conf_dir: Path, jobs: Sequence[Sequence[str]], outputs: Path = Path("outputs")) -> list[Outcome]:
    """Run every job not yet done; each job's output dir is ``<outputs>/<group>/<name>`` as under Hydra."""
    outcomes = []
    for i, overrides in enumerate(jobs, 1):
        out = Outcome(overrides=list(overrides), status="failed")
        t0 = time.perf_counter()
        try:
            cfg = compose_cfg(conf_dir, overrides)
            path = record_path(cfg)
            out.name, out.record = str(cfg.run.name), str(path)
            if cfg.run.skip_done and is_done(path):
                out.status = "skipped"
            else:
                log.info("[%d/%d] running %s", i, len(jobs), cfg.run.name)
                run_dir = job_dir(cfg, outputs)
                record = run_job(cfg, run_dir)
                out.status = "ran" if record.get("status") == "done" else "failed"
        except Exception as err:  # one failed job must not stop the grid; it is reported by the caller
            out.status, out.error = "failed", f"{type(err).__name__}: {err}"
            log.error("job %s failed:\n%s", overrides, traceback.format_exc())
        out.seconds = time.perf_counter() - t0
        outcomes.append(out)
    return outcomes


def outcomes_from_records(conf_dir: Path, jobs: Sequence[Sequence[str]]) -> list[Outcome]:
    """Each job's outcome read from its record (after a launcher ran the jobs in other processes): "ran" when
    the record is "done", "failed" otherwise (missing, or left "running" by a job that failed)."""
    outcomes = []
    for overrides in jobs:
        cfg = compose_cfg(conf_dir, overrides)
        path = record_path(cfg)
        done = is_done(path)
        seconds = json.loads(path.read_text()).get("timings", {}).get("train_s") or 0.0 if done else 0.0
        outcomes.append(Outcome(overrides=list(overrides), status="ran" if done else "failed", name=str(cfg.run.name),
                                record=str(path), error=None if done else f"no finished record at {path}",
                                seconds=seconds))
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
