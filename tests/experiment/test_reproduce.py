"""Paper tables from records (byte-identical rebuilds) and the reproduce grid's skip / resume / retry logic."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from shapeshifter.experiment.records import new_record, write_record
from shapeshifter.reports.registry import build_all, get_table, group_name
from shapeshifter.translation.data.smoke import slice_iwslt_raw

ROOT = Path(__file__).resolve().parents[2]


def _load_reproduce():
    from shapeshifter.cli import reproduce

    return reproduce


def _translation_record(name: str, seed: int, params: int, bleu: float, policy: dict | None) -> dict:
    rec = new_record({"shapeshift": {"name": name}, "seed": seed, "data": {"name": "synthetic"}}, "translation")
    rec.update(status="done", policy=policy,
               params={"total": params, "dense_model_total": 1000, "reduction_vs_dense": 1000 / params},
               timings={"train_s": 10.0 + seed, "train_steps": 10, "test_generate_s": 2.0 + params / 1000},
               metrics={"test": {"tokenized_bleu": bleu + seed, "sacrebleu": bleu}, "copy_baseline": {
                   "tokenized_bleu": 1.5, "sacrebleu": 1.0}})
    return rec


def _bench_record(seed: int) -> dict:
    results = {}
    for name, params, slow in (("dense", 1000, 1.0), ("r1-emb16", 50, 1.2), ("r4-emb16", 60, 1.3)):
        times = {"train_step_s": 0.1 * slow, "forward_s": 0.05 * slow, "beam_s": 0.2 * slow + 0.001 * seed}
        results[name] = {"params": params, "reduction_vs_dense": 1000 / params, "median": times,
                         "ratio_to_dense": {k: slow + 0.01 * seed for k in times}}
    rec = new_record({"table": "table1", "scale": "smoke", "device": "cpu", "seed": seed, "arch": "a", "tokens": 64,
                      "beam": 2, "decode_sentences": 2, "decode_len": 4, "reps": 3, "threads": 1}, "bench_model")
    rec.update(status="done", results=results)
    return rec


def _glue_record(name: str, kind: str, seed: int, params: int, acc: float) -> dict:
    rec = new_record({"shapeshift": {"name": name}, "arch": {"kind": kind}, "seed": seed}, "glue")
    rec.update(status="done", task={"name": "rte"}, objective=acc,
               objective_metric="val/accuracy", objective_mode="max",
               params={"total": params, "reduction_vs_dense": 1000 / params},
               timings={"train_step_s": 0.1 + params / 1e4, "test_s": 1.0},
               metrics={"main_metric": "accuracy", "validation": {"accuracy": acc},
                        "majority_rate": {"validation": 0.5}})
    return rec


def test_tables_rebuild_byte_identical_from_the_same_records(tmp_path: Path) -> None:
    records = tmp_path / "records"
    paper = {"embedding": {"rank": 16, "order": 2, "scheme": "balanced"},
             "attention": {"rank": 1, "order": 2, "scheme": "balanced"}}
    for seed in (1, 2):
        for name, params, bleu, policy in (("dense", 1000, 30.0, None), ("r1-emb16", 80, 28.0, paper)):
            rec = _translation_record(name, seed, params, bleu, policy)
            write_record(rec, records / group_name("table2", "smoke") / f"{name}-s{seed}-{rec['config_hash']}.json")
        rec = _bench_record(seed)
        write_record(rec, records / group_name("table1", "smoke") / f"bench-s{seed}-{rec['config_hash']}.json")
        for kind in ("scratch", "pretrained"):
            for name, params, acc in (("dense", 1000, 0.6), ("glue-r1-emb16", 40, 0.55)):
                rec = _glue_record(name, kind, seed, params, acc + (0.1 if kind == "pretrained" else 0) + seed / 100)
                write_record(rec, records / "glue_table-smoke" / f"{kind}-{name}-{rec['config_hash']}.json")
    # a record that is not done is no longer left out without a word: the table is not built, the file named
    unfinished = _translation_record("broken", 1, 10, 1.0, paper) | {"status": "running"}
    write_record(unfinished, records / "table2-smoke" / "broken.json")
    with pytest.raises(ValueError, match=r"not built:\nsmoke/table2: .*broken\.json \(running\)"):
        build_all(records, tmp_path / "partial")
    assert not (tmp_path / "partial" / "smoke" / "table2.md").exists()
    (records / "table2-smoke" / "broken.json").unlink()

    built = ["smoke/table1", "smoke/table2", "smoke/glue_table"]
    assert build_all(records, tmp_path / "a") == built and build_all(records, tmp_path / "b") == built
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert {f.suffix for f in files} == {".md", ".tex", ".csv", ".png"}
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    md = (tmp_path / "a" / "smoke" / "table2.md").read_text()
    assert "Built from 4 run record(s)" in md and "broken" not in md
    assert "29.50 ± 0.71" in md  # dense: mean ± std of two seeds
    t1 = (tmp_path / "a" / "smoke" / "table1.md").read_text()
    assert "+17% training and +13% prediction" in t1 and "1.21 ± 0.01" in t1
    assert r"\toprule" in (tmp_path / "a" / "smoke" / "table1.tex").read_text()
    # every output names its records: the stamp in md/tex and the PNG's Description, per-row hashes in the CSV
    from PIL import Image

    for png in (tmp_path / "a").rglob("*.png"):
        assert Image.open(png).info["Description"].startswith("Built from "), png
    csv_head, csv_dense = (tmp_path / "a" / "smoke" / "table2.csv").read_text().splitlines()[:2]
    assert csv_head.endswith(",config_hashes") and len(csv_dense.rsplit(",", 1)[1].split()) == 2  # two seeds
    glue = (tmp_path / "a" / "smoke" / "glue_table.md").read_text().splitlines()
    rows = [line for line in glue if line.startswith("| rte")]
    # scratch rows before pretrained, dense first in each; the ratio is against the dense of the same init
    assert [r.split(" | ")[1:3] for r in rows] == [["scratch", "dense"], ["scratch", "glue-r1-emb16"],
                                                    ["pretrained", "dense"], ["pretrained", "glue-r1-emb16"]]
    assert "| 71.5 ± 0.71 |" in rows[2] and "| 25.0 |" in rows[3]


@pytest.fixture()
def smoke_env(tmp_path: Path) -> tuple[object, list[str], Path]:
    slice_iwslt_raw(tmp_path / "raw", n_train_lines=240, n_segs=6)
    extra = [f"data.raw_dir={tmp_path / 'raw'}", f"data.work_dir={tmp_path / 'work'}", "data.bpe_merges=200",
             "eval.bleu_max_sentences=4", "optim.warmup_updates=5",
             "run.allow_larger=true"]  # 200 BPE merges: r8-emb64's embedding factors outgrow the small vocabulary's
    return _load_reproduce(), extra, tmp_path


# Loaded at the start of every train.py the test's reproduce launches (PYTHONPATH): the fit of the job named in
# CRASH_JOB raises, as a bug in one configuration would, in the job process that Hydra's launcher runs.
CRASH_HOOK = """
import os

if os.environ.get("CRASH_JOB"):
    from hydra.core.hydra_config import HydraConfig
    from lightning.pytorch import Trainer

    real_fit = Trainer.fit

    def fit(self, *args, **kwargs):
        if HydraConfig.get().runtime.output_dir.endswith(os.environ["CRASH_JOB"]):
            raise RuntimeError("simulated crash in the " + os.environ["CRASH_JOB"] + " job")
        return real_fit(self, *args, **kwargs)

    Trainer.fit = fit
"""


def test_grid_skips_done_runs_retries_failed_and_resumes_killed(smoke_env, monkeypatch, capsys) -> None:
    import os

    reproduce, extra, tmp = smoke_env
    records, tables, outputs = tmp / "records", tmp / "tables", tmp / "outputs"
    hook = tmp / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CRASH_HOOK)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))

    # 1. the middle job of the multirun crashes: the last one still runs, the failure is reported from its
    # record, exit status 1; no table while a record is not done
    monkeypatch.setenv("CRASH_JOB", "sample_smoke-r1-emb16-s1")
    assert reproduce.reproduce_grid("2", "smoke", records, tables, outputs, extra) == 1
    out = capsys.readouterr()
    assert "2 ran, 0 skipped, 1 failed" in out.out and "1 job(s) failed" in out.err
    assert "RuntimeError: simulated crash in the sample_smoke-r1-emb16-s1 job" in out.out
    group = records / "table2-smoke"
    statuses = {p.name: json.loads(p.read_text())["status"] for p in group.glob("*.json")}
    done = {name: (group / name).stat().st_mtime_ns for name, status in statuses.items() if status == "done"}
    assert sorted(statuses.values()) == ["done", "done", "failed"] and "no table" in out.err
    assert not (tables / "smoke" / "table2.md").exists()

    # 2. simulate a run killed midway: its record is left "running"; the failed job is retried too
    killed = next(p for p in group.glob("*dense*.json"))
    write_record(json.loads(killed.read_text()) | {"status": "running"}, killed)
    monkeypatch.delenv("CRASH_JOB")
    assert reproduce.reproduce_grid("2", "smoke", records, tables, outputs, extra) == 0
    assert "2 ran, 1 skipped, 0 failed" in capsys.readouterr().out
    after = {p.name: p.stat().st_mtime_ns for p in group.glob("*.json")}
    assert all(json.loads(p.read_text())["status"] == "done" for p in group.glob("*.json")) and len(after) == 3
    untouched = [n for n in done if n != killed.name]
    assert [after[n] == done[n] for n in untouched] == [True] and after[killed.name] != done[killed.name]
    assert json.loads(killed.read_text())["resumed_from"].endswith("last.ckpt")  # continued, not restarted
    md = (tables / "smoke" / "table2.md").read_text()
    assert "| dense |" in md and "| r1-emb16 |" in md and "| r8-emb64 |" in md


def test_every_job_runs_through_a_multirun_dense_baselines_first(tmp_path: Path) -> None:
    """Each experiment file's grid is one `train.py -m` after its dense baseline (a one-job multirun, which does
    not expand the file's grid); an explicit jobs table is one `train.py -m` per job, in the registry's order;
    a command whose jobs are all recorded is not started."""
    reproduce = _load_reproduce()
    assert reproduce.hydra_commands(get_table("ablation"), ["+scale=smoke"]) == []  # the committed records
    base = ["+scale=smoke", f"run.records={tmp_path}"]
    ablation = [c[2:] for c in reproduce.hydra_commands(get_table("ablation"), base)]
    assert ablation == [["-m", "experiment=ablation/iwslt14", *base, "shapeshift=dense", "~layers", "~scheme",
                         reproduce.ONE_JOB], ["-m", "experiment=ablation/iwslt14", *base]]
    glue_base = [*get_table("glue").scale_overrides("smoke"), f"run.records={tmp_path}"]
    glue = [c[2:] for c in reproduce.hydra_commands(get_table("glue"), glue_base)]  # its grids hold their dense runs
    assert glue == [["-m", f"experiment=glue_table/{half}", *glue_base] for half in ("scratch", "pretrained")]
    why = get_table("quality_why")
    commands = reproduce.hydra_commands(why, base)
    jobs = why.all_jobs(base)
    assert [c[2:] for c in commands] == [["-m", *map(reproduce.for_multirun, job), reproduce.ONE_JOB] for job in jobs]
    assert len(commands) == len(why.jobs)
    # the sweeper rewrites each override before the job composes it: an interpolation holding a quoted string
    # (init_from's ${oc.select:scale.suffix,''}) must come out as the same config
    from shapeshifter.experiment.sweep import compose_cfg, sweep_jobs

    projected = [(c, job) for c, job in zip(commands, jobs) if any("oc.select" in o for o in job)]
    assert len(projected) == 2
    for command, job in projected:
        (rewritten,) = sweep_jobs([], command[3:])
        assert compose_cfg(ROOT / "conf", rewritten) == compose_cfg(ROOT / "conf", job)


def test_table_grids_come_from_the_experiment_files_with_a_dense_baseline() -> None:
    from shapeshifter.experiment.sweep import compose_cfg, grid_jobs

    conf = ROOT / "conf"
    ablation = grid_jobs(conf, "ablation/iwslt14", ["+scale=smoke"])
    assert len(ablation) == 1 + 2 * 2 * 3 and "shapeshift=dense" in ablation[0]
    dense = compose_cfg(conf, ablation[0])
    assert dense.shapeshift.layers == [] and dense.run.group == "ablation-smoke" and dense.data.name == "sample_smoke"
    embedding = grid_jobs(conf, "embedding_table/iwslt14", ["+scale=full"])
    assert len(embedding) == 1 + 2 * 3
    last = compose_cfg(conf, embedding[-1])
    assert last.shapeshift.layers == ["embedding"] and last.shapeshift.order == 3 and last.shapeshift.rank == 16
    assert last.run.group == "embedding_table" and last.trainer.accelerator == "gpu"
    for scale in ("smoke_glue", "full"):
        experiments = get_table("glue").experiments
        jobs = [job for exp in experiments for job in grid_jobs(conf, exp, [f"+scale={scale}"])]
        cfgs = [compose_cfg(conf, job) for job in jobs]
        names = {c.run.name for c in cfgs}
        assert len(names) == len(cfgs) == (6 if scale == "smoke_glue" else 48)  # one run (and name) per job
        pretrained = [c for c in cfgs if c.arch.kind == "pretrained"]
        assert {c.optim.lr for c in pretrained} == {2e-5} and {c.optim.lr for c in cfgs} - {2e-5} == {5e-4}
        assert {c.run.records for c in cfgs} == {"results/records"}
        if scale == "smoke_glue":
            assert {c.data.name for c in cfgs} == {"snli_sample"}
            assert {c.run.group for c in cfgs} == {"glue_table-smoke"}
            assert {c.arch.name_or_path for c in pretrained} == {"data/cache/smoke_bert"}
        else:
            assert {c.data.task for c in cfgs} == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"}
            assert {c.arch.name_or_path for c in pretrained} == {"bert-base-uncased"}
            assert {c.trainer.accelerator for c in cfgs} == {"gpu"}
    table2 = [compose_cfg(conf, job) for job in grid_jobs(conf, "table2/iwslt14", ["+scale=full"])]
    assert [c.shapeshift.name for c in table2] == ["dense", "r1-emb16", "r8-emb64"]
    assert table2[1].optim.lr == 2e-3 and table2[1].batching.max_sentences == 128


@pytest.mark.parametrize("scale", ["smoke", "full"])
def test_every_table_skips_what_is_recorded(scale: str) -> None:
    """The demos always train (`run.skip_done=false`); a table's grid, even one built on a demo's settings
    (quality/glue on the SNLI demo), must skip its committed records, or a fresh clone would retrain them all."""
    from shapeshifter.experiment.sweep import compose_cfg
    from shapeshifter.reports.registry import REGISTRY

    conf = ROOT / "conf"
    for spec in REGISTRY.values():
        if not spec.experiments:
            continue
        jobs = spec.all_jobs(spec.scale_overrides(scale))
        assert jobs, spec.id
        for job in jobs[:1] + jobs[-1:]:  # the first (dense) and last job of each table
            assert compose_cfg(conf, job).run.skip_done is True, (spec.id, job)


def test_rows_only_average_records_that_differ_in_the_seed(tmp_path: Path) -> None:
    records = tmp_path / "records"
    good = _translation_record("dense", 1, 1000, 30.0, None)
    write_record(good, records / "table2-smoke" / f"dense-s1-{good['config_hash']}.json")
    for reps, seed in ((3, 1), (10, 2)):  # same table and device, different repetition counts
        rec = _bench_record(seed)
        rec["config"]["reps"] = reps
        write_record(rec, records / "table1-smoke" / f"bench-s{seed}-reps{reps}.json")
    expected = r"built smoke/table2; not built:\nsmoke/table1: row 'Table 1 on cpu'.*\['reps'\]"
    with pytest.raises(ValueError, match=expected):
        build_all(records, tmp_path / "tables")
    assert (tmp_path / "tables" / "smoke" / "table2.md").is_file()  # the consistent table is still written
    assert not (tmp_path / "tables" / "smoke" / "table1.md").exists()

    lr = _translation_record("dense", 2, 1000, 31.0, None)
    lr["config"]["optim"] = {"lr": 1e-3}
    write_record(lr, records / "table2-smoke" / f"dense-s2-{lr['config_hash']}.json")
    with pytest.raises(ValueError, match=r"row 'dense'.*differ in \['optim'\]"):
        build_all(records, tmp_path / "tables")


def test_pareto_front() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    from shapeshifter.reports.frame import pareto_front

    rows = [{"config": "dense", "params": 1000, "bleu": 30.0}, {"config": "a", "params": 100, "bleu": 29.0},
            {"config": "b", "params": 120, "bleu": 28.0}, {"config": "c", "params": 50, "bleu": 20.0},
            {"config": "d", "params": 100, "bleu": 29.0}, {"config": "e", "params": 10, "bleu": None}]
    assert [r["config"] for r in pareto_front(rows)] == ["c", "a", "d", "dense"]  # b loses to a; ties both stay

    @given(st.lists(st.tuples(st.integers(1, 50), st.integers(0, 50)), min_size=1, max_size=12))
    def check(points: list[tuple[int, int]]) -> None:
        rows = [{"config": str(i), "params": p, "bleu": float(b)} for i, (p, b) in enumerate(points)]
        front = pareto_front(rows)
        on = {r["config"] for r in front}
        for r in rows:
            beats = [o for o in rows if o["params"] <= r["params"] and o["bleu"] >= r["bleu"] and o is not r
                     and (o["params"], o["bleu"]) != (r["params"], r["bleu"])]
            assert (r["config"] in on) == (not beats)

    check()


def test_a_sweep_killed_midway_finishes_only_the_missing_runs(smoke_env) -> None:
    """The real thing: SIGKILL the reproduce process once its first job is done, then rerun the same command."""
    import os
    import signal
    import subprocess
    import time

    _, extra, tmp = smoke_env
    cmd = [sys.executable, str(ROOT / "pipelines" / "reproduce.py"), "2", "--scale", "smoke",
           "--records", str(tmp / "records"), "--tables", str(tmp / "tables"), "--outputs", str(tmp / "outputs"),
           *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    group = tmp / "records" / "table2-smoke"

    def done() -> dict[str, int]:
        out = {}
        for p in group.glob("*.json"):
            try:
                if json.loads(p.read_text()).get("status") == "done":
                    out[p.name] = p.stat().st_mtime_ns
            except json.JSONDecodeError:  # being replaced atomically right now
                pass
        return out

    log = (tmp / "killed.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 240
    while not done() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, (tmp / "killed.log").read_text()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
    before = done()
    assert 1 <= len(before) < 3, "the sweep should have been killed after its first job and before the last"

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{3 - len(before)} ran, {len(before)} skipped, 0 failed" in rerun.stdout
    after = done()
    assert len(after) == 3 and all(after[name] == mtime for name, mtime in before.items())  # finished ones untouched
    assert "| r1-emb16 |" in (tmp / "tables" / "smoke" / "table2.md").read_text()


@pytest.mark.slow
def test_a_launcher_runs_the_grid_through_hydra_two_jobs_at_a_time(smoke_env, capsys, caplog) -> None:
    """The grid goes through Hydra's joblib launcher with two workers. Whether two jobs' time spans overlap is
    not asserted: with the data prepared, a smoke job lasts about a second, less than a worker's start-up skew."""
    import yaml

    reproduce, extra, tmp = smoke_env
    records, tables, outputs = tmp / "records", tmp / "tables", tmp / "outputs"
    base = [*extra, "launcher=local"]
    caplog.set_level(logging.INFO, logger="shapeshifter")
    assert reproduce.reproduce_grid("2", "smoke", records, tables, outputs, base, dry_run=True) == 0
    assert capsys.readouterr().out.count("python pipelines/train.py experiment=table2/iwslt14 +scale=smoke") == 3
    assert "runs as: python pipelines/train.py -m experiment=table2/iwslt14 +scale=smoke" in caplog.text

    assert reproduce.reproduce_grid("2", "smoke", records, tables, outputs, base) == 0
    assert "3 ran, 0 skipped, 0 failed" in capsys.readouterr().out
    recs = [json.loads(p.read_text()) for p in (records / "table2-smoke").glob("*.json")]
    assert len(recs) == 3 and {r["status"] for r in recs} == {"done"}
    launcher = yaml.safe_load((outputs / "table2-smoke" / "multirun.yaml").read_text())["hydra"]["launcher"]
    assert launcher["_target_"].endswith("JoblibLauncher") and launcher["n_jobs"] == 2
    assert {r["machine"]["torch_threads"] for r in recs} == {1}  # launcher=local: one thread per job


def test_a_new_table_is_one_registry_entry(tmp_path: Path, monkeypatch, capsys) -> None:
    from shapeshifter.reports.registry import REGISTRY, TableSpec, translation_builder

    spec = TableSpec("my_table", translation_builder("my_table", "My table: r1 vs r8"), ("table2/iwslt14",),
                     aliases=("mine",))
    monkeypatch.setitem(REGISTRY, spec.id, spec)
    reproduce = _load_reproduce()
    assert reproduce.main(["list"]) == 0 and "my_table" in capsys.readouterr().out.split()
    assert reproduce.main(["mine", "--dry-run"]) == 0
    assert "experiment=table2/iwslt14 +scale=smoke" in capsys.readouterr().out
    for name, params, bleu in (("dense", 1000, 20.0), ("r8-emb64", 100, 15.0)):
        rec = _translation_record(name, 1, params, bleu, None if name == "dense" else {"attention": {
            "rank": 8, "order": 2, "scheme": "balanced", "path": "auto"}})
        write_record(rec, tmp_path / "records" / "my_table-smoke" / f"{name}.json")
    assert "smoke/my_table" in build_all(tmp_path / "records", tmp_path / "tables")
    assert "My table: r1 vs r8" in (tmp_path / "tables" / "smoke" / "my_table.md").read_text()


def test_smoke_runs_the_first_seed_of_every_grid_and_full_scale_every_seed() -> None:
    """`conf/scale/smoke*.yaml` collapse a grid's seed axis to seed 1 (`make smoke` checks the code path, which a
    second seed repeats); the full grids keep their seeds."""
    from shapeshifter.experiment.sweep import compose_cfg
    from shapeshifter.reports.registry import get_table

    conf = ROOT / "conf"
    for table in ("quality", "quality_glue", "quality_snli"):
        spec = get_table(table)
        smoke = [compose_cfg(conf, job) for job in spec.all_jobs(spec.scale_overrides("smoke"))]
        full = [compose_cfg(conf, job) for job in spec.all_jobs(spec.scale_overrides("full"))]
        assert {c.seed for c in smoke} == {1} and {c.seed for c in full} == {1, 2}, table
        def jobs(cfgs: list) -> set[str]:  # run names without the data's name, which the smoke scale changes
            return {c.run.name.split("-", 1)[1] for c in cfgs if c.seed == 1}

        assert jobs(smoke) == jobs(full), table  # every first-seed job still runs


def test_a_fresh_checkout_trains_again_the_dense_run_its_distilled_jobs_read(tmp_path: Path, monkeypatch) -> None:
    """A committed record makes its job "done", but a fresh checkout lacks its run folder: the dense run that the
    table's distilled and projected jobs read is trained again first, its record into the outputs' source-records
    (the committed one stays); once its folder holds a finished run, it is not."""
    from shapeshifter.experiment.runner import record_path
    from shapeshifter.experiment.sweep import compose_cfg

    reproduce = _load_reproduce()
    grid = get_table("quality")
    base = [*grid.scale_overrides("smoke"), f"run.records={tmp_path / 'records'}", f"run.outputs={tmp_path / 'out'}"]
    dense = next(job for job in grid.all_jobs(base) if "experiment=quality/grid_dense" in job)
    path = record_path(compose_cfg(ROOT / "conf", dense))
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"status": "done"}))
    commands = [c[2:] for c in reproduce.hydra_commands(grid, base)]
    rerun = ["-m", *map(reproduce.for_multirun, dense), "run.records='${run.outputs}/source-records'",
             reproduce.ONE_JOB]
    assert commands[0] == rerun and commands.count(rerun) == 1
    assert reproduce.job_folder(tuple(dense)) == (tmp_path / "out" / "quality-smoke" / "sample_smoke-d128-dense-s1")
    monkeypatch.setattr(reproduce, "finished_run", lambda folder: True)
    assert rerun not in [c[2:] for c in reproduce.hydra_commands(grid, base)]


def test_a_table_rebuilds_the_missing_teacher_that_another_table_trains(tmp_path: Path) -> None:
    """The distillation screening's teachers are the quality table's dense runs (`TableSpec.sources`): in a fresh
    checkout the screening table's reproduction trains that job of the other table first, records aside."""
    reproduce = _load_reproduce()
    grid = get_table("quality_distill")
    base = [*grid.scale_overrides("smoke"), f"run.records={tmp_path / 'records'}", f"run.outputs={tmp_path / 'out'}"]
    quality = get_table("quality")
    dense = next(job for job in quality.all_jobs([*quality.scale_overrides("smoke"), *base[1:]])
                 if "experiment=quality/grid_dense" in job)
    commands = [c[2:] for c in reproduce.hydra_commands(grid, base)]
    rerun = ["-m", *map(reproduce.for_multirun, dense), "run.records='${run.outputs}/source-records'",
             reproduce.ONE_JOB]
    assert commands[0] == rerun and commands.count(rerun) == 1
    assert not reproduce.sources_to_rebuild([tuple(j) for j in grid.all_jobs(base)], lambda job: False)


def test_reruns_that_differ_only_in_the_seed_are_one_sweep() -> None:
    """The teachers of both seeds are one multirun (a parallel launcher trains them side by side)."""
    reproduce = _load_reproduce()
    dense = ["experiment=quality/grid_dense", "+scale=cpu", "seed={}", "shapeshift=dense"]
    jobs = [[o.format(s) for o in dense] for s in (1, 2)] + [["experiment=quality/grid_10x", "seed=1"]]
    assert reproduce.sweep_seeds(jobs) == [[o.format("1,2") for o in dense], ["experiment=quality/grid_10x", "seed=1"]]
    assert reproduce.sweep_seeds([["experiment=x"], ["experiment=y"]]) == [["experiment=x"], ["experiment=y"]]


def test_tables_copy_into_each_pages_blocks_and_a_missing_table_fails_without_touching_that_page(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    reproduce = _load_reproduce()
    records, tables, good, bad = (tmp_path / name for name in ("records", "tables", "good.md", "bad.md"))
    rec = _translation_record("dense", 1, 1000, 30.0, None)
    write_record(rec, records / "table2" / f"dense-s1-{rec['config_hash']}.json")
    good.write_text("<!-- table: table2.md -->\n| stale |\n<!-- /table -->\n")
    bad.write_text("<!-- table: nothing.md -->\n| stale |\n<!-- /table -->\n")
    args = ["tables", "--records", str(records), "--tables", str(tables), "--page", str(bad), "--page", str(good)]
    assert reproduce.main(args) == 1
    assert good.read_text().split("\n")[1] == (tables / "table2.md").read_text().split("\n")[2]  # its header row
    assert "nothing.md" in capsys.readouterr().err and "| stale |" in bad.read_text()
    with pytest.raises(SystemExit):  # only with the tables target
        reproduce.main(["quality", "--page", str(good)])
