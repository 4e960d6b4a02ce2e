"""Table 1's benchmark (shapeshifter.cli.bench): the quality-budget policies hit their reductions, a tiny run
measures time and peak memory, and the table shows memory (or a dash for records that predate it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from shapeshifter.cli import bench
from shapeshifter.experiment.records import config_hash, finish_record, new_record, write_record
from shapeshifter.params import count_parameters
from shapeshifter.reports.paper import build_table1, table1_rows
from shapeshifter.translation.fairseq_model import build_transformer, placeholder_dictionary


@pytest.mark.parametrize("scale", ["smoke", "full"])
def test_budget_policies_have_3_10_25_times_fewer_parameters(scale: str) -> None:
    bm = bench
    cfg = bm.bench_config(scale, "cpu", seed=1)
    src, tgt = placeholder_dictionary(bm.SRC_VOCAB), placeholder_dictionary(bm.TGT_VOCAB)

    def total(policy):
        model, _ = build_transformer(cfg["arch"], src, tgt, cfg["overrides"], policy, seed=1)
        return count_parameters(model)["total"]

    dense = total(None)
    budgets = {name: p for name, p in cfg["policies"].items() if name.startswith("o2-")}
    reductions = [dense / total(p) for p in budgets.values()]
    for got, want in zip(reductions, (3, 10, 25)):
        assert abs(got / want - 1) <= 0.10, (scale, budgets.keys(), reductions)
    for name, policy in budgets.items():  # the name says what it is
        assert name == f"o2-r{policy['attention']['rank']}-emb{policy['embedding']['rank']}"
        assert policy["ffn"]["rank"] == policy["attention"]["rank"] and policy["attention"]["order"] == 2


def test_tiny_run_measures_time_and_peak_memory() -> None:
    bm = bench
    cfg = bm.bench_config("smoke", "cpu", seed=1, reps=1)
    cfg.update(warmup=0, tokens=64, sentence_len=16, decode_sentences=2, decode_len=3)
    cfg["policies"] = {k: v for k, v in cfg["policies"].items() if k in ("dense", "o2-r8-emb32")}
    torch.manual_seed(1)
    results = bm.run_bench(cfg, torch.device("cpu"))
    dense, kron = results["dense"], results["o2-r8-emb32"]
    assert dense["peak_train_ratio_to_dense"] == 1.0
    # at least the parameters, their gradients and Adam's two moments
    assert dense["peak_train_bytes"] > 4 * 4 * dense["params"]
    assert 0 < kron["peak_train_ratio_to_dense"] < 1.5
    assert set(kron["ratio_to_dense"]) == {"train_step_s", "forward_s", "beam_s"}


def _record(seed: int, memory: bool) -> dict:
    rec = new_record({"table": "table1", "scale": "smoke", "device": "cpu", "seed": seed, "arch": "a", "tokens": 64,
                      "beam": 2, "decode_sentences": 2, "decode_len": 4, "reps": 3, "threads": 1}, "bench_model")
    results = {}
    for name, params, peak in (("dense", 1000, 400.0), ("o2-r8-emb32", 100, 300.0)):
        res = {"params": params, "reduction_vs_dense": 1000 / params, "policy": None,
               "median": {"train_step_s": 0.01, "forward_s": 0.01, "beam_s": 0.01},
               "ratio_to_dense": {"train_step_s": 1.0, "forward_s": 1.0, "beam_s": 1.0}}
        if memory:
            res |= {"peak_train_bytes": peak * 2**20, "peak_train_ratio_to_dense": peak / 400.0}
        results[name] = res
    rec["results"] = results
    return rec


@pytest.mark.parametrize("memory", [True, False])
def test_table1_shows_peak_memory_or_a_dash(tmp_path: Path, memory: bool) -> None:
    rec = _record(1, memory)
    path = tmp_path / "records" / "table1-smoke" / "bench.json"
    write_record(rec, path)
    finish_record(rec, path)
    rows = {r["config"]: r for r in table1_rows([rec])}
    assert rows["o2-r8-emb32"]["memory_ratio"] == (0.75 if memory else None)
    md = build_table1(tmp_path / "records" / "table1-smoke", tmp_path / "tables")
    assert "peak memory (× dense)" in md
    line = next(x for x in md.splitlines() if x.startswith("| o2-r8-emb32"))
    assert line.endswith("| 300.0 | 0.75 |" if memory else "| – | – |")
    assert (tmp_path / "tables" / "table1_ratio_vs_reduction.png").is_file()


def test_table1_notes_give_each_devices_repetitions(tmp_path: Path) -> None:
    """Records of two devices with different repetitions and threads: the notes name each, not the first's."""
    folder = tmp_path / "records" / "table1-smoke"
    for device, reps, threads in (("cpu", 5, 1), ("cuda", 3, 16)):
        rec = _record(1, memory=True)
        rec["config"] |= {"device": device, "reps": reps, "threads": threads}
        rec["config_hash"] = config_hash(rec["config"])
        path = folder / f"bench-{device}.json"
        write_record(rec, path)
        finish_record(rec, path)
    md = build_table1(folder, tmp_path / "tables")
    assert "(5 with 1 CPU thread(s) on cpu; 3 on cuda)" in md
    assert sum(line.startswith("| o2-r8-emb32") for line in md.splitlines()) == 2


def test_bf16_benchmark_is_its_own_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--amp bf16 writes records and table under table1_bf16 (registry id): Table 1's fp32 files stay as they were."""
    records, tables = tmp_path / "records", tmp_path / "tables"
    fp32 = _record(1, memory=True)
    write_record(fp32, records / "table1-smoke" / "bench.json")
    finish_record(fp32, records / "table1-smoke" / "bench.json")
    build_table1(records / "table1-smoke", tables / "smoke")
    before = (tables / "smoke" / "table1.md").read_bytes()

    def tiny(cfg: dict, device: torch.device) -> dict:
        assert cfg["amp"] == "bf16"
        return _record(2, memory=True)["results"]

    monkeypatch.setattr(bench, "run_bench", tiny)
    assert bench.main(["--scale", "smoke", "--device", "cpu", "--amp", "bf16", "--records", str(records),
                       "--tables", str(tables), "--no-wandb"]) == 0
    assert [p.parent.name for p in records.rglob("bench-*.json")] == ["table1_bf16-smoke"]
    md = (tables / "smoke" / "table1_bf16.md").read_text()
    assert md.startswith("## Table 1 under bf16 autocast") and "bf16 autocast (weights and Adam state" in md
    assert (tables / "smoke" / "table1_bf16_ratio_vs_reduction.png").is_file()
    assert (tables / "smoke" / "table1.md").read_bytes() == before


def test_compiled_records_are_their_own_rows(tmp_path: Path) -> None:
    """A --compile record of the same device and seed sits beside the eager one (not a duplicate seed); the
    compiled column tells them apart and the notes say what it means; eager-only tables have no such note."""
    folder = tmp_path / "records" / "table1-smoke"
    for compiled in (False, True):
        rec = _record(1, memory=True)
        if compiled:
            rec["config"]["compile"] = True
            rec["results"]["o2-r8-emb32"]["ratio_to_dense"]["train_step_s"] = 0.8
        rec["config_hash"] = config_hash(rec["config"])
        write_record(rec, folder / f"bench-{compiled}.json")
        finish_record(rec, folder / f"bench-{compiled}.json")
    md = build_table1(folder, tmp_path / "tables")
    assert "| o2-r8-emb32 | cpu | no | 100 |" in md and "| o2-r8-emb32 | cpu | yes | 100 |" in md
    assert "compiled: yes = " in md
    (folder / "bench-True.json").unlink()
    assert "compiled: yes = " not in build_table1(folder, tmp_path / "tables")


def test_models_must_name_table1_models_with_dense() -> None:
    cfg = bench.bench_config("smoke", "cpu", seed=1, compiled=True, models=["dense", "o2-r8-emb32"])
    assert list(cfg["policies"]) == ["dense", "o2-r8-emb32"] and cfg["compile"] is True
    assert "compile" not in bench.bench_config("smoke", "cpu", seed=1)  # eager records keep their hash
    with pytest.raises(ValueError, match="unknown: o2-r9-emb9"):
        bench.bench_config("smoke", "cpu", seed=1, models=["dense", "o2-r9-emb9"])
    with pytest.raises(ValueError, match="include dense"):
        bench.bench_config("smoke", "cpu", seed=1, models=["o2-r8-emb32"])


@pytest.mark.slow
def test_tiny_compiled_run_counts_its_graphs(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = bench.CompileCounter  # on the eager backend: the same graphs are captured and counted, no codegen
    monkeypatch.setattr(bench, "CompileCounter", lambda: counter("eager"))
    cfg = bench.bench_config("smoke", "cpu", seed=1, reps=1, compiled=True, models=["dense", "o2-r8-emb32"])
    cfg.update(warmup=1, tokens=64, sentence_len=16, decode_sentences=2, decode_len=3)
    torch._dynamo.reset()
    results = bench.run_bench(cfg, torch.device("cpu"))
    assert all(r["compiles"] >= 1 for r in results.values())
