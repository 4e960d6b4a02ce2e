"""Embedding-fit analysis: each structure recovers a table that has its structure, and the weighting works."""

from __future__ import annotations

import torch

from shapeshifter.analysis.embedding_fit import fit_table, kronecker_fit, lowrank_fit, relative_errors
from shapeshifter.nn import KroneckerEmbedding


def test_kronecker_table_is_recovered_in_row_order_not_after_a_shuffle() -> None:
    torch.manual_seed(0)
    table = KroneckerEmbedding(64, 16, rank=2).dense_weight().detach()
    per_rank = 8 * 4 + 8 * 4  # balanced 64x16: 8x4 ⊗ 8x4
    approx, rank, params = kronecker_fit(table, 2 * per_rank)
    assert rank == 2 and params == 2 * per_rank
    assert relative_errors(table, approx, None)[0] < 1e-5
    shuffled, _, _ = kronecker_fit(table, 2 * per_rank, torch.randperm(64))
    assert relative_errors(table, shuffled, None)[0] > 0.1  # the id -> row mapping carries the structure


def test_lowrank_fit_is_exact_on_a_low_rank_table_and_respects_the_budget() -> None:
    torch.manual_seed(0)
    table = torch.randn(50, 3) @ torch.randn(3, 20)
    approx, e, params = lowrank_fit(table, 3 * 70)
    assert e == 3 and params == 210 and relative_errors(table, approx, None)[0] < 1e-5
    _, e2, p2 = lowrank_fit(table, 209)
    assert e2 == 2 and p2 <= 209


def test_weighted_error_counts_only_weighted_rows() -> None:
    table = torch.ones(4, 2)
    approx = table.clone()
    approx[3] = 0.0  # wrong only on a row with count 0
    plain, weighted = relative_errors(table, approx, torch.tensor([1.0, 1.0, 1.0, 0.0]))
    assert plain > 0.4 and weighted == 0.0


def test_fit_table_rows_per_budget_and_structure() -> None:
    rows = fit_table(torch.randn(64, 16), None, [4, 8])
    assert [(r["reduction"], r["structure"]) for r in rows][:3] == [(4, "kronecker"), (4, "kronecker_shuffled"),
                                                                    (4, "lowrank")]
    assert all(r["params"] <= 64 * 16 / r["reduction"] for r in rows)


def test_the_script_refuses_a_data_bin_without_dictionaries_before_reading_the_checkpoint(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "pipelines" / "analyze_embeddings.py"
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "missing.ckpt"), "--data-bin", str(tmp_path),
                           "--out", str(tmp_path / "rec"), "--threads", "1"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and f"no dictionary {tmp_path / 'dict.de.txt'}" in proc.stderr
    assert not (tmp_path / "rec").exists()
