"""Train and evaluate one configuration (or a sweep with -m): the project's Hydra entry point.

    python pipelines/train.py                                   # dense Transformer on the committed sample
    python pipelines/train.py experiment=iwslt14_paper          # the paper's IWSLT'14 setting
    python pipelines/train.py -m shapeshift=sweep rank=1,2,4 scheme=balanced,exact layers=attn,ffn,all

Each job writes ``<records>/<group>/<name>-<config hash>.json``; a job whose record is complete is
skipped, and an interrupted job resumes from its ``last.ckpt``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from shapeshifter.cli.errors import fail, one_line_errors, wants_traceback
from shapeshifter.experiment.resolvers import name_error
from shapeshifter.experiment.runner import run_job
from shapeshifter.paths import repo_root

ROOT = repo_root()

log = logging.getLogger("shapeshifter")


NAME_KEYS = ("run.name", "run.group")


def check_name_overrides(args: Sequence[str]) -> None:
    """Refuse ``run.name=../x`` (or a ``run.group``) given on the command line before Hydra starts: Hydra resolves
    its run folder from the name before any code of ours runs, and reports a resolver's error as a traceback.
    Names built by interpolation are checked when Hydra resolves them (`experiment.resolvers.plain_name`)."""
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") in NAME_KEYS and "${" not in value and "," not in value:
            problem = name_error(key.lstrip("+~"), value)
            if problem:
                fail("train.py", problem)


def main() -> float | None:
    """The entry point: names on the command line checked, then the Hydra app (`train`)."""
    if not wants_traceback():
        check_name_overrides(sys.argv[1:])
    return train()


@hydra.main(config_path=str(ROOT / "conf"), config_name="train", version_base="1.3")
def train(cfg: DictConfig) -> float | None:
    """One job. A single run turns a bad config, path or data file into one line on stderr and exit status 2
    (`shapeshifter.cli.errors`); in a multirun the error goes to the sweep as before (a launcher's worker must
    not exit)."""
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    single = hydra_cfg.mode == RunMode.RUN
    with one_line_errors("train.py") if single else nullcontext():
        record = run_job(cfg, out_dir)
    log.info("record: %s", record.get("_path"))
    return record.get("objective")


if __name__ == "__main__":
    main()
