"""The local CSV log survives a resume: the rows of the interrupted attempt are kept, new ones appended."""

from __future__ import annotations

import csv
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger

from shapeshifter.experiment.loggers import keep_previous_csv


def test_resumed_csv_log_keeps_the_earlier_rows(tmp_path: Path) -> None:
    first = CSVLogger(save_dir=str(tmp_path), name="csv", version="")
    assert keep_previous_csv(first) == 0
    first.log_metrics({"valid_loss": 7.0}, step=0)
    first.log_metrics({"valid_loss": 6.5}, step=1)
    first.save()

    resumed = CSVLogger(save_dir=str(tmp_path), name="csv", version="")
    assert keep_previous_csv(resumed) == 2
    resumed.log_metrics({"valid_loss": 6.0, "train_loss": 6.2}, step=2)  # a new column too
    resumed.save()

    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    assert [(r["step"], r["valid_loss"]) for r in rows] == [("0", "7.0"), ("1", "6.5"), ("2", "6.0")]
    assert rows[2]["train_loss"] == "6.2" and rows[0]["train_loss"] == ""
