"""Errors a user can fix are a message and a non-zero exit status, not a traceback: config mistakes, a missing run
folder, a device this machine lacks, an export folder that exists, input that is not UTF-8 (naming the line), a
parallel corpus with a missing line (naming it). ``HYDRA_FULL_ERROR=1`` / ``--debug`` bring the traceback back.
An over-long input line is cut with a warning that names the input line.

Each case runs the entry point as a user does (a subprocess) and counts the lines on stderr: at most 4.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fairseq.data import Dictionary

from shapeshifter.cli.errors import check_device, fail, one_line, one_line_errors
from shapeshifter.translation.translator import Translator

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "pipelines"
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: --device cuda is valid")


def run(script: str, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", **(env or {})}
    environ.pop("HYDRA_FULL_ERROR", None) if "HYDRA_FULL_ERROR" not in (env or {}) else None
    return subprocess.run([sys.executable, str(PIPELINES / script), *args], capture_output=True, env=environ,
                          input=stdin, timeout=600, cwd=cwd)


def stderr_lines(done: subprocess.CompletedProcess) -> list[str]:
    return done.stderr.decode("utf-8", "replace").strip().splitlines()


def assert_one_line_error(done: subprocess.CompletedProcess, *needles: str) -> str:
    lines = stderr_lines(done)
    text = "\n".join(lines)
    assert done.returncode != 0, text[-2000:]
    assert len(lines) <= 4 and "Traceback" not in text, text[-3000:]
    for needle in needles:
        assert needle in text, text
    return text


# (overrides, what the message must say): composed fine by Hydra, refused by our validation before any work
CONFIG_ERRORS = [
    (["+optim.lrr=1"], "optim.lrr is not a setting; did you mean optim.lr?"),
    (["shapeshift=sweep", "rank=1.5"], "shapeshift.rank must be a whole number, got 1.5"),
    (["trainer.max_epochs=0"], "trainer.max_epochs must be >= 1"),
    (["data=parallel_files", "data.source_lang=de", "data.target_lang=en"], "data.trainpref must be set"),
    (["run.name=../x"], "run.name '../x' contains '/'"),
    (["run.group=.."], "run.group '..' is '..'"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "message"), CONFIG_ERRORS, ids=[" ".join(o) for o, _ in CONFIG_ERRORS])
def test_a_config_error_is_one_line_and_a_non_zero_exit(tmp_path: Path, overrides: list[str], message: str) -> None:
    done = run("train.py", "+scale=smoke", *overrides, f"run.records={tmp_path / 'records'}",
               f"run.outputs={tmp_path / 'outputs'}")
    text = assert_one_line_error(done, "train.py: error: " + message, "HYDRA_FULL_ERROR=1")
    assert done.returncode == 2, text
    assert not (tmp_path / "records").exists()
    if overrides == ["+optim.lrr=1"]:  # the README shows this one as it is printed
        assert f"```\n{text}\n```" in (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_hydra_full_error_shows_the_traceback(tmp_path: Path) -> None:
    done = run("train.py", "+scale=smoke", "+optim.lrr=1", f"run.records={tmp_path}", env={"HYDRA_FULL_ERROR": "1"})
    assert done.returncode != 0 and b"Traceback" in done.stderr and b"optim.lrr is not a setting" in done.stderr


@pytest.mark.slow
def test_a_parallel_corpus_with_a_missing_line_is_a_short_error_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "train.de").write_text("".join(f"Satz {i} ist hier.\n" for i in range(40)))
    (tmp_path / "train.en").write_text("".join(f"Sentence {i} is here.\n" for i in range(39)))
    done = run("train.py", "+scale=smoke", "data=parallel_files", f"data.trainpref={tmp_path / 'train'}",
               "data.source_lang=de", "data.target_lang=en", f"data.work_dir={tmp_path / 'work'}",
               f"run.records={tmp_path / 'records'}", f"run.outputs={tmp_path / 'outputs'}")
    assert_one_line_error(done, "train.de has 40 lines", "train.en has 39", "line 40 of")


@pytest.mark.slow
def test_a_missing_run_folder_is_one_line_for_evaluate_export_and_translate(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-run")
    assert_one_line_error(run("evaluate.py", missing), "evaluate.py: error:", "no-such-run")
    assert_one_line_error(run("export.py", missing, str(tmp_path / "model")), "export.py: error:", "no-such-run")
    assert_one_line_error(run("translate.py", missing, stdin=b"Hallo.\n"), "translate.py: error:", "no-such-run")


@pytest.mark.slow
def test_exporting_onto_an_earlier_export_names_overwrite_and_any_other_folder_is_refused(tmp_path: Path) -> None:
    earlier = tmp_path / "models" / "de-en"
    earlier.mkdir(parents=True)
    (earlier / "manifest.json").write_text("{}")
    assert_one_line_error(run("export.py", str(tmp_path / "run"), str(earlier)), "holds an earlier export",
                          "--overwrite")
    assert_one_line_error(run("export.py", str(tmp_path / "run"), str(tmp_path)), "is not an export")


@pytest.mark.slow
@NO_CUDA
def test_translate_on_cuda_without_cuda_is_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run("translate.py", str(tmp_path), "--device", "cuda", stdin=b"Hallo.\n"),
                          "--device cuda: CUDA is not available on this machine", "use --device cpu")


@pytest.mark.slow
def test_input_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "talk.de").write_bytes(b"Guten Morgen.\nWie geht es?\nSch\xf6n.\n")
    assert_one_line_error(run("translate.py", str(tmp_path), "--input", str(tmp_path / "talk.de")),
                          "talk.de:3: byte 0xf6 (column 4) is not UTF-8")
    assert_one_line_error(run("translate.py", str(tmp_path), stdin=b"ok\n\xff\n"), "stdin:2: byte 0xff")


def test_check_device_accepts_cpu_and_names_a_bad_device() -> None:
    check_device("cpu")
    with pytest.raises(ValueError, match="--device tpu9: not a torch device"):
        check_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cuda:0: CUDA is not available"):
            check_device("cuda:0")


def test_one_line_errors_keep_the_first_line_of_omegaconf_errors_and_let_other_errors_through(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(MissingMandatoryValue) as info:
        OmegaConf.create({"data": {"trainpref": "???"}}).data.trainpref  # noqa: B018
    assert one_line(info.value) == "Missing mandatory value: data.trainpref"
    with pytest.raises(SystemExit) as stop, one_line_errors("prog"):
        raise ValueError("x must be\n  positive")
    assert stop.value.code == 2 and capsys.readouterr().err.splitlines()[0] == "prog: error: x must be positive"
    with pytest.raises(ZeroDivisionError), one_line_errors("prog"):  # a bug keeps its traceback
        raise ZeroDivisionError
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ValueError), one_line_errors("prog"):
        raise ValueError("asked for the traceback")
    with pytest.raises(SystemExit):
        fail("prog", "plain text")


class _Encoder:
    def max_positions(self) -> int:
        return 8


class _Model:
    encoder = _Encoder()


def test_an_over_long_input_line_is_cut_with_a_warning_naming_the_input_line(
        caplog: pytest.LogCaptureFixture) -> None:
    translator = object.__new__(Translator)  # only the vocabulary and the encoder's positions matter here
    translator.model, translator.src_dict = _Model(), Dictionary()
    with caplog.at_level(logging.WARNING, logger="shapeshifter.translation.translator"):
        tokens = translator.source_tokens(["a b", "a " * 20, "b"], line_numbers=[1, 4, 7])
    assert [len(t) for t in tokens] == [3, 8, 2]
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("input line 4 has 20 subwords, more than the model's 8 positions")
