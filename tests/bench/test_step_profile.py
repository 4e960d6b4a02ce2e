"""The step profile: wall time measured on any device, kernel fields only where the profiler sees a GPU, the
table's ratios against dense at the same batch size, and a clear error for models Table 1 does not have."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from shapeshifter.bench.step_profile import count_ops, profile_steps, to_markdown
from shapeshifter.cli import profile_step


def test_cpu_profile_times_the_step_and_leaves_kernel_fields_empty() -> None:
    calls = []
    out = profile_steps(lambda: calls.append(1), torch.device("cpu"), steps=4, warmup=2)
    assert len(calls) == 7 and out["wall_s"] > 0  # warm-up, timed steps, one counted step
    assert out["kernel_s"] is None and out["kernels"] is None and out["top_kernels"] == []
    assert out["ops"] == 0
    assert profile_steps(lambda: None, torch.device("cpu"), steps=1, warmup=0, ops=False)["ops"] is None


def test_ops_are_counted_without_views() -> None:
    x = torch.randn(4, 6, requires_grad=True)
    w = torch.randn(3, 6)

    def step() -> None:
        y = (x.t().t() @ w.t()).reshape(-1)  # t, t, reshape: views; mm: an op
        y.sum().backward()  # sum, its backward (expand is a view) and mm's backward (one mm for x)

    counts = count_ops(step)
    assert counts["mm.default"] == 2 and counts["sum.default"] == 1
    assert "t.default" not in counts and "view.default" not in counts


def test_table_ratios_are_against_dense_at_the_same_batch() -> None:
    def row(tokens: int, model: str, wall: float, kernels: float) -> dict:
        return {"tokens": tokens, "model": model, "params": 10, "wall_s": wall, "kernel_s": wall / 4,
                "busy": 0.25, "kernels": kernels, "ops": 2 * kernels}

    md = to_markdown([row(4096, "dense", 0.04, 1000), row(4096, "o2", 0.06, 2500),
                      row(16384, "dense", 0.08, 1000), row(16384, "o2", 0.10, 2500)], "gpu")
    assert "| 4,096 | o2 | auto | 10 | 60.0 | 1.50 | 15.0 | 25% | 2,500 | 2.50 | 5,000 | 2.50 |" in md
    assert "| 16,384 | o2 | auto | 10 | 100.0 | 1.25 | 25.0 | 25% | 2,500 | 2.50 | 5,000 | 2.50 |" in md


def test_unknown_model_is_refused_before_any_record(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        profile_step.main(["--scale", "smoke", "--device", "cpu", "--models", "dense", "o2-r9-emb9",
                           "--records", str(tmp_path)])
    assert not list(tmp_path.rglob("*.json"))


def test_smoke_profile_writes_record_and_table(tmp_path: Path) -> None:
    assert profile_step.main(["--scale", "smoke", "--device", "cpu", "--tokens", "64", "--models", "dense",
                              "o2-r8-emb32", "--paths", "auto", "dense", "--steps", "1", "--threads", "1",
                              "--records", str(tmp_path / "r"),
                              "--out", str(tmp_path / "b")]) == 0
    assert len(list((tmp_path / "r" / "step_profile").glob("profile-cpu-*.json"))) == 1
    md = (tmp_path / "b" / "step_profile-cpu.md").read_text()
    assert "| 64 | o2-r8-emb32 | auto |" in md and "| 64 | o2-r8-emb32 | dense |" in md
    assert md.count("| 64 | dense |") == 1  # the dense model has no path to vary


def test_forced_path_reaches_every_factorized_layer() -> None:
    from shapeshifter.cli import bench as bm
    from shapeshifter.nn.factors import FactoredMatrix
    from shapeshifter.translation.fairseq_model import build_transformer, placeholder_dictionary

    cfg = bm.bench_config("smoke", "cpu", seed=1)
    policy = profile_step.with_path(cfg["policies"]["o2-r8-emb32"], "dense")
    src, tgt = placeholder_dictionary(bm.SRC_VOCAB), placeholder_dictionary(bm.TGT_VOCAB)
    model, _ = build_transformer(cfg["arch"], src, tgt, cfg["overrides"], policy, seed=1)
    paths = {m.path for m in model.modules() if isinstance(m, FactoredMatrix)}
    assert paths == {"dense"}
    assert profile_step.with_path(None, "dense") is None
