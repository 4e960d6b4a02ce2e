"""Committed outputs rebuilt from their records: the results notebook (jupytext -> nbclient) and the demo tables."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat

from shapeshifter.reports.registry import build_all

ROOT = Path(__file__).resolve().parents[2]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_results_notebook_rebuilds_the_committed_tables(tmp_path: Path, pipeline_script) -> None:
    runner = pipeline_script("run_notebook")
    records = ROOT / "results" / "records"
    out = tmp_path / "results.ipynb"
    env = [f"SHAPESHIFTER_RECORDS={records}", f"SHAPESHIFTER_TABLES={tmp_path / 'nb'}"]
    args = [str(ROOT / "notebooks" / "results.py"), "--out", str(out), "--env", env[0], "--env", env[1]]
    assert runner.main(args) == 0
    built = build_all(records, tmp_path / "make")
    assert "full/table1" in built and "smoke/glue_table" in built
    assert _tree(tmp_path / "nb") == _tree(tmp_path / "make")
    text = "\n".join(o.get("text", "") for c in nbformat.read(out, 4).cells if c.cell_type == "code"
                     for o in c.outputs)
    assert "(paper +17%)" in text and "built: full/table1" in text
    assert "~10×, distilled from dense:" in text and "Distillation moved test BLEU:" in text
    images = [o for c in nbformat.read(out, 4).cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == len(list((tmp_path / "make").rglob("*.png")))


def test_a_failing_cell_fails_the_run_and_keeps_the_notebook(tmp_path: Path, capsys, pipeline_script) -> None:
    source = tmp_path / "broken.py"
    source.write_text("# %%\nprint('before')\n\n# %%\nraise ValueError('no records of that kind')\n")
    out = tmp_path / "broken.ipynb"
    assert pipeline_script("run_notebook").main([str(source), "--out", str(out)]) == 1
    assert "a cell failed" in capsys.readouterr().err
    cells = nbformat.read(out, 4).cells
    assert cells[0].outputs[0]["text"] == "before\n" and cells[1].outputs[0]["ename"] == "ValueError"


def test_kernel_environment_does_not_leak_into_the_caller(tmp_path: Path, monkeypatch, pipeline_script) -> None:
    monkeypatch.delenv("SHAPESHIFTER_PROBE", raising=False)
    source = tmp_path / "env.py"
    source.write_text("# %%\nimport os\nprint(os.environ['SHAPESHIFTER_PROBE'])\n")
    out = tmp_path / "env.ipynb"
    assert pipeline_script("run_notebook").main([str(source), "--out", str(out), "--env", "SHAPESHIFTER_PROBE=42"]) == 0
    assert nbformat.read(out, 4).cells[0].outputs[0]["text"] == "42\n"
    assert "SHAPESHIFTER_PROBE" not in os.environ


def test_demo_tables_rebuild_the_committed_ones(tmp_path: Path) -> None:
    import subprocess

    for demo, records, committed in (("demo", "results/demo/records/demo", "results/demo"),
                                     ("demo-glue", "results/demo_glue/records", "results/demo_glue")):
        out = tmp_path / demo
        subprocess.run([sys.executable, str(ROOT / "pipelines" / "tables.py"), demo, "--records", str(ROOT / records),
                        "--out", str(out)], check=True, capture_output=True)
        written = _tree(out)
        assert len(written) == 4 and all((ROOT / committed / name).read_bytes() == data
                                         for name, data in written.items()), demo
    missing = subprocess.run([sys.executable, str(ROOT / "pipelines" / "tables.py"), "demo", "--records",
                              str(tmp_path / "none"), "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert missing.returncode == 1 and "no finished translation records" in missing.stderr
