"""The jobs of a table's grid as Hydra's multirun makes them, for the callers that list them without running them.

`pipelines/reproduce.py` runs every grid through ``pipelines/train.py -m`` (Hydra's sweeper and the configured
launcher). It still needs the list of a grid's jobs, to print them (``--dry-run``), to prepare the smoke inputs
they read and to find each job's record afterwards: that list comes from Hydra's own BasicSweeper
(`split_arguments`), so it is the product the multirun runs, ``range(...)`` and command-line overrides included.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig


def compose_cfg(conf_dir: Path, overrides: Sequence[str], hydra_config: bool = False) -> DictConfig:
    with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra_config)


def sweep_jobs(params: Sequence[str], arguments: Sequence[str]) -> list[list[str]]:
    """The jobs Hydra's BasicSweeper makes of a config's ``hydra.sweeper.params`` and the command line's
    overrides: their product, in which an argument replaces the param of the same key. Each job lists the
    command line's keys first, as its ``train.py`` command line reads; the order of distinct keys does not
    change the composed config."""
    parsed = OverridesParser.create().parse_overrides([*params, *arguments])
    first = {override.get_key_element() for override in parsed[len(params):]}
    jobs = BasicSweeper.split_arguments(parsed, max_batch_size=None)[0]
    return [sorted(job, key=lambda override: override.split("=", 1)[0] not in first) for job in jobs]


def dense_overrides(cfg: DictConfig) -> list[str]:
    """Overrides turning a composed grid config into its dense baseline (layers/scheme groups removed)."""
    choices = cfg.hydra.runtime.choices
    return ["shapeshift=dense"] + [f"~{group}" for group in ("layers", "scheme") if choices.get(group) is not None]


def experiment_jobs(conf_dir: Path, experiment: str, base: Sequence[str] = ()) -> tuple[list[list[str]],
                                                                                        list[str] | None]:
    """The jobs of ``train.py -m experiment=<experiment> <base>`` and, when none of them is dense, the overrides of
    its dense baseline (a single job, run before the grid)."""
    head = [f"experiment={experiment}", *base]
    cfg = compose_cfg(conf_dir, head, hydra_config=True)
    params = [f"{key}={value}" for key, value in (cfg.hydra.sweeper.get("params") or {}).items()]
    jobs = sweep_jobs(params, head)
    has_dense = any("shapeshift=dense" in job for job in jobs)
    return jobs, None if has_dense else head + dense_overrides(cfg)


def grid_jobs(conf_dir: Path, experiment: str, base: Sequence[str] = (), with_dense: bool = True) -> list[list[str]]:
    """Override lists of every job of an experiment's grid (``hydra.sweeper.params``), dense baseline first."""
    jobs, dense = experiment_jobs(conf_dir, experiment, base)
    return [dense, *jobs] if with_dense and dense else jobs
