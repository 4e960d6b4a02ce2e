"""The one thread-count rule (shapeshifter.threads) and the entry points that follow it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from shapeshifter import threads
from shapeshifter.threads import JOBS_ENV, add_threads_argument, apply_threads, resolve_threads

ROOT = Path(__file__).resolve().parents[2]
# every pipeline script that runs torch work; Hydra jobs take run.threads and follow the same rule (run_job)
TORCH_SCRIPTS = ["analyze_embeddings.py", "analyze_weights.py", "bench_layers.py", "bench_model.py", "bench_peers.py",
                 "device_check.py", "evaluate.py", "glue_quick_check.py", "profile_step.py", "reproduce.py"]


def test_explicit_count_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JOBS_ENV, "2")
    assert resolve_threads(3) == 3
    with pytest.raises(ValueError, match=">= 1"):
        resolve_threads(0)


def test_several_jobs_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setenv(JOBS_ENV, "2")
    assert resolve_threads(None) == 1
    monkeypatch.setenv(JOBS_ENV, "8")  # more jobs than cores: still one thread each
    assert resolve_threads(None) == 1
    monkeypatch.setattr(threads, "available_cores", lambda: 16)
    assert resolve_threads(None, jobs=4) == 4  # the caller's count beats the environment's


def test_one_job_leaves_torch_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(JOBS_ENV, raising=False)
    assert resolve_threads(None) is None
    monkeypatch.setenv(JOBS_ENV, "1")
    assert resolve_threads(None) is None
    monkeypatch.setenv(JOBS_ENV, "two")
    with pytest.raises(ValueError, match=JOBS_ENV):
        resolve_threads(None)


def test_apply_sets_torch_and_reports_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.delenv(JOBS_ENV, raising=False)
    try:
        assert apply_threads(1) == 1 == torch.get_num_threads()
        assert apply_threads(None) == 1  # nothing asked: left as it is
    finally:
        torch.set_num_threads(before)


def test_threads_argument_rejects_zero() -> None:
    parser = argparse.ArgumentParser()
    add_threads_argument(parser)
    assert parser.parse_args([]).threads is None
    assert parser.parse_args(["--threads", "2"]).threads == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["--threads", "0"])


@pytest.mark.parametrize("script", TORCH_SCRIPTS)
def test_every_torch_entry_point_takes_threads(script: str) -> None:
    import subprocess
    import sys

    shown = subprocess.run([sys.executable, str(ROOT / "pipelines" / script), "--help"], capture_output=True,
                           text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "--threads N" in shown.stdout


def test_translate_and_export_take_threads() -> None:
    from shapeshifter.cli.translate import translate_parser

    assert translate_parser().parse_args(["model"]).threads == 1  # documented default of translate.py
    text = (ROOT / "src/shapeshifter/cli/translate.py").read_text()
    assert text.count("add_threads_argument(") == 2 and text.count("apply_threads(") == 2
