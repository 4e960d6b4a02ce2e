"""The GLUE side of the Hydra app end to end: compose ``conf/train.yaml`` as the CLI would, run one tiny job.

Covers a GLUE task read from local files (``experiment=glue/scratch data=glue data.task=cola``), a
shapeshifted tiny BERT with projected init, the user's own TSV files, a bad task name (fails before any
record or Trainer) and the skip of a finished run.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from shapeshifter.experiment.runner import record_path, run_job  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WORDS = "the a cat dog sat ran on under mat log quickly slowly big small red blue".split()


pytestmark = pytest.mark.usefixtures("one_thread")


def _compose(tmp_path: Path, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=[
            "trainer.max_epochs=1", "trainer.progress_bar=none", "logger.wandb.enabled=false",
            "+trainer.enable_model_summary=false", f"run.records={tmp_path / 'records'}", *overrides,
        ])


def _sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(n)]


@pytest.fixture()
def cola_dir(tmp_path: Path) -> Path:
    """CoLA-format TSVs (Hugging Face column names), test labels hidden as -1 like GLUE's."""
    d = tmp_path / "glue" / "cola"
    d.mkdir(parents=True)
    for split, n in (("train", 48), ("validation", 24), ("test", 16)):
        rows = [f"{s}\t{-1 if split == 'test' else i % 2}\t{i}" for i, s in enumerate(_sentences(n, len(split)))]
        (d / f"{split}.tsv").write_text("sentence\tlabel\tidx\n" + "\n".join(rows) + "\n")
    return tmp_path / "glue"


def _cola_overrides(data_dir: Path) -> list[str]:
    return ["experiment=glue/scratch", "data=glue", "data.task=cola", "data.source=local", f"data.data_dir={data_dir}",
            "glue.batch_size=16", "glue.min_count=1"]


def test_glue_task_from_local_files_skip_if_done_fresh_if_changed(tmp_path: Path, cola_dir: Path) -> None:
    cfg = _compose(tmp_path, *_cola_overrides(cola_dir))
    assert cfg.data.kind == "glue" and cfg.arch.kind == "scratch"  # command-line data= wins over the experiment's
    record = run_job(cfg, tmp_path / "out")
    assert record["status"] == "done" and record["kind"] == "glue"
    assert record["task"]["name"] == "cola" and record["task"]["examples"]["train"] == 48
    assert record["metrics"]["main_metric"] == "mcc"
    assert "mcc" in record["metrics"]["validation"] and record["metrics"]["test"] == {}  # hidden test labels
    # the sweep objective is the best validation score of the fit, which the evaluated checkpoint reproduces
    assert (record["objective_metric"], record["objective_mode"]) == ("val/mcc", "max")
    assert record["objective"] == pytest.approx(record["metrics"]["validation"]["mcc"], abs=1e-6)
    assert record["params"]["reduction_vs_dense"] == pytest.approx(1.0) and record["policy"] is None
    assert record["timings"]["train_steps"] == 3 and record["metrics"]["majority_rate"]["validation"] == 0.5

    path = Path(record["_path"])
    before = path.read_text()
    again = run_job(cfg, tmp_path / "out")  # same config: skipped, record untouched
    assert path.read_text() == before and again["config_hash"] == record["config_hash"]

    # same run name and job folder, another config: its own run folder, trained afresh, the first one untouched
    other = run_job(_compose(tmp_path, *_cola_overrides(cola_dir), "optim.lr=1e-3"), tmp_path / "out")
    assert other["config_hash"] != record["config_hash"] and other["resumed_from"] is None
    for run in (record, other):
        assert (tmp_path / "out" / run["config_hash"] / "checkpoints" / "last.ckpt").is_file()


def test_shapeshifted_tiny_bert_records_reconstruction_errors(tmp_path: Path) -> None:
    cfg = _compose(tmp_path, "experiment=glue/snli_demo", "arch=bert_tiny_random", "shapeshift=glue_r4_emb32",
                   "glue.max_examples=64", "glue.batch_size=32")
    record = run_job(cfg, tmp_path / "out")
    assert record["status"] == "done" and record["shapeshift_init"] == "project"
    errors = record["reconstruction_errors"]
    assert any("attention.self.query" in k for k in errors) and any("word_embeddings" in k for k in errors)
    assert all(0.0 <= e <= 1.5 for e in errors.values())
    assert record["reconstruction_error_summary"]["max"] == pytest.approx(max(errors.values()))
    assert record["params"]["reduction_vs_dense"] > 1.0
    assert set(record["metrics"]["test"]) == {"accuracy", "macro_f1"} and record["objective_metric"] == "val/accuracy"
    assert record["metrics"]["majority_rate"]["test"] > 0.25


def test_pretrained_encoder_from_local_folder(tmp_path: Path) -> None:
    """``arch=bert_pretrained`` with a ``save_pretrained`` folder: HF tokenizer, weights loaded, projected init."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = sorted({w for s in _sentences(64, 3) for w in s.split()} | set(WORDS))
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    folder = tmp_path / "tiny-bert"
    BertTokenizerFast(vocab=vocab).save_pretrained(folder)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(folder)
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"text": s, "label": i % 2}) + "\n" for i, s in enumerate(_sentences(32, 5))))
    cfg = _compose(tmp_path, "experiment=glue/pretrained", "data=glue_files", f"data.train={train}",
                   "data.text_fields=text", f"arch.name_or_path={folder}", "shapeshift=glue_r1_emb16",
                   "glue.max_length=32")
    record = run_job(cfg, tmp_path / "out")
    assert record["status"] == "done" and record["shapeshift_init"] == "project"
    assert record["task"]["vocab_size"] == len(vocab) and record["objective"] is None  # no validation/test files
    assert record["reconstruction_errors"] and record["params"]["reduction_vs_dense"] > 1.0


def test_own_tsv_files(tmp_path: Path) -> None:
    files = {}
    for split, n in (("train", 40), ("dev", 20)):
        a, b = _sentences(n, 1 + len(split)), _sentences(n, 7 + len(split))
        rows = [f"{x}\t{y}\t{['yes', 'no', 'maybe'][i % 3]}" for i, (x, y) in enumerate(zip(a, b, strict=True))]
        files[split] = tmp_path / f"{split}.tsv"
        files[split].write_text("question\tanswer\tverdict\n" + "\n".join(rows) + "\n")
    cfg = _compose(tmp_path, "experiment=glue/scratch", "data=glue_files", f"data.train={files['train']}",
                   f"data.validation={files['dev']}", "data.text_fields=[question,answer]",
                   "data.label_field=verdict", "shapeshift=glue_r1_emb16", "glue.batch_size=16")
    record = run_job(cfg, tmp_path / "out")
    assert record["status"] == "done"
    assert record["task"]["label_names"] == ["maybe", "no", "yes"] and record["task"]["num_labels"] == 3
    assert record["objective_metric"] == "val/accuracy" and 0.0 <= record["objective"] <= 1.0
    layers = {r["name"]: r["status"] for r in record["shapeshift_report"]["layers"]}
    assert layers["layers.0.fc1"] == "factorized" and layers["classifier"] == "dense"


def test_bad_task_fails_before_training(tmp_path: Path) -> None:
    cfg = _compose(tmp_path, "experiment=glue/scratch", "data=glue", "data.task=colaa", "data.source=local",
                   f"data.data_dir={tmp_path}")
    with pytest.raises(ValueError, match="unknown GLUE task 'colaa'.*cola"):
        run_job(cfg, tmp_path / "out")
    path = record_path(cfg)
    assert not path.exists() or json.loads(path.read_text())["status"] != "done"
    assert not list((tmp_path / "out").rglob("checkpoints"))


def test_missing_field_fails_before_training(tmp_path: Path) -> None:
    train = tmp_path / "train.tsv"
    train.write_text("text\tlabel\n" + "\n".join(f"{s}\t{i % 2}" for i, s in enumerate(_sentences(8, 0))) + "\n")
    cfg = _compose(tmp_path, "experiment=glue/scratch", "data=glue_files", f"data.train={train}",
                   "data.text_fields=[sentence]")
    with pytest.raises(ValueError, match=r"missing field\(s\) \['sentence'\]"):
        run_job(cfg, tmp_path / "out")
    assert not list((tmp_path / "out").rglob("checkpoints"))
    assert json.loads(record_path(cfg).read_text())["status"] == "failed"  # never "running" or "done"


def _tiny_snli(tmp_path: Path, *overrides: str) -> DictConfig:
    """64 SNLI pairs of each split, batches of 32 (2 steps per epoch), a narrow encoder: seconds per epoch."""
    return _compose(tmp_path, "experiment=glue/snli_demo", "glue.max_examples=64", "glue.batch_size=32",
                    "glue.max_length=48", "arch.d_model=32", "arch.d_ff=64", *overrides)


def test_early_stopping_is_recorded_and_the_schedule_keeps_its_ceiling(tmp_path: Path) -> None:
    # a learning rate too small to change any prediction: epoch 2 cannot improve on epoch 1's accuracy
    cfg = _tiny_snli(tmp_path, "trainer.max_epochs=6", "+ckpt.patience=1", "optim.lr=1e-12")
    record = run_job(cfg, tmp_path / "out")
    assert record["status"] == "done"
    training = record["training"]
    assert training["stopped_by"] == "early_stopping" and training["patience"] == 1
    assert training["epochs"] == 2 and training["steps"] == 4 and record["timings"]["train_steps"] == 4
    assert training["monitor"] == "val/accuracy"
    assert training["best"] == pytest.approx(record["metrics"]["validation"]["accuracy"])  # the evaluated checkpoint
    assert [p["epoch"] for p in training["curve"]] == [0, 1]  # one point per validation, from the CSV log
    assert training["curve"][0]["val/accuracy"] == pytest.approx(training["best"])
    assert record["schedule"]["max_steps"] == 12  # warmup/decay span the max_epochs ceiling, not the epochs run


def test_step_limit_stops_mid_epoch(tmp_path: Path) -> None:
    record = run_job(_tiny_snli(tmp_path, "trainer.max_epochs=5", "trainer.max_steps=3"), tmp_path / "out")
    assert record["status"] == "done" and record["schedule"]["max_steps"] == 3
    assert record["training"]["stopped_by"] == "max_steps" and record["training"]["steps"] == 3
    assert record["training"]["patience"] is None and "accuracy" in record["metrics"]["test"]


def test_killed_after_training_resumes_straight_to_evaluation(tmp_path: Path) -> None:
    """A run that died while evaluating (its record still "running") finishes without training again, also when
    its last epoch did not improve on the best one (last.ckpt is the last epoch, not the best)."""
    from shapeshifter.experiment.records import write_record

    cfg = _tiny_snli(tmp_path, "trainer.max_epochs=2", "optim.lr=1e-12")  # epoch 2 cannot beat epoch 1
    first = run_job(cfg, tmp_path / "out")
    path = Path(first.pop("_path"))
    write_record(first | {"status": "running"}, path)
    again = run_job(cfg, tmp_path / "out")
    assert again["status"] == "done" and again["resumed_from"].endswith("last.ckpt")
    assert again["training"] == first["training"] and again["timings"]["train_step_s"] is None  # nothing trained
    assert again["metrics"] == first["metrics"]
