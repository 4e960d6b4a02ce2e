"""Fault injection, round two: checkpoints verified on every load, one writer per run, names that stay inside
their folders, records checked before a table uses them, impossible settings refused before work.

Each test is a case that was silently wrong (or a raw traceback, or late) before: it fails on that code.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from tiny_configs import glue_cfg, translation_cfg  # noqa: E402

from shapeshifter.experiment.records import write_record  # noqa: E402
from shapeshifter.experiment.runner import record_path, run_hash, run_job  # noqa: E402
from shapeshifter.translation.data.smoke import slice_iwslt_raw  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SMOKE_RECORD = ROOT / "results" / "records" / "table2-smoke" / "sample_smoke-dense-s1-b638ebadaa2e.json"



def tiny_glue(tmp_path: Path, *overrides: str) -> DictConfig:
    train = tmp_path / "train.tsv"
    train.write_text("text\tlabel\na b\t0\nc d\t1\na c\t0\nd b\t1\n")
    return glue_cfg(tmp_path, f"data.train={train}", "data.text_fields=[text]", *overrides)


def status(cfg: DictConfig) -> str | None:
    path = record_path(cfg)
    return json.loads(path.read_text())["status"] if path.is_file() else None


class Trap:
    """Unpickling this runs ``Path.touch`` on the marker: only a full (unsafe) unpickler would do it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def flip_tensor_bytes(path: Path) -> None:
    """Change bytes inside the largest tensor of a ``torch.save`` archive, keeping its size (a zip CRC fails)."""
    with zipfile.ZipFile(path) as archive:
        member = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "r+b") as fh:
        fh.seek(member.header_offset + 26)
        name_len, extra_len = int.from_bytes(fh.read(2), "little"), int.from_bytes(fh.read(2), "little")
        start = member.header_offset + 30 + name_len + extra_len + member.file_size // 2
        fh.seek(start)
        chunk = fh.read(16)
        fh.seek(start)
        fh.write(bytes(b ^ 0xFF for b in chunk))


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return slice_iwslt_raw(tmp_path_factory.mktemp("sample") / "raw", n_train_lines=240, n_segs=6)


@pytest.fixture(scope="module")
def translation_run(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, DictConfig]]:
    """One epoch of the tiny Transformer, in a run folder with its composed config (as Hydra writes it)."""
    tmp = tmp_path_factory.mktemp("translation_run")
    cfg = translation_cfg(raw, tmp)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    run = tmp / "run"
    run_job(cfg, run)  # writes .hydra/config.yaml as Hydra's app would (runner.save_job_config)
    yield run, cfg
    torch.set_num_threads(before)


@pytest.fixture()
def damaged_run(translation_run: tuple[Path, DictConfig], tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the run folder whose best checkpoint has flipped bytes inside a tensor (same size)."""
    copy = tmp_path / "run"
    shutil.copytree(translation_run[0], copy)
    (best,) = copy.glob("*/checkpoints/best-*.ckpt")
    flip_tensor_bytes(best)
    return copy, best


# -- 1. every checkpoint load verifies before use -------------------------------------------------------------
def test_flipped_tensor_bytes_are_refused_by_evaluate_naming_the_file(damaged_run: tuple[Path, Path],
                                                                       capsys: pytest.CaptureFixture) -> None:
    from shapeshifter.cli.evaluate import main as evaluate

    run, best = damaged_run
    with pytest.raises(SystemExit) as exit_info:
        evaluate([str(run)])
    assert exit_info.value.code != 0
    # one line naming the copy's own file, not the original's
    err = " ".join(capsys.readouterr().err.split())
    assert f"{best} is not a readable checkpoint: it is damaged" in err


def test_flipped_tensor_bytes_are_refused_by_export_and_translate(damaged_run: tuple[Path, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    from shapeshifter.cli.translate import export_main
    from shapeshifter.translation.run_model import load_translator  # a run folder; exports: translation.translator

    run, best = damaged_run
    with pytest.raises(SystemExit) as exit_info:
        export_main([str(run), str(tmp_path / "export")])
    assert exit_info.value.code != 0
    assert f"{best} is not a readable checkpoint: it is damaged" in capsys.readouterr().err
    assert not (tmp_path / "export").exists()  # no manifest written over changed weights
    with pytest.raises(ValueError, match=rf"{best} is not a readable checkpoint: it is damaged"):
        load_translator(run)


def test_lightning_loads_verify_and_never_unpickle_even_when_the_environment_asks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Resume and GLUE's validate/test with ckpt_path read through the Trainer's checkpoint IO; with
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 Lightning's own loader ran a crafted last.ckpt's payload."""
    from shapeshifter.experiment.task import build_trainer
    from shapeshifter.experiment.training import VerifiedCheckpointIO

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "payload-ran"
    crafted = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "callbacks": Trap(marker)}, crafted)
    with pytest.raises(ValueError, match=r"last\.ckpt is not a readable checkpoint.*weights_only=True"):
        VerifiedCheckpointIO().load_checkpoint(crafted)
    assert not marker.exists()

    class NoTask:  # build_trainer reads only the config and the task's extra Trainer options
        cfg = tiny_glue(tmp_path)

        def trainer_options(self) -> dict:
            return {}

    trainer = build_trainer(NoTask(), [], [], tmp_path)
    assert isinstance(trainer.strategy.checkpoint_io, VerifiedCheckpointIO)


def test_a_crafted_last_checkpoint_is_moved_aside_and_the_run_resumes_clean(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    cfg = tiny_glue(tmp_path, "trainer.max_epochs=2")
    first = run_job(cfg, tmp_path / "run")
    (ckpt_dir,) = (tmp_path / "run").glob("*/checkpoints")
    marker = tmp_path / "payload-ran"
    torch.save({"state_dict": {}, "loops": Trap(marker)}, ckpt_dir / "last.ckpt")  # a whole zip: the CRC passes
    record_path(cfg).unlink()
    again = run_job(cfg, tmp_path / "run")
    assert not marker.exists() and (ckpt_dir / "last.ckpt.corrupt").is_file()
    assert again["status"] == "done" and again["resumed_from"].endswith("last.prev.ckpt")
    assert again["training"]["steps"] == first["training"]["steps"]


def test_a_moved_run_folder_evaluates_its_own_checkpoints(tmp_path: Path) -> None:
    """Lightning restores the absolute best_model_path of last.ckpt: a copy evaluated the original folder's file,
    and with the original gone failed with FileNotFoundError and a record stuck at "running"."""
    cfg = tiny_glue(tmp_path)
    run_job(cfg, tmp_path / "original")
    shutil.move(tmp_path / "original", tmp_path / "moved")
    record_path(cfg).unlink()
    record = run_job(cfg, tmp_path / "moved")
    assert record["status"] == "done" and record["resumed_from"].endswith("last.ckpt")
    assert "/moved/" in record["evaluated_weights"] and "original" not in record["evaluated_weights"]


def test_a_run_resumed_after_its_last_epoch_keeps_the_validation_and_step_times(
        translation_run: tuple[Path, DictConfig], tmp_path: Path) -> None:
    """A job killed between its last epoch and the end of its evaluation resumes with nothing to train: its record
    keeps what the attempt before logged (the last validation loss, the step times), read from the CSV log."""
    run, cfg = translation_run
    first = json.loads(record_path(cfg).read_text())
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    again_cfg = cfg.copy()
    again_cfg.run.records = str(tmp_path / "records")
    torch.set_num_threads(1)
    again = run_job(again_cfg, copy)
    assert again["resumed_from"].endswith("last.ckpt") and again["training"]["steps"] == first["training"]["steps"]
    assert again["metrics"]["valid"]["valid_loss"] == pytest.approx(first["metrics"]["valid"]["valid_loss"])
    assert again["timings"]["train_step_s"] == pytest.approx(first["timings"]["train_step_s"])


# -- 2. one writer per run ----------------------------------------------------------------------------------------
HOLD = """
import sys, time
from pathlib import Path
from shapeshifter.experiment.run_lock import run_lock
with run_lock(Path(sys.argv[1]), "probe"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    if len(sys.argv) > 3:
        Path(sys.argv[3]).write_text('{"status": "done"}')
"""


def hold_lock(lock: Path, seconds: float, *then: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), str(seconds), *then], stdout=subprocess.PIPE,
                              text=True, env=env)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_identical_command_refuses_at_once_naming_the_running_process(raw: Path, tmp_path: Path) -> None:
    from shapeshifter.experiment.run_lock import RunLockedError

    cfg = translation_cfg(raw, tmp_path)
    path = record_path(cfg, run_hash(cfg))
    holder = hold_lock(path.with_name(f".{path.stem}.lock"), 60)
    try:
        t0 = time.perf_counter()
        with pytest.raises(RunLockedError, match=rf"pid {holder.pid} on .*run\.wait_for_lock=true"):
            run_job(cfg, tmp_path / "run")
        assert time.perf_counter() - t0 < 30
    finally:
        holder.kill()
        holder.wait()
    assert not path.exists() and not list((tmp_path / "run").rglob("checkpoints"))


def test_wait_for_lock_waits_and_then_skips_what_the_other_process_finished(raw: Path, tmp_path: Path) -> None:
    cfg = translation_cfg(raw, tmp_path, "run.wait_for_lock=true")
    path = record_path(cfg, run_hash(cfg))
    path.parent.mkdir(parents=True)
    holder = hold_lock(path.with_name(f".{path.stem}.lock"), 1, str(path))
    record = run_job(cfg, tmp_path / "run")  # trains nothing: the holder's record is done when the lock frees
    holder.wait()
    assert record["status"] == "done" and not (tmp_path / "work").exists()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    from shapeshifter.experiment.run_lock import run_lock

    lock = tmp_path / ".x.lock"
    holder = hold_lock(lock, 60)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock.is_file()  # left behind, naming a dead pid
    with run_lock(lock, "x"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_record_writes_use_their_own_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One fixed temp name for every writer let two runs' records overwrite each other's half-written file."""
    import shapeshifter.experiment.records as records

    temps = []
    real = os.replace
    monkeypatch.setattr(records.os, "replace", lambda src, dst: temps.append(Path(src)) or real(src, dst))
    write_record({"status": "running"}, tmp_path / "r.json")
    write_record({"status": "done"}, tmp_path / "r.json")
    assert len(set(temps)) == 2 and all(t.parent == tmp_path for t in temps)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_a_checkpoint_write_that_fails_leaves_the_previous_file_whole(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from shapeshifter.experiment import checkpoints
    from shapeshifter.experiment.training import VerifiedCheckpointIO

    io = VerifiedCheckpointIO()
    path = tmp_path / "best.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)

    def full_disk(obj, fh):
        fh.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt"]  # no temporary file left


CHILD = """
import sys, time
from shapeshifter.cli.reproduce import child_call
child_call([sys.executable, "-c", "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); "
            "time.sleep(120)", sys.argv[1]])
"""


def test_reproduce_children_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    """`make` killed alone left reproduce's sweep running; an immediate rerun then raced it."""
    pid_file = tmp_path / "child.pid"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    parent = subprocess.Popen([sys.executable, "-c", CHILD, str(pid_file)], env=env)
    deadline = time.monotonic() + 120
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    child = int(pid_file.read_text())
    parent.kill()
    parent.wait()
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the child outlived its killed parent")


# -- 3. names stay inside their folders -----------------------------------------------------------------------
@pytest.mark.parametrize("override", ["run.name=../../etc/x", "run.name=/abs/path", "run.group=../../..",
                                      "run.name=''", "run.group=a/b"])
def test_a_name_that_leaves_its_folder_is_refused_before_any_file(raw: Path, tmp_path: Path, override: str) -> None:
    cfg = translation_cfg(raw, tmp_path, override)
    with pytest.raises(ValueError, match=r"run\.(name|group)=.*must be a plain name"):
        run_job(cfg, tmp_path / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_train_py_refuses_a_name_before_hydra_creates_its_folder(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "pipelines" / "train.py"), "run.name=../escaped",
                           f"run.outputs={tmp_path / 'outputs'}", f"run.records={tmp_path / 'records'}",
                           "logger.wandb.enabled=false"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode != 0 and "must be plain" in done.stderr, done.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# -- 4. tables validate their records -------------------------------------------------------------------------
def _with(record: dict, dotted: str, value: object) -> dict:
    out = json.loads(json.dumps(record))
    node = out
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return out


DELETE = object()
RECORD_FAULTS = [
    ("status", "running", r"not done: .*bad\.json \(running\)"),
    ("status", "failed", r"not done: .*bad\.json \(failed\)"),
    ("status", "DONE", r"bad\.json: status is 'DONE'"),
    ("status", DELETE, r"bad\.json: status is None"),
    ("metrics.test.tokenized_bleu", float("nan"), r"bad\.json: metrics\.test\.tokenized_bleu is nan"),
    ("metrics.test.tokenized_bleu", -50.0, r"bad\.json: metrics\.test\.tokenized_bleu is -50\.0: a BLEU"),
    ("metrics.test.tokenized_bleu", 1e9, r"bad\.json: metrics\.test\.tokenized_bleu is 1000000000\.0"),
    ("metrics.test.tokenized_bleu", None, r"bad\.json: metrics\.test\.tokenized_bleu must be a number"),
    ("metrics", DELETE, r"bad\.json: has no metrics"),
    ("config", "a string", r"bad\.json: config must be a mapping"),
]


@pytest.mark.parametrize(("key", "value", "message"), RECORD_FAULTS, ids=[f"{k}={v}" for k, v, _ in RECORD_FAULTS])
def test_a_table_refuses_a_bad_record_naming_it_before_any_output(tmp_path: Path, key: str, value: object,
                                                                  message: str) -> None:
    from shapeshifter.cli.tables import translation_table

    good = json.loads(SMOKE_RECORD.read_text())
    records = tmp_path / "records"
    records.mkdir()
    (records / "good.json").write_text(json.dumps(good))
    (records / "bad.json").write_text(json.dumps(_with(good, key, value)))
    with pytest.raises(ValueError, match=message):
        translation_table(records, tmp_path / "out", "t")
    assert not (tmp_path / "out").exists()


def test_glue_accuracy_outside_zero_one_is_refused(tmp_path: Path) -> None:
    from shapeshifter.experiment.records import record_problem

    glue = next(json.loads(p.read_text()) for p in (ROOT / "results" / "records" / "quality_glue").glob("*.json"))
    assert record_problem(glue) is None
    assert "lies in [0, 1]" in record_problem(_with(glue, "metrics.test.accuracy", 59.4))


def test_an_explicitly_partial_table_warns_and_leaves_unfinished_records_out(tmp_path: Path, caplog) -> None:
    from shapeshifter.experiment.records import load_records

    good = json.loads(SMOKE_RECORD.read_text())
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "run.json").write_text(json.dumps(good | {"status": "running"}))
    assert [r["_path"] for r in load_records(tmp_path, partial=True)] == [str(tmp_path / "good.json")]
    assert "run.json (running)" in caplog.text


def test_every_committed_record_passes_the_table_checks() -> None:
    from shapeshifter.experiment.records import record_problem

    paths = sorted((ROOT / "results" / "records").rglob("*.json"))
    problems = {str(p): record_problem(json.loads(p.read_text())) for p in paths}
    assert paths and not {p: m for p, m in problems.items() if m}


# -- 5. impossible or wasteful settings before work ----------------------------------------------------------
@pytest.mark.parametrize(("overrides", "message"), [
    (["shapeshift=sweep", "rank=5000"], r"factorized (attention|ffn) matrices would hold .* run\.allow_larger=true"),
    (["seed=-1"], r"seed must be a whole number in \[0, 4294967295\]"),
    (["seed=4294967296"], r"seed must be a whole number"),
])
def test_an_impossible_setting_is_refused_before_the_data_is_prepared(raw: Path, tmp_path: Path,
                                                                      overrides: list[str], message: str) -> None:
    cfg = translation_cfg(raw, tmp_path, *overrides)
    with pytest.raises(ValueError, match=message):
        run_job(cfg, tmp_path / "run")
    assert status(cfg) is None and not (tmp_path / "work").exists()


def test_a_larger_layer_is_trained_when_allowed() -> None:
    from shapeshifter.experiment.policy import check_smaller_than_dense, policy_from_config
    from shapeshifter.translation.task import check_policy_fits

    policy = policy_from_config({"layers": ["attention"], "rank": 64})
    arch = {"encoder_layers": 1, "decoder_layers": 1, "encoder_embed_dim": 32, "decoder_embed_dim": 32,
            "encoder_ffn_embed_dim": 64, "decoder_ffn_embed_dim": 64}
    with pytest.raises(ValueError, match="allow_larger"):
        check_policy_fits("transformer_iwslt_de_en", arch, policy)
    check_policy_fits("transformer_iwslt_de_en", arch, policy, allow_larger=True)
    check_smaller_than_dense(None)


def test_a_run_that_fails_after_its_record_is_written_is_marked_failed_and_reruns_clean(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shapeshifter.glue.task import GlueTask

    cfg = tiny_glue(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(GlueTask, "evaluate", lambda *a, **k: (_ for _ in ()).throw(FileNotFoundError("gone.ckpt")))
        with pytest.raises(FileNotFoundError):
            run_job(cfg, tmp_path / "run")
    record = json.loads(record_path(cfg).read_text())
    assert record["status"] == "failed" and "gone.ckpt" in record["error"]
    again = run_job(cfg, tmp_path / "run")
    assert again["status"] == "done" and "error" not in again


def test_the_local_sample_never_downloads_and_names_a_wrong_folder(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from shapeshifter.translation.data import DataError, iwslt14

    monkeypatch.setattr(iwslt14, "download_archive", lambda *a, **k: pytest.fail("a network call"))
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["data=sample_de_en", f"data.raw_dir={tmp_path / 'nowhere'}",
                                          f"data.work_dir={tmp_path / 'work'}", f"run.records={tmp_path / 'r'}",
                                          "logger.wandb.enabled=false"])
    with pytest.raises(DataError, match=rf"data\.raw_dir={tmp_path / 'nowhere'} holds no sample.*never downloads"):
        run_job(cfg, tmp_path / "run")
    assert status(cfg) is None


# -- 6. committed records are not overwritten ----------------------------------------------------------------
def test_skip_done_false_does_not_overwrite_a_done_record_unless_asked(raw: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from shapeshifter.experiment import runner

    cfg = translation_cfg(raw, tmp_path, "run.skip_done=false")
    path = record_path(cfg, run_hash(cfg))
    write_record({"status": "done", "committed": True}, path)
    with pytest.raises(ValueError, match=r"finished record .*run\.records=<a scratch folder>.*run\.replace=true"):
        run_job(cfg, tmp_path / "run")
    assert json.loads(path.read_text())["committed"] is True
    trained = []
    monkeypatch.setattr(runner, "run_task", lambda task, out, rec: trained.append(rec) or {"status": "done"})
    run_job(translation_cfg(raw, tmp_path, "run.skip_done=false", "run.replace=true"), tmp_path / "run")
    assert trained == [path]


# -- 6b. W&B: an unreachable server is not waited for, and the warning names the real cause -------------------
class FakeWandbLogger:
    """Records the modes a run was started in; ``fail_online``: the server answers and refuses the run."""

    modes: list[str] = []
    fail_online: Exception | None = None

    def __init__(self, mode: str, **kwargs: object) -> None:
        self.mode = mode
        FakeWandbLogger.modes.append(mode)

    @property
    def experiment(self) -> object:
        if self.mode == "online" and FakeWandbLogger.fail_online is not None:
            raise FakeWandbLogger.fail_online
        return self


@pytest.fixture()
def fake_wandb(monkeypatch: pytest.MonkeyPatch) -> type[FakeWandbLogger]:
    import lightning.pytorch.loggers as loggers

    monkeypatch.setattr(loggers, "WandbLogger", FakeWandbLogger)
    monkeypatch.setattr(FakeWandbLogger, "modes", [])
    monkeypatch.setattr(FakeWandbLogger, "fail_online", None)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return FakeWandbLogger


def _wandb_settings(timeout: float = 3) -> dict:
    """The settings of a ``logger.wandb`` node that `make_loggers` passes to `wandb_logger`."""
    return {"mode": None, "init_timeout": timeout, "project": "p"}


def test_an_unreachable_wandb_server_goes_offline_without_trying_online(fake_wandb, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        caplog) -> None:
    """wandb's own start against a closed port took ~24 s with init_timeout=3 before it fell back."""
    import socket

    from shapeshifter.experiment.loggers import wandb_logger

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    wandb_logger(tmp_path, "r", None, {}, **_wandb_settings())
    assert fake_wandb.modes == ["offline"]
    assert f"cannot reach the server http://127.0.0.1:{port} (ConnectionRefusedError" in caplog.text
    assert "logger.wandb.init_timeout=3.0s" in caplog.text and "wandb sync" in caplog.text


def test_a_wandb_server_that_never_answers_is_not_waited_for(fake_wandb, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    """A server that accepts connections and never answers: the failed online start also delayed the exit."""
    import socket

    from shapeshifter.experiment.loggers import wandb_logger

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        t0 = time.perf_counter()
        wandb_logger(tmp_path, "r", None, {}, **_wandb_settings(timeout=1))
        assert time.perf_counter() - t0 < 20
    assert fake_wandb.modes == ["offline"] and "TimeoutError" in caplog.text
    assert "logger.wandb.init_timeout=1.0s" in caplog.text


def test_a_wandb_server_that_refuses_the_run_is_not_called_a_timeout(fake_wandb, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     caplog) -> None:
    import http.server
    import threading

    from shapeshifter.experiment.loggers import wandb_logger

    class Unauthorized(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 - the handler's name is http.server's
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Unauthorized)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}")
        fake_wandb.fail_online = RuntimeError("HTTP 401: user is not logged in")
        wandb_logger(tmp_path, "r", None, {}, **_wandb_settings())
    finally:
        server.shutdown()
        server.server_close()
    assert fake_wandb.modes == ["online", "offline"]
    assert "refused the run (check WANDB_API_KEY" in caplog.text and "HTTP 401" in caplog.text
    assert "in time" not in caplog.text
