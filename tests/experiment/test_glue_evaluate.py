"""``pipelines/evaluate.py`` on a GLUE run: a checkpoint scored again without training reproduces the run's own
scores; a missing, damaged or foreign checkpoint is one line on stderr, and nothing in a checkpoint is executed."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from shapeshifter.cli.evaluate import main as evaluate  # noqa: E402
from shapeshifter.experiment.runner import run_job  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


class Trap:
    """Unpickling this would run ``Path.touch`` on the marker file: the safe loader must refuse it first."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def glue_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    """One epoch of a narrow encoder on 64 SNLI pairs, in a run folder with its composed config (as Hydra
    writes it)."""
    tmp = tmp_path_factory.mktemp("glue_eval")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=glue/snli_demo", "glue.max_examples=64", "glue.batch_size=32", "glue.max_length=48",
            "arch.d_model=32", "arch.d_ff=64", "trainer.max_epochs=1", "trainer.progress_bar=none",
            "logger.wandb.enabled=false", "+trainer.enable_model_summary=false", f"run.records={tmp / 'records'}"])
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    run = tmp / "run"
    record = run_job(cfg, run)
    yield run, record
    torch.set_num_threads(before)


def one_line_error(*argv: str) -> str:
    """The error evaluate prints: one line (plus the hint how to see the traceback) and a non-zero exit."""
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stderr(err):
        evaluate(list(argv))
    assert exit_info.value.code != 0
    lines = err.getvalue().splitlines()
    assert len(lines) <= 2 and "Traceback" not in err.getvalue(), err.getvalue()
    return lines[0]


def test_a_checkpoint_scored_again_reproduces_the_runs_scores(glue_run: tuple[Path, dict], capsys) -> None:
    run, record = glue_run
    assert evaluate([str(run), "--split", "valid", "--threads", "1"]) == 0
    (result_file,) = (run / "eval").glob("valid-*.json")
    valid = json.loads(result_file.read_text())
    assert valid["metrics"] == pytest.approx(record["metrics"]["validation"], abs=1e-6)
    assert valid["checkpoint"].endswith("best.ckpt") and valid["examples"] == {"validation": 64}
    assert "wrote" in capsys.readouterr().out
    best = Path(valid["checkpoint"])
    assert evaluate([str(best), "--threads", "1"]) == 0  # a checkpoint file: its run folder is a parent
    test = json.loads((run / "eval" / "test-best.json").read_text())
    assert test["metrics"] == pytest.approx(record["metrics"]["test"], abs=1e-6) and test["main_metric"] == "accuracy"


def test_missing_damaged_and_foreign_checkpoints_are_one_line(glue_run: tuple[Path, dict], tmp_path: Path) -> None:
    run, _ = glue_run
    assert "checkpoint not found" in one_line_error(str(run), "--checkpoint", str(tmp_path / "nope.ckpt"))
    best = next(run.glob("*/checkpoints/best.ckpt"))
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(best.read_bytes()[:1000])
    assert "not a readable checkpoint" in one_line_error(str(run), "--checkpoint", str(damaged))
    marker = tmp_path / "executed"
    trap = tmp_path / "trap.ckpt"
    torch.save({"state_dict": {}, "extra": Trap(marker)}, trap)
    assert "Unsupported global" in one_line_error(str(run), "--checkpoint", str(trap))
    assert not marker.exists()  # the object in the file was never built
    foreign = tmp_path / "other" / "checkpoints"
    foreign.mkdir(parents=True)
    (foreign / "CONFIG_HASH").write_text("0123456789ab\n")
    shutil.copy(best, foreign / "best.ckpt")
    assert "belongs to config 0123456789ab" in one_line_error(str(run), "--checkpoint", str(foreign / "best.ckpt"))
    assert "translation options" in one_line_error(str(run), "--beam", "2")
    assert "not inside a run folder" in one_line_error(str(damaged))
