"""A GLUE run SIGKILLed in the middle of an epoch resumes from ``last.ckpt`` and ends where an uninterrupted run
ends: same optimizer steps, same metrics (CPU, one thread), a record that is "done" only then.

The kill comes from inside the real entry point (``pipelines/train.py`` run by a wrapper that patches the
module's ``on_train_batch_end`` to SIGKILL its own process after N steps), so the moment is exact and nothing
in the project carries a test hook.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KILL_AT_STEP = 9  # 6 steps per epoch below: in the middle of the second epoch, after epoch 1's last.ckpt
WRAPPER = """
import os, runpy, signal, sys
from shapeshifter.glue.module import GlueClassifierModule

kill_at = int(os.environ.get("KILL_AT_STEP") or 0)
kill_with = getattr(signal, os.environ.get("KILL_SIGNAL") or "SIGKILL")
if kill_at:
    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.global_step >= kill_at:
            os.kill(os.getpid(), kill_with)
    GlueClassifierModule.on_train_batch_end = on_train_batch_end
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path(sys.argv.pop(1), run_name="__main__")
"""


def _train(tmp: Path, kill_at: int | None = None, epochs: int = 2, kill_with: str = "SIGKILL"
           ) -> subprocess.CompletedProcess:
    overrides = [
        "experiment=glue/snli_demo", "glue.max_examples=192", "glue.batch_size=32", "glue.max_length=48",
        "arch.d_model=32", "arch.d_ff=64", f"trainer.max_epochs={epochs}", "trainer.progress_bar=none",
        "+trainer.enable_model_summary=false", "logger.wandb.enabled=false", "run.threads=1",
        f"run.records={tmp / 'records'}", f"run.outputs={tmp / 'outputs'}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KILL_AT_STEP": str(kill_at or ""), "KILL_SIGNAL": kill_with}
    cmd = [sys.executable, "-c", WRAPPER, str(ROOT / "pipelines" / "train.py"), *overrides]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp)


def _record(tmp: Path) -> dict:
    (path,) = (tmp / "records" / "demo_glue").glob("*.json")
    return json.loads(path.read_text())


@pytest.mark.slow
def test_killed_mid_epoch_resumes_to_the_same_end_as_an_uninterrupted_run(tmp_path: Path) -> None:
    killed_dir, straight_dir = tmp_path / "killed", tmp_path / "straight"
    killed_dir.mkdir()
    straight_dir.mkdir()

    killed = _train(killed_dir, kill_at=KILL_AT_STEP)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert _record(killed_dir)["status"] == "running"
    # written at the end of epoch 1, in <job folder>/<config hash>/checkpoints
    (last,) = (killed_dir / "outputs").glob("demo_glue/*/*/checkpoints/last.ckpt")

    resumed = _train(killed_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = _train(straight_dir)
    assert straight.returncode == 0, straight.stderr[-3000:]

    a, b = _record(killed_dir), _record(straight_dir)
    assert a["status"] == b["status"] == "done"
    assert a["resumed_from"] == str(last.relative_to(killed_dir)) and b["resumed_from"] is None  # cwd-relative
    assert a["schedule"]["max_steps"] == b["schedule"]["max_steps"] == 12
    assert a["training"]["steps"] == b["training"]["steps"] == a["timings"]["train_steps"] == 12
    assert a["training"]["epochs"] == b["training"]["epochs"] == 2
    assert a["training"]["stopped_by"] == b["training"]["stopped_by"] == "max_epochs"
    # same batches (order drawn from (seed, epoch)) and same dropout masks (seed + step): same model
    assert a["training"]["best"] == b["training"]["best"]
    # the CSV log survives the kill: the resumed run's curve has both epochs, equal to the uninterrupted one's
    assert [p["epoch"] for p in a["training"]["curve"]] == [p["epoch"] for p in b["training"]["curve"]] == [0, 1]
    assert [p["val/accuracy"] for p in a["training"]["curve"]] == [p["val/accuracy"] for p in b["training"]["curve"]]
    assert a["metrics"]["validation"] == pytest.approx(b["metrics"]["validation"], rel=1e-6)
    assert a["metrics"]["test"] == pytest.approx(b["metrics"]["test"], rel=1e-6)


def test_a_job_stopped_by_sigterm_exits_143_and_leaves_its_record_unfinished(tmp_path: Path) -> None:
    """A scheduler's SIGTERM (preemption, a time limit) stops the fit at Lightning's next check; the job must not
    exit 0 as if it had finished (Lightning's own exception carries no code), and its record stays "running" for
    the next attempt to resume."""
    stopped = _train(tmp_path, kill_at=3, epochs=1, kill_with="SIGTERM")
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    assert _record(tmp_path)["status"] == "running"


@pytest.mark.slow
def test_a_damaged_last_checkpoint_is_moved_aside_and_the_previous_epoch_resumed(tmp_path: Path) -> None:
    killed_dir, straight_dir = tmp_path / "killed", tmp_path / "straight"
    killed_dir.mkdir()
    straight_dir.mkdir()

    killed = _train(killed_dir, kill_at=15, epochs=3)  # in epoch 3: last.ckpt is epoch 2, last.prev.ckpt epoch 1
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    (last,) = (killed_dir / "outputs").glob("demo_glue/*/*/checkpoints/last.ckpt")
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a torn file

    resumed = _train(killed_dir, epochs=3)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "not a readable checkpoint" in resumed.stdout + resumed.stderr
    straight = _train(straight_dir, epochs=3)
    assert straight.returncode == 0, straight.stderr[-3000:]

    a, b = _record(killed_dir), _record(straight_dir)
    assert a["resumed_from"] == str(last.with_name("last.prev.ckpt").relative_to(killed_dir))
    assert last.with_name("last.ckpt.corrupt").is_file()
    assert a["status"] == b["status"] == "done" and a["training"]["steps"] == b["training"]["steps"] == 18
    assert a["training"]["best"] == b["training"]["best"]
    # the CSV log survives the kill: the curve has every epoch once (epoch 2 from the rerun), as uninterrupted
    assert [p["epoch"] for p in a["training"]["curve"]] == [p["epoch"] for p in b["training"]["curve"]] == [0, 1, 2]
    assert [p["val/accuracy"] for p in a["training"]["curve"]] == [p["val/accuracy"] for p in b["training"]["curve"]]
    assert a["metrics"]["validation"] == pytest.approx(b["metrics"]["validation"], rel=1e-6)
