"""Fault injection: every bad input fails with an error naming the key or file to fix, and no bad run is left
looking like one to resume ("running") or to use ("done").

A config that cannot run fails before any record is written; bad data, known only once it is read, marks the
run's record "failed" with the error. An unreachable W&B service does not stall a job: it logs offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from tiny_configs import TINY_TRANSLATION, glue_cfg, translation_cfg  # noqa: E402

from shapeshifter.experiment.runner import record_path, run_job  # noqa: E402
from shapeshifter.translation.data import DataError  # noqa: E402
from shapeshifter.translation.data.smoke import slice_iwslt_raw  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = TINY_TRANSLATION



def record_status(cfg: DictConfig) -> str | None:
    path = record_path(cfg)
    return json.loads(path.read_text())["status"] if path.is_file() else None


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return slice_iwslt_raw(tmp_path_factory.mktemp("sample") / "raw", n_train_lines=240, n_segs=6)


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: trainer=gpu is valid")

def fault(overrides: str, message: str, error: type[Exception] = ValueError, **kw: object) -> object:
    return pytest.param(overrides.split(), error, message, id=overrides, **kw)


# (overrides, exception, message): the config cannot run, so the job stops before writing a record
CONFIG_FAULTS = [
    fault("shapeshift=sweep shapeshift.scheme=foo", r"policy\['embedding'\]: unknown reshape scheme 'foo'"),
    fault("shapeshift=sweep shapeshift.init=foo", r"shapeshift\.init must be 'random' or 'project'"),
    fault("shapeshift=sweep +shapeshift.path=foo", r"path must be 'auto', 'factored' or 'dense', got 'foo'"),
    fault("shapeshift=sweep shapeshift.rank=two", r"rank must be a whole number, got 'two'"),
    fault("shapeshift=sweep shapeshift.rank=2.7", r"rank must be a whole number, got 2\.7"),
    fault("shapeshift=sweep shapeshift.rank='2'", r"shapeshift\.rank must be a whole number, got '2': write "
          r"shapeshift\.rank=2"),
    fault("shapeshift=sweep rank=2.0", r"shapeshift\.rank must be a whole number, got 2\.0"),
    fault("shapeshift=kron shapeshift.per_type.embedding.rank='16'", r"shapeshift\.per_type\.embedding\.rank must "
          r"be a whole number, got '16'"),
    fault("shapeshift=sweep shapeshift.scheme=[[2,2,2],[2,2]]", r"explicit shape .* needs 2 positive"),
    fault("shapeshift=sweep optim.lr=0", r"optim\.lr must be a positive number"),
    fault("shapeshift=sweep +optim.lrr=1", r"optim\.lrr is not a setting; did you mean optim\.lr\?"),
    fault("shapeshift=sweep trainer.max_epochs=0", r"trainer\.max_epochs must be >= 1"),
    fault("batching.max_tokens=0", r"batching\.max_tokens must be a positive integer"),
    fault("logger.wandb.enabled=true logger.wandb.mode=foo", r"logger\.wandb\.mode must be one of"),
    fault("logger.wandb.init_timeout=0", r"logger\.wandb\.init_timeout must be a positive number"),
    fault("+logger.wandb.mdoe=online", r"logger\.wandb: unknown key\(s\) \['mdoe'\]"),
    fault("trainer=gpu", r"trainer\.accelerator=gpu .*CUDA is not available.*trainer=cpu", marks=NO_CUDA),
]


@pytest.mark.parametrize(("overrides", "error", "message"), CONFIG_FAULTS)
def test_a_config_that_cannot_run_fails_before_any_record(raw: Path, tmp_path: Path, overrides: list[str],
                                                          error: type[Exception], message: str) -> None:
    cfg = translation_cfg(raw, tmp_path, *overrides)
    with pytest.raises(error, match=message):
        run_job(cfg, tmp_path / "run")
    assert record_status(cfg) is None
    assert not (tmp_path / "work").exists()  # no data prepared either


@NO_CUDA
def test_a_gpu_trainer_without_cuda_fails_before_a_glue_record(tmp_path: Path) -> None:
    train = tmp_path / "train.tsv"
    train.write_text("text\tlabel\na b\t0\nc d\t1\n")
    cfg = glue_cfg(tmp_path, f"data.train={train}", "data.text_fields=[text]", "trainer=gpu")
    with pytest.raises(ValueError, match=r"trainer\.accelerator=gpu"):
        run_job(cfg, tmp_path / "out")
    assert record_status(cfg) is None


# (file content as bytes, message): the user's GLUE training file is unusable; the record says "failed"
GLUE_FILE_FAULTS = [
    (b"", r"train\.tsv is empty: expected a header row and data rows"),
    (b"\n  \n", r"train\.tsv is empty"),
    (b"text\tlabel\n", r"train\.tsv has a header row \(text, label\) but no data rows"),
    (b"text\tlabel\na b\t0\ncaf\xe9 c\t1\n", r"train\.tsv:3: byte 0xe9 is not UTF-8 .*re-save the file as UTF-8"),
    (b"text\tlabel\na b\t0\nc d\t1\ne f\t\n", r"train\.tsv:4 has no label"),
    (b"text\tlabel\na b\t0\nc d\t1\ne f\t1\textra\n", r"train\.tsv:4: the row has more fields than the header"),
    (b"text\tlabel\na b\t0\nc d\n", r"train\.tsv:3: field 'text' must be text|train\.tsv:3 has no label"),
]


@pytest.mark.parametrize(("content", "message"), GLUE_FILE_FAULTS)
def test_a_bad_glue_training_file_is_named_with_its_line(tmp_path: Path, content: bytes, message: str) -> None:
    train = tmp_path / "train.tsv"
    train.write_bytes(content)
    cfg = glue_cfg(tmp_path, f"data.train={train}", "data.text_fields=[text]")
    with pytest.raises(ValueError, match=message):
        run_job(cfg, tmp_path / "out")
    assert record_status(cfg) == "failed"
    assert message.split(":")[0].replace("\\", "") in json.loads(record_path(cfg).read_text())["error"]
    assert not list((tmp_path / "out").rglob("checkpoints"))


def test_a_bad_glue_validation_label_names_the_file_and_line(tmp_path: Path) -> None:
    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    train.write_text("text\tlabel\na b\tyes\nc d\tno\n")
    dev.write_text("text\tlabel\na b\tyes\nc d\tmaybe\n")
    cfg = glue_cfg(tmp_path, f"data.train={train}", f"data.validation={dev}", "data.text_fields=[text]")
    with pytest.raises(ValueError, match=r"dev\.tsv:3 has unknown label 'maybe'; known labels: \['no', 'yes'\]"):
        run_job(cfg, tmp_path / "out")
    assert record_status(cfg) == "failed"


def test_explicit_shapes_too_small_for_attention_fail_before_the_data_is_prepared(raw: Path, tmp_path: Path) -> None:
    cfg = translation_cfg(raw, tmp_path, "shapeshift=sweep", "shapeshift.scheme=[[2,2],[2,2]]")
    with pytest.raises(ValueError, match=r"self_attn\.\w+_proj \(policy\['attention'\]\): shape .* covers 4x4"):
        run_job(cfg, tmp_path / "run")
    assert record_status(cfg) is None and not (tmp_path / "work").exists()  # no record, nothing prepared


@pytest.mark.slow
def test_explicit_embedding_shapes_that_do_not_cover_the_vocabulary_name_the_layer(raw: Path, tmp_path: Path) -> None:
    """The embedding's size is known only once the vocabulary is built: the record says "failed"."""
    cfg = translation_cfg(raw, tmp_path, "shapeshift=sweep", "layers=emb", "shapeshift.scheme=[[2,2],[8,4]]")
    with pytest.raises(ValueError, match=r"encoder\.embed_tokens \(policy\['embedding'\]\): shape .* covers 4x32"):
        run_job(cfg, tmp_path / "run")
    assert record_status(cfg) == "failed"


@pytest.mark.slow
def test_max_tokens_below_the_longest_sentence_fails_before_training(raw: Path, tmp_path: Path) -> None:
    cfg = translation_cfg(raw, tmp_path, "batching.max_tokens=20")
    with pytest.raises(ValueError, match=r"batching\.max_tokens=20 is below the longest train sentence \((\d+) "
                                         r"tokens after BPE.*at least \1"):
        run_job(cfg, tmp_path / "run")
    assert record_status(cfg) == "failed"
    assert not list((tmp_path / "run").rglob("checkpoints"))


@pytest.mark.slow
def test_an_empty_translation_training_file_is_named(tmp_path: Path) -> None:
    raw = slice_iwslt_raw(tmp_path / "raw", n_train_lines=40, n_segs=3)
    for lang in ("de", "en"):
        (raw / f"train.tags.de-en.{lang}").write_text("")
    cfg = translation_cfg(raw, tmp_path)
    with pytest.raises(DataError, match=r"train\.tags\.de-en\.de and .*train\.tags\.de-en\.en: no training sentences"):
        run_job(cfg, tmp_path / "run")
    assert record_status(cfg) == "failed"


@pytest.mark.slow
def test_training_pairs_all_cleaned_away_name_the_settings(tmp_path: Path) -> None:
    raw = slice_iwslt_raw(tmp_path / "raw", n_train_lines=40, n_segs=3)
    cfg = translation_cfg(raw, tmp_path, "+data.min_len=1", "+data.max_len=1")
    with pytest.raises(DataError, match=r"no (train|valid) .* left after cleaning \(data\.min_len=1, data\.max_len=1"):
        run_job(cfg, tmp_path / "run")
    assert record_status(cfg) == "failed"


WANDB_PROBE = """
import sys, time
from pathlib import Path
from omegaconf import OmegaConf
from shapeshifter.experiment.loggers import finish_wandb, make_loggers
t0 = time.perf_counter()
cfg = OmegaConf.create({"wandb": {"enabled": True, "mode": None, "init_timeout": 3}})
loggers = make_loggers(cfg, Path(sys.argv[1]), "probe", None, {})
print("MODE", loggers[-1].experiment.settings.mode, "SECONDS", round(time.perf_counter() - t0, 1))
finish_wandb()
"""


@pytest.mark.slow
def test_an_unreachable_wandb_service_falls_back_to_offline_without_stalling(tmp_path: Path) -> None:
    env = {**os.environ, "WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_SILENT": "true",
           "WANDB_DIR": str(tmp_path), "PYTHONPATH": str(ROOT / "src")}
    env.pop("WANDB_MODE", None)
    done = subprocess.run([sys.executable, "-c", WANDB_PROBE, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("MODE"))
    assert line.split()[1] == "offline" and float(line.split()[3]) < 60, line
    assert "logger.wandb.init_timeout=3.0s" in done.stderr and "wandb sync" in done.stderr


@pytest.mark.slow
def test_a_glue_run_folder_without_checkpoints_and_translate_on_one_say_what_to_use(tmp_path: Path) -> None:
    train = tmp_path / "train.tsv"
    train.write_text("text\tlabel\na b\t0\nc d\t1\n")
    cfg = glue_cfg(tmp_path, f"data.train={train}", "data.text_fields=[text]")
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, tmp_path / "run" / ".hydra" / "config.yaml")
    done = subprocess.run([sys.executable, str(ROOT / "pipelines" / "evaluate.py"), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "no best-*.ckpt, best.ckpt or last.ckpt" in done.stderr  # evaluate scores GLUE runs: it needs weights
    from shapeshifter.translation.run_model import load_translator

    with pytest.raises(ValueError, match="is a GLUE run.*pipelines/evaluate.py"):  # translate.py and export.py
        load_translator(tmp_path / "run")
