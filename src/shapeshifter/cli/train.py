"""Train and evaluate one configuration (or a sweep with -m): the project's Hydra entry point.

    python pipelines/train.py                                   # dense Transformer on the committed sample
    python pipelines/train.py experiment=iwslt14_paper          # the paper's IWSLT'14 setting
    python pipelines/train.py -m shapeshift=sweep rank=1,2,4 scheme=balanced,exact layers=attn,ffn,all

Each job writes ``<records>/<group>/<name>-<config hash>.json``; a job whose record is complete is
skipped, and an interrupted job resumes from its ``last.ckpt``.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from shapeshifter.app.runner import run_job
from shapeshifter.cli.errors import one_line_errors
from shapeshifter.paths import repo_root

ROOT = repo_root()

log = logging.getLogger("shapeshifter")


@hydra.main(config_path=str(ROOT / "conf"), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
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
