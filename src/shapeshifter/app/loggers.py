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

    csv_logger = CSVLogger(save_dir=str(out_dir), name="csv", version="")
    keep_previous_csv(csv_logger)
    loggers: list = [csv_logger]
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


def keep_previous_csv(logger: Any) -> int:
    """Carry the rows of an interrupted attempt's ``metrics.csv`` over to the resumed one; returns how many.

    Lightning's CSV writer deletes an existing ``metrics.csv`` when it starts, so a resumed run would lose the
    epochs logged before the interruption. The rows are read first and written back under the same header;
    later saves append to them (rows of a partly replayed epoch appear twice, with their step).
    """
    import csv

    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return 0
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header, rows = list(reader.fieldnames or []), list(reader)
    writer = logger.experiment  # creating the writer removes the old file
    with path.open("w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=header)
        out.writeheader()
        out.writerows(rows)
    writer.metrics_keys = list(header)
    return len(rows)


def finish_wandb() -> None:
    """Close the W&B run of this job (one W&B run per Hydra job, also in multirun)."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()
