"""make device-check on a machine without CUDA: says so and succeeds (the GPU path runs on GPU machines only)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_without_cuda_it_says_so_and_exits_0(monkeypatch, capsys, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "pipelines" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert module.main(["--records", str(tmp_path)]) == 0
    assert "no CUDA GPU present" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())  # nothing run, nothing written
    names = [name for name, _, _ in module.steps(tmp_path, tmp_path, tmp_path)]
    assert names == ["bench_layers", "table1 fp32", "table1 bf16", "bench_peers"]
