"""Loggers for a run: W&B (offline unless a key is configured) and a local CSV log."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def wandb_mode(configured: str | None = None) -> str:
    """The W&B mode a run uses: the configured one, else online only when an API key is set."""
    return configured or ("online" if os.environ.get("WANDB_API_KEY") else "offline")


def make_loggers(cfg: Any, out_dir: Path, run_name: str, group: str | None, config: dict) -> list:
    """Lightning loggers: CSV always; W&B when ``logger.wandb.enabled`` (default offline mode)."""
    from lightning.pytorch.loggers import CSVLogger

    loggers: list = [CSVLogger(save_dir=str(out_dir), name="csv", version="")]
    wb = cfg.get("wandb") if cfg is not None else None
    if wb is not None and wb.get("enabled", True):
        from lightning.pytorch.loggers import WandbLogger

        mode = wandb_mode(wb.get("mode"))
        os.environ.setdefault("WANDB_MODE", mode)
        os.environ.setdefault("WANDB_SILENT", "true")
        loggers.append(WandbLogger(project=wb.get("project", "shapeshifter"), name=run_name, group=group,
                                   save_dir=str(out_dir), offline=(mode == "offline"), config=config,
                                   tags=list(wb.get("tags") or [])))
    return loggers


def finish_wandb() -> None:
    """Close the W&B run of this job (one W&B run per Hydra job, also in multirun)."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()
