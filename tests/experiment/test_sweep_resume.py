"""A parallel sweep (``train.py -m launcher=local``: two 1-thread joblib workers) SIGKILLed with a job in the middle
of its training, then rerun with the same command: every job ends "done" exactly once (a job finished before the
kill is skipped, not rerun), the interrupted one resumes from its ``last.ckpt``, and every record holds the same
training and scores as an uninterrupted sweep of the same command.

The kill hits the whole process group (the Hydra parent and both workers), as a lost node or an OOM kill would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
JOBS = ("snli_sample-dense-s1", "snli_sample-glue-r1-emb16-s1")
SWEEP = ["-m", "launcher=local", "experiment=glue/snli_demo", "shapeshift=dense,glue_r1_emb16",
         "glue.max_examples=192", "glue.batch_size=32", "glue.max_length=48", "arch.d_model=32", "arch.d_ff=64",
         "trainer.max_epochs=3", "trainer.progress_bar=none", "+trainer.enable_model_summary=false", "logger=csv"]


def _command(tmp: Path) -> list[str]:
    return [sys.executable, str(ROOT / "pipelines" / "train.py"), *SWEEP, f"run.records={tmp / 'records'}",
            f"run.outputs={tmp / 'outputs'}"]


def _records(tmp: Path) -> dict[str, dict]:
    """``{record file name: record}`` of the sweep (a file being replaced right now is skipped)."""
    out = {}
    for path in (tmp / "records" / "demo_glue").glob("*.json"):
        try:
            out[path.name] = json.loads(path.read_text()) | {"_mtime": path.stat().st_mtime_ns}
        except json.JSONDecodeError:
            pass
    return out


def _mid_training(tmp: Path) -> bool:
    """Some job has finished an epoch (its ``last.ckpt`` exists) and its record is not done yet."""
    records = _records(tmp)
    for last in (tmp / "outputs" / "demo_glue").glob("*/*/checkpoints/last.ckpt"):
        name, digest = last.parents[2].name, last.parents[1].name
        if records.get(f"{name}-{digest}.json", {}).get("status") == "running":
            return True
    return False


def _run(tmp: Path, kill_mid_training: bool = False) -> int:
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with (tmp / "sweep.log").open("a") as log:
        proc = subprocess.Popen(_command(tmp), cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.monotonic() + 600
        while kill_mid_training and proc.poll() is None and time.monotonic() < deadline:
            if _mid_training(tmp):
                os.killpg(proc.pid, signal.SIGKILL)  # the parent and both workers
                break
            time.sleep(0.05)
        return proc.wait(timeout=600)


def _final_weights(tmp: Path, name: str) -> dict:
    """The model weights of a job's ``last.ckpt`` (its state after the last epoch), read with weights_only."""
    from shapeshifter.experiment.checkpoints import load_checkpoint

    job, digest = name.removesuffix(".json").rsplit("-", 1)
    return load_checkpoint(tmp / "outputs" / "demo_glue" / job / digest / "checkpoints" / "last.ckpt")["state_dict"]


def _same_results(a: dict, b: dict) -> None:
    assert a["config_hash"] == b["config_hash"] and a["status"] == b["status"] == "done"
    assert a["training"]["steps"] == b["training"]["steps"] == 18 and a["training"]["epochs"] == 3
    assert a["training"]["best"] == pytest.approx(b["training"]["best"], rel=1e-6)
    for split in ("validation", "test"):
        assert a["metrics"][split] == pytest.approx(b["metrics"][split], rel=1e-6), split


@pytest.mark.slow
def test_a_killed_parallel_sweep_finishes_every_job_once_with_the_uninterrupted_results(tmp_path: Path) -> None:
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    assert _run(killed, kill_mid_training=True) == -signal.SIGKILL, (killed / "sweep.log").read_text()[-3000:]
    before = _records(killed)
    running = [name for name, rec in before.items() if rec["status"] == "running"]
    assert running, "the sweep should have been killed with a job in training"

    assert _run(killed) == 0, (killed / "sweep.log").read_text()[-3000:]
    assert _run(straight) == 0, (straight / "sweep.log").read_text()[-3000:]
    after, reference = _records(killed), _records(straight)
    assert sorted(after) == sorted(reference) and len(after) == len(JOBS)  # one record per job, no duplicates
    assert {name.rsplit("-", 1)[0] for name in after} == set(JOBS)
    for name, rec in before.items():
        if rec["status"] == "done":  # finished before the kill: skipped by the rerun, not run again
            assert after[name]["_mtime"] == rec["_mtime"]
    assert any(after[name]["resumed_from"] for name in running)  # mid-training: resumed from its last.ckpt
    for name in after:
        _same_results(after[name], reference[name])
        resumed, uninterrupted = _final_weights(killed, name), _final_weights(straight, name)
        assert resumed.keys() == uninterrupted.keys()  # same trained weights, not only the same (coarse) scores
        for key, value in resumed.items():
            assert torch.allclose(value, uninterrupted[key], rtol=1e-5, atol=1e-6), (name, key)
    assert {rec["machine"]["torch_threads"] for rec in after.values()} == {1}  # launcher=local: one thread per job
