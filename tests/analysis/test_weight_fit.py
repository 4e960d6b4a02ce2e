"""Weight-fit analysis: structure is found where it exists and not in noise; tied and unknown layers are skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from shapeshifter.analysis.weight_fit import factorized_matrices, fit_state, gaussian_twin, summarize
from shapeshifter.nn import KroneckerLinear

ROOT = Path(__file__).resolve().parents[2]


def structured_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    kron = KroneckerLinear(64, 64, rank=2).weight.detach().clone()  # an exact rank-2 Kronecker sum
    embed = torch.randn(100, 64)
    return {"encoder.layers.0.self_attn.q_proj.weight": kron,
            "encoder.layers.0.fc1.weight": torch.randn(128, 64),
            "encoder.embed_tokens.weight": embed,
            "decoder.output_projection.weight": embed,  # tied: the same tensor
            "encoder.layers.0.self_attn_layer_norm.weight": torch.ones(64),
            "encoder.version": torch.tensor([3.0])}


def test_only_factorizable_matrices_are_listed_and_a_tied_output_once() -> None:
    found = factorized_matrices(structured_state())
    assert {name: t for name, (t, _) in found.items()} == {
        "encoder.layers.0.self_attn.q_proj": "attention", "encoder.layers.0.fc1": "ffn",
        "encoder.embed_tokens": "embedding"}


def test_a_kronecker_matrix_fits_exactly_and_its_gaussian_twin_does_not() -> None:
    rows = [r for r in fit_state(structured_state(), [8]) if r["layer_type"] == "attention"]
    kron = next(r for r in rows if r["structure"] == "kronecker")
    assert kron["rank"] >= 2 and kron["params"] <= 64 * 64 / 8
    assert kron["error"] < 1e-4 and kron["gaussian_error"] > 0.5
    lowrank = next(r for r in rows if r["structure"] == "lowrank")
    assert lowrank["error"] > 0.1  # a Kronecker sum of rank 2 is not of low rank


def test_noise_fits_like_its_twin() -> None:
    rows = [r for r in fit_state(structured_state(), [4]) if r["layer_type"] == "ffn"]
    assert all(abs(r["error"] - r["gaussian_error"]) < 0.05 for r in rows)


def test_the_twin_has_the_shape_and_moments_of_the_weight() -> None:
    w = torch.randn(200, 300) * 3 + 1
    twin = gaussian_twin(w, torch.Generator().manual_seed(0))
    assert twin.shape == w.shape and twin.dtype == w.dtype and not torch.equal(twin, w)
    assert abs(float(twin.std()) - 3) < 0.05 and abs(float(twin.mean()) - 1) < 0.05


def test_summary_means_per_layer_type_budget_and_structure() -> None:
    rows = [{"layer_type": "attention", "reduction": 10, "structure": "kronecker", "error": e, "gaussian_error": 1.0}
            for e in (0.2, 0.4)]
    (s,) = summarize(rows)
    assert s["matrices"] == 2 and s["error"] == pytest.approx(0.3) and s["gaussian_error"] == 1.0


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "pipelines" / "analyze_weights.py"), *args, "--threads", "1"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_the_script_writes_a_record_from_a_checkpoint(tmp_path: Path) -> None:
    state = {f"model.{k}": v for k, v in structured_state().items()}
    ckpt = tmp_path / "best.ckpt"
    torch.save({"state_dict": state}, ckpt)
    proc = run_script(str(ckpt), "--budgets", "8", "--out", str(tmp_path / "rec"))
    assert proc.returncode == 0, proc.stderr
    (path,) = (tmp_path / "rec").glob("weight_fit-*.json")
    record = json.loads(path.read_text())
    assert record["kind"] == "weight_fit" and record["config"]["budgets"] == [8]
    assert {s["layer_type"] for s in record["summary"]} == {"attention", "ffn", "embedding"}
    assert "| attention | 1 | 8 | kronecker |" in proc.stdout


@pytest.mark.parametrize(("content", "message"), [(None, "no checkpoint or run folder"),
                                                  (b"not a checkpoint", "not a readable checkpoint"),
                                                  ({"state_dict": {}}, "no embedding, attention")])
def test_a_bad_checkpoint_is_one_clear_error(tmp_path: Path, content: object, message: str) -> None:
    ckpt = tmp_path / "x.ckpt"
    if isinstance(content, bytes):
        ckpt.write_bytes(content)
    elif content is not None:
        torch.save(content, ckpt)
    proc = run_script(str(ckpt), "--out", str(tmp_path / "rec"))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "rec").exists()


def test_budgets_below_one_are_refused() -> None:
    proc = run_script("nowhere.ckpt", "--budgets", "0.5")
    assert proc.returncode == 2 and "reductions (>= 1)" in proc.stderr
