"""Export a tiny shapeshifted run and translate with it: the export stands alone, the CLI keeps line order,
nbest/fairseq output, and damaged exports are refused with one line naming the file."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from tiny_configs import TINY_TRANSLATION

from shapeshifter.cli.translate import export_main, fairseq_lines, read_sentences, translate_main
from shapeshifter.experiment.runner import run_job
from shapeshifter.translation import translator as engine
from shapeshifter.translation.data.smoke import slice_iwslt_raw
from shapeshifter.translation.data.text import read_lines
from shapeshifter.translation.export import MANIFEST, ExportError, load_export
from shapeshifter.translation.run_model import export_run, load_translator

ROOT = Path(__file__).resolve().parents[2]
TRANSLATE = ROOT / "pipelines" / "translate.py"
TINY = [*TINY_TRANSLATION, "eval.bleu_max_sentences=8",
        "shapeshift=r1_emb16"]  # factorized layers and a tied output projection sharing the embedding's factors
FIXED_LENGTH = ["--max-len-a", "0", "--max-len-b", "12"]  # fairseq sizes max length by the longest in a batch


@dataclass
class Trained:
    root: Path
    run_dir: Path
    export_dir: Path
    sentences: list[str]  # 50 German lines of the sample, one empty


def _run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TRANSLATE), *args], input=stdin, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("translate")
    slice_iwslt_raw(root / "raw", n_train_lines=240, n_segs=6)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"data.raw_dir={root / 'raw'}", f"data.work_dir={root / 'work'}",
                                          f"run.records={root / 'records'}", *TINY])
    run_dir = root / "run"
    run_job(cfg, run_dir)
    assert export_main([str(run_dir), str(root / "export")]) == 0
    sentences = read_lines(root / "work" / "train.raw.de")[:49]
    return Trained(root, run_dir, root / "export", sentences[:7] + [""] + sentences[7:])


def _copy(export_dir: Path, dst: Path) -> Path:
    return Path(shutil.copytree(export_dir, dst))


def _rehash(folder: Path, name: str) -> None:
    """Make the manifest vouch for an edited file, so a check behind the checksum is what refuses it."""
    from shapeshifter.experiment.records import file_sha256

    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][name] = file_sha256(folder / name)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_export_stores_each_tensor_once_and_records_ties(trained: Trained, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    folder = trained.export_dir
    manifest = json.loads((folder / MANIFEST).read_text())
    config = json.loads((folder / "config.json").read_text())
    assert manifest["format_version"] == 1 and set(manifest["files"]) == {p.name for p in folder.iterdir()} - {
        MANIFEST}
    assert set(manifest["files"]) == {"config.json", "model.safetensors", "dict.de.txt", "dict.en.txt", "bpe.codes"}
    assert manifest["source"]["checkpoints"][0]["name"].startswith("best-")  # the run's evaluated weights
    ties = config["weights"]["ties"]
    assert ties and all("output_projection" in alias and "embed_tokens" in name for alias, name in ties.items())
    stored = load_file(str(folder / "model.safetensors"))
    assert not set(ties) & set(stored) and set(ties.values()) <= set(stored)
    assert any(k.endswith("matrix.factors.0") for k in stored)  # factorized weights, not dense ones
    assert config["text"]["src_lang"] == "de" and config["text"]["lowercase"] is True
    assert config["model"]["policy"]["embedding"]["rank"] == 16
    # exporting again gives the same bytes (nothing time- or machine-dependent is written)
    again = export_run(trained.run_dir, tmp_path / "again")
    assert all((again / n).read_bytes() == (folder / n).read_bytes() for n in [*manifest["files"], MANIFEST])
    with pytest.raises(FileExistsError, match="exists"):
        export_run(trained.run_dir, tmp_path / "again")


def test_python_api_matches_the_run_folder_and_keeps_order(trained: Trained) -> None:
    from_run = load_translator(trained.run_dir)
    from_export = load_translator(trained.export_dir)
    sentences = trained.sentences[:12]
    assert from_export.translate(sentences) == from_run.translate(sentences)
    # the engine's own loader (README: shapeshifter.translation.translator) reads exports, never a run folder
    assert engine.load_translator(trained.export_dir).translate(sentences) == from_export.translate(sentences)
    with pytest.raises(ExportError, match="manifest.json not found"):
        engine.load_translator(trained.run_dir)
    texts = from_export.translate(sentences, max_len_a=0, max_len_b=12, batch_size=4)
    one_by_one = [from_export.translate([s], max_len_a=0, max_len_b=12)[0] for s in sentences]
    assert texts == one_by_one and texts[7] == "" and all(texts[:7])
    nbest = from_export.hypotheses(sentences, beam=3, nbest=3, max_len_a=0, max_len_b=12)
    assert all(len(h) == 3 and h[0].score >= h[1].score >= h[2].score for h in nbest)
    assert nbest[7][0].text == "" and nbest[0][0].positional_scores
    two = from_export.translate(sentences[:2], beam=3, nbest=2, max_len_a=0, max_len_b=12)
    assert two[0] == [h.text for h in nbest[0][:2]]
    with pytest.raises(ValueError, match="nbest"):
        from_export.translate(sentences, beam=2, nbest=3)


def test_fairseq_format_and_nbest(trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = tmp_path / "in.de"
    source.write_text("Das Haus ist klein.\n\nDer Hund.\n", encoding="utf-8")
    assert translate_main([str(trained.export_dir), "--input", str(source), "--format", "fairseq",
                           "--nbest", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [x.split("\t")[0] for x in lines] == [f"{t}-{i}" for i in range(3) for t in ["S"] + ["H", "D", "P"] * 2]
    assert lines[0] == "S-0\tdas haus ist klein ."  # the recipe's tokenization and lowercasing
    h_score = float(lines[1].split("\t")[1])
    p_scores = [float(x) for x in lines[3].split("\t")[1].split()]
    tokens = len(lines[1].split("\t")[2].split())
    assert tokens <= len(p_scores) and h_score == pytest.approx(sum(p_scores) / len(p_scores), abs=1e-3)
    assert lines[7] == "S-1\t" and lines[8] == "H-1\t0.0\t"  # empty in, empty out
    assert translate_main([str(trained.export_dir), "--input", str(source), "--nbest", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 6  # text format: nbest lines per input


def test_fairseq_lines_convert_scores_to_base_2() -> None:
    from shapeshifter.translation.translator import Hypothesis

    hyp = Hypothesis(text="Hello.", tokens="hello .", score=-math.log(2), positional_scores=(-math.log(4), 0.0))
    assert fairseq_lines(3, "hallo .", [hyp]) == ["S-3\thallo .", "H-3\t-1.0\thello .", "D-3\t-1.0\tHello.",
                                                  "P-3\t-2.0000 0.0000"]


def test_read_sentences_splits_on_newlines_only(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes("a\r\n\nb\u2028c\n".encode())
    assert read_sentences(path) == ["a", "", "b\u2028c"]
    path.write_bytes(b"")
    assert read_sentences(path) == []


def test_export_translates_in_a_fresh_process_without_run_folder_or_data(trained: Trained, tmp_path: Path) -> None:
    source = tmp_path / "fifty.de"
    source.write_text("\n".join(trained.sentences) + "\n", encoding="utf-8")
    expected = load_translator(trained.run_dir).translate(trained.sentences, max_len_a=0, max_len_b=12,
                                                           batch_size=1)  # one by one: order by construction
    export = _copy(trained.export_dir, tmp_path / "model")
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    moved = [trained.run_dir, trained.root / "work", trained.root / "raw"]
    for path in moved:
        path.rename(hidden / path.name)
    try:
        done = _run_cli(str(export), "--input", str(source), "--batch-size", "8", *FIXED_LENGTH)
    finally:
        for path in moved:
            (hidden / path.name).rename(path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout.splitlines()
    assert len(out) == 50 and out == expected and out[7] == ""


def test_stdin_three_lines_with_an_empty_one(trained: Trained) -> None:
    lines = [trained.sentences[0], "", trained.sentences[1]]
    done = _run_cli(str(trained.export_dir), *FIXED_LENGTH, stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr[-2000:]
    expected = load_translator(trained.export_dir).translate(lines, max_len_a=0, max_len_b=12, batch_size=1)
    assert done.stdout.split("\n") == [*expected, ""] and expected[1] == "" and all(expected[::2])


def test_damaged_export_is_one_line_exit_2_without_traceback(trained: Trained, tmp_path: Path) -> None:
    garbled = _copy(trained.export_dir, tmp_path / "garbled")
    data = bytearray((garbled / "dict.en.txt").read_bytes())
    data[5] ^= 1  # one byte changed
    (garbled / "dict.en.txt").write_bytes(bytes(data))
    done = _run_cli(str(garbled), stdin="Hallo.\n")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "dict.en.txt" in done.stderr and "sha256" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("damage", ["missing", "garbled", "version", "no_manifest", "weights_vs_config"])
def test_refusals_name_the_file(trained: Trained, tmp_path: Path, damage: str,
                                capsys: pytest.CaptureFixture) -> None:
    folder = _copy(trained.export_dir, tmp_path / "model")
    if damage == "missing":
        (folder / "bpe.codes").unlink()
        named = "bpe.codes is missing"
    elif damage == "garbled":
        data = bytearray((folder / "model.safetensors").read_bytes())
        data[-1] ^= 1
        (folder / "model.safetensors").write_bytes(bytes(data))
        named = "model.safetensors does not match its sha256"
    elif damage == "version":
        manifest = json.loads((folder / MANIFEST).read_text())
        (folder / MANIFEST).write_text(json.dumps({**manifest, "format_version": 99}))
        named = "manifest.json: format version 99 is not supported"
    elif damage == "no_manifest":
        (folder / MANIFEST).unlink()
        named = "manifest.json not found"
    else:  # a config that builds another model than the weights were trained for, vouched for by the manifest
        config = json.loads((folder / "config.json").read_text())
        config["model"]["overrides"]["encoder_ffn_embed_dim"] = 128
        (folder / "config.json").write_text(json.dumps(config))
        _rehash(folder, "config.json")
        named = "model.safetensors does not match the model"
    with pytest.raises(ExportError, match=named):
        load_export(folder)
    source = tmp_path / "in.de"
    source.write_text("Hallo.\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        translate_main([str(folder), "--input", str(source)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and named in err


def test_a_missing_model_path_and_a_checkpoint_for_an_export_are_refused(trained: Trained, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    for argv in ([str(tmp_path / "nowhere")], [str(trained.export_dir), "--checkpoint", "last.ckpt"]):
        with pytest.raises(SystemExit) as exit_info:
            translate_main([*argv, "--input", __file__])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "checkpoint" in err


def test_run_folder_checkpoint_choice(trained: Trained, tmp_path: Path) -> None:
    out = export_run(trained.run_dir, tmp_path / "last", checkpoint="last.ckpt")
    assert json.loads((out / MANIFEST).read_text())["source"]["checkpoints"][0]["name"] == "last.ckpt"
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        export_run(trained.run_dir, tmp_path / "nope", checkpoint="nope.ckpt")
    assert not (tmp_path / "nope").exists()
