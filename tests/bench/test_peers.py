"""The peer benchmark at tiny shapes: every peer near the budget, ratios to dense, JSON + Markdown + plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shapeshifter.bench import peers
from shapeshifter.cli import bench_peers

TINY = {"linear 16->32": ("linear", 16, 32), "embedding 60x16": ("embedding", 60, 16)}


def test_tiny_peer_benchmark_writes_json_table_and_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        pipeline_script) -> None:
    monkeypatch.setattr(peers, "SHAPES", TINY)
    args = ["--device", "cpu", "--shapes", *TINY, "--budget", "0.5", "--tokens", "8", "--reps", "2", "--warmup",
            "0", "--out", str(tmp_path), "--threads", "1"]
    assert pipeline_script("bench_peers").main is bench_peers.main  # the documented entry point runs it
    monkeypatch.setattr(bench_peers, "SHAPES", TINY)
    assert bench_peers.main(args) == 0
    record = json.loads((tmp_path / "peers-cpu.json").read_text())
    rows = {(r["shape"], r["peer"]): r for r in record["rows"]}
    for shape in TINY:
        assert rows[(shape, "dense")]["time_ratio"] == 1.0 == rows[(shape, "dense")]["memory_ratio"]
        for name in ("Kronecker o2", "Kronecker o3", "low rank U·V", "PHM"):
            row = rows[(shape, name)]
            assert row["time_ratio"] > 0 and row["memory_ratio"] > 0
            assert 0.2 < row["param_ratio"] < 1.25, row  # nearest rank to half the dense count
    md = (tmp_path / "peers-cpu.md").read_text()
    assert "| linear 16->32 | Kronecker o2 |" in md and "fwd+bwd time (× dense)" in md
    assert (tmp_path / "peers-cpu.png").stat().st_size > 0


def test_a_peer_that_cannot_run_is_a_row_saying_why() -> None:
    def broken():
        raise RuntimeError("no such layer")

    import torch

    modules, skipped = peers._build_all({"dense": lambda: torch.nn.Linear(4, 4), "broken": broken},
                                        torch.randn(2, 4))
    assert list(modules) == ["dense"] and skipped == {"broken": "RuntimeError: no such layer"}
