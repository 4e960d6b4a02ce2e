"""make device-check on a machine without CUDA: says so and succeeds (the GPU path runs on GPU machines only)."""

from __future__ import annotations

from pathlib import Path

import torch

from shapeshifter.cli import device_check


def test_without_cuda_it_says_so_and_exits_0(monkeypatch, capsys, tmp_path: Path, pipeline_script) -> None:
    module = device_check
    assert pipeline_script("device_check").main is device_check.main  # the documented entry point runs it
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert module.main(["--records", str(tmp_path)]) == 0
    assert "no CUDA GPU present" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())  # nothing run, nothing written
    names = [name for name, _, _ in module.steps(tmp_path, tmp_path, tmp_path)]
    assert names == ["bench_layers", "table1 fp32", "table1 bf16", "table1 fp32 compiled", "table1 bf16 compiled",
                     "bench_peers", "step_profile", "step_profile compiled"]
    compiled = {name: cmd for name, cmd, _ in module.steps(tmp_path, tmp_path, tmp_path) if "compiled" in name}
    assert all("--compile" in cmd for cmd in compiled.values())
