"""A newcomer's run end to end: ``train.py +scale=smoke data=parallel_files`` on two plain files, as a subprocess,
logging to W&B offline. It writes its record; Lightning's lines come out once, without a warning about the
checkpoint folder; and the offline W&B run holds stage-grouped metric names (while the CSV log keeps the names
tables read), the table/method/scale/seed tags, the record (file and artifact) and a table of test translations.

The offline run is read from its ``.wandb`` file (`wandb_records_of`): LevelDB's log format (32 KiB blocks of
records, each a 7-byte header and a chunk) holding W&B's protobuf records, the file ``wandb sync`` uploads.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shapeshifter.experiment.loggers import run_tags, wandb_metric_name
from shapeshifter.experiment.wandb_records import RECORD_ARTIFACT_TYPE, RECORD_FILE

ROOT = Path(__file__).resolve().parents[2]
BLOCK = 32768  # LevelDB log block size
FULL, LAST = 1, 4  # chunk types that end a record


def write_corpus(folder: Path, n: int = 600) -> Path:
    """Plain parallel text, one sentence per line: German numbers and colours with their English translation."""
    de_words = ["rot", "blau", "grün", "gelb", "schwarz", "weiß", "groß", "klein", "alt", "neu"]
    en_words = ["red", "blue", "green", "yellow", "black", "white", "big", "small", "old", "new"]
    folder.mkdir(parents=True, exist_ok=True)
    de = [f"Das Haus {i} ist {de_words[i % 10]} und {de_words[(i // 10) % 10]}." for i in range(n)]
    en = [f"The house {i} is {en_words[i % 10]} and {en_words[(i // 10) % 10]}." for i in range(n)]
    (folder / "train.de").write_text("".join(x + "\n" for x in de), encoding="utf-8")
    (folder / "train.en").write_text("".join(x + "\n" for x in en), encoding="utf-8")
    return folder / "train"


def wandb_records_of(path: Path) -> Iterator[Any]:
    """The protobuf records of an offline run's ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    pos, chunk = 7, b""
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(chunk)
            yield record
            chunk = b""


@pytest.fixture(scope="module")
def own_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("own")
    prefix = write_corpus(tmp / "corpus")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    env.pop("WANDB_API_KEY", None)
    done = subprocess.run([sys.executable, str(ROOT / "pipelines" / "train.py"), "+scale=smoke", "data=parallel_files",
                           f"data.trainpref={prefix}", "data.source_lang=de", "data.target_lang=en",
                           f"data.work_dir={tmp / 'work'}", f"run.records={tmp / 'records'}",
                           f"run.outputs={tmp / 'outputs'}", "logger.wandb.enabled=true",
                           "logger.wandb.mode=offline"], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    (record_file,) = (tmp / "records" / "default").glob("de_en-dense-s1-*.json")
    return {"done": done, "record": json.loads(record_file.read_text()), "tmp": tmp, "record_file": record_file}


@pytest.mark.slow
def test_plain_files_train_at_smoke_scale_and_write_a_done_record(own_run: dict[str, Any]) -> None:
    record = own_run["record"]
    assert record["status"] == "done" and record["config"]["data"]["recipe"] == "files"
    assert record["data_content"].startswith("sha256:") and "content" not in record["config"]["data"]
    (job,) = (own_run["tmp"] / "outputs" / "default").iterdir()  # the run folder names its data beside its config
    assert "content" not in (job / ".hydra" / "config.yaml").read_text()
    assert json.loads((job / ".hydra" / "data.json").read_text()) == {"content": record["data_content"]}
    assert record["config"]["arch"]["overrides"]["encoder_embed_dim"] == 32  # the smoke model on the user's files
    work = own_run["tmp"] / "work"
    counts = {s: len((work / f"{s}.raw.en").read_text().splitlines()) for s in ("train", "valid", "test")}
    assert counts == {"train": 548, "valid": 26, "test": 26}  # 600 pairs: every 23rd to valid, 11th + 23k to test


@pytest.mark.slow
def test_lightning_lines_come_out_once_and_a_fresh_run_does_not_warn_about_its_checkpoint_folder(
        own_run: dict[str, Any]) -> None:
    out = own_run["done"].stdout + own_run["done"].stderr
    assert out.count("GPU available:") == 1 and out.count("`Trainer.fit` stopped") == 1, out[-3000:]
    assert "exists and is not empty" not in out


def offline_run(own_run: dict[str, Any]) -> Path:
    (run_dir,) = (own_run["tmp"] / "outputs").rglob("offline-run-*")
    return run_dir


@pytest.mark.slow
def test_the_offline_wandb_run_has_stage_metrics_tags_the_record_and_sample_translations(
        own_run: dict[str, Any]) -> None:
    run_dir = offline_run(own_run)
    (wandb_file,) = run_dir.glob("*.wandb")
    metrics, tags, artifacts = set(), [], []
    for record in wandb_records_of(wandb_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            metrics |= {item.key or "/".join(item.nested_key) for item in record.history.item}
        elif kind == "run":
            tags = list(record.run.tags)
        elif kind == "artifact":
            artifacts.append((record.artifact.type, record.artifact.name))
    assert {"train/loss_epoch", "valid/loss", "valid/ppl", "test/tokenized_bleu", "test/sacrebleu", "train/lr",
            "model/params_total"} <= metrics, sorted(metrics)
    assert not {m for m in metrics if m.startswith(("train_", "valid_", "test_"))}
    assert tags == ["table:default", "method:dense", "scale:smoke", "seed:1"]
    config_hash = own_run["record"]["config_hash"]
    assert (RECORD_ARTIFACT_TYPE, f"record-{config_hash}") in artifacts
    assert (run_dir / "files" / RECORD_FILE).read_bytes() == own_run["record_file"].read_bytes()
    (table,) = (run_dir / "files" / "media" / "table" / "test").glob("translations_*.table.json")
    rows = json.loads(table.read_text())
    assert rows["columns"] == ["id", "source", "reference", "hypothesis"] and len(rows["data"]) == 20


@pytest.mark.slow
def test_the_csv_log_keeps_the_metric_names_tables_read(own_run: dict[str, Any]) -> None:
    (metrics_csv,) = (own_run["tmp"] / "outputs").rglob("metrics.csv")
    with metrics_csv.open(newline="") as fh:
        header = next(csv.reader(fh))
    assert "valid_loss" in header and "train_loss_epoch" in header and not any("/" in h for h in header)


def test_metric_names_are_grouped_by_stage_for_wandb_only() -> None:
    renamed = {name: wandb_metric_name(name) for name in (
        "train_loss", "valid_bleu", "test_sacrebleu", "val/accuracy", "train/loss", "lr", "lr-Adam", "params_total",
        "epoch", "trainer/global_step", "shapeshift/reconstruction_error_mean")}
    assert renamed == {"train_loss": "train/loss", "valid_bleu": "valid/bleu", "test_sacrebleu": "test/sacrebleu",
                       "val/accuracy": "valid/accuracy", "train/loss": "train/loss", "lr": "train/lr",
                       "lr-Adam": "train/lr-Adam", "params_total": "model/params_total", "epoch": "epoch",
                       "trainer/global_step": "trainer/global_step",
                       "shapeshift/reconstruction_error_mean": "shapeshift/reconstruction_error_mean"}


def test_tags_name_the_table_without_the_scale_suffix_then_the_configured_ones() -> None:
    config = {"run": {"group": "table2-smoke"}, "scale": {"name": "smoke", "suffix": "-smoke"},
              "shapeshift": {"name": "r1-emb16"}, "seed": 2}
    assert run_tags(config, ["mine", "seed:2"]) == ["table:table2", "method:r1-emb16", "scale:smoke", "seed:2",
                                                    "mine"]
    assert run_tags({"run": {"group": "demo"}, "shapeshift": {"name": "dense"}, "seed": 1}) == [
        "table:demo", "method:dense", "scale:default", "seed:1"]
