"""The Hydra app end to end on a slice of the committed sample: records, skip-done, resume, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from tiny_configs import TINY_TRANSLATION

from shapeshifter.experiment.policy import policy_from_config
from shapeshifter.experiment.runner import record_path, run_job

CONF = Path(__file__).resolve().parents[2] / "conf"
TINY = [*TINY_TRANSLATION, "trainer.log_every_n_steps=1", "eval.bleu_max_sentences=8"]
# r8-emb64's embedding factors outgrow the tiny model's dense embeddings (200 BPE merges): allowed where it is trained
LARGER = "run.allow_larger=true"


def compose_cfg(tmp: Path, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[
            f"data.raw_dir={tmp / 'raw'}", f"data.work_dir={tmp / 'work'}", f"run.records={tmp / 'records'}",
            *TINY, *overrides])


def test_dense_and_shapeshifted_runs_write_records_and_skip_when_done(sample: Path, tmp_path: Path) -> None:
    cfg = compose_cfg(sample, "shapeshift=r1_emb16")
    record = run_job(cfg, tmp_path / "run")
    assert record["status"] == "done"
    saved = json.loads(Path(record["_path"]).read_text())
    assert saved["config_hash"] == record["config_hash"]
    assert saved["params"]["reduction_vs_dense"] == saved["params"]["dense_model_total"] / saved["params"]["total"] > 2
    assert saved["params"]["by_type"]["attention"]["factorized"] > 0
    assert saved["shapeshift_report"]["unhandled"] == []
    test = saved["metrics"]["test"]
    assert test["num_sentences"] == 24 and 0 <= test["tokenized_bleu"] <= 100
    assert "nrefs:1" in test["sacrebleu_signature"]
    assert saved["metrics"]["copy_baseline"]["tokenized_bleu"] >= 0
    assert saved["timings"]["train_steps"] > 0 and saved["versions"]["torch"]
    assert saved["machine"]["cpu_capability"] and "cpu_model" in saved["machine"]  # what float rounding depends on
    assert Path(test["files"]["tsv"]).is_file() if "tsv" in test["files"] else test["files"]
    # same config again: skipped, record untouched
    mtime = Path(record["_path"]).stat().st_mtime_ns
    again = run_job(compose_cfg(sample, "shapeshift=r1_emb16"), tmp_path / "run")
    assert Path(again["_path"]).stat().st_mtime_ns == mtime
    # a different config is a different record
    dense = run_job(compose_cfg(sample), tmp_path / "dense")
    assert dense["config_hash"] != record["config_hash"]
    assert dense["params"]["reduction_vs_dense"] == 1.0


def test_bad_configs_fail_before_training(sample: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown fairseq Transformer override"):
        run_job(compose_cfg(sample, "+arch.overrides.encoder_layerz=3"), tmp_path / "a")
    with pytest.raises(ValueError, match="unknown layer type"):
        run_job(compose_cfg(sample, "shapeshift=sweep", "shapeshift.layers=[mlp]"), tmp_path / "b")
    missing = compose_cfg(sample, f"data.raw_dir={tmp_path / 'nowhere'}", f"data.work_dir={tmp_path / 'w2'}")
    with pytest.raises(Exception, match="nowhere"):
        run_job(missing, tmp_path / "c")
    assert not record_path(missing).exists() or json.loads(record_path(missing).read_text())["status"] != "done"


@pytest.mark.parametrize(("override", "message"), [
    ("optim.lr=0", "optim.lr must be a positive number"),
    ("optim.warmup_updates=0", "optim.warmup_updates"),
    ("+optim.factor_lr_scale=-1", "optim.factor_lr_scale"),
    ("trainer.max_epochs=0", "trains nothing"),
    ("+shapeshift.init_from=/no/such/run", "shapeshift.init_from needs shapeshift.init=project"),
    ("+optim.lrr=0.1", r"optim\.lrr is not a setting; did you mean optim\.lr\?"),
    ("+batching.max_token=100", r"did you mean batching\.max_tokens\?"),
    ("shapeshift=r8_emb64 rank=4", "rank=4 has no effect with shapeshift=r8-emb64"),
    ("shapeshift=r8_emb64 layers=attn", r"\['embedding'\] would have no effect"),
])
def test_bad_schedules_and_sources_fail_before_any_record(sample: Path, tmp_path: Path, override: str,
                                                          message: str) -> None:
    cfg = compose_cfg(sample, *override.split()) if override.startswith("shapeshift=") else \
        compose_cfg(sample, "shapeshift=sweep", override)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        run_job(cfg, tmp_path / "run")
    assert not record_path(cfg).exists()


def test_init_from_a_missing_dense_run_names_it(sample: Path, tmp_path: Path) -> None:
    cfg = compose_cfg(sample, "shapeshift=sweep", "shapeshift.init=project",
                      f"+shapeshift.init_from={tmp_path / 'dense'}")
    with pytest.raises(FileNotFoundError, match="train the dense run first"):
        run_job(cfg, tmp_path / "run")
    assert not record_path(cfg).exists()


def test_sweep_axes_compose_into_a_policy(tmp_path: Path) -> None:
    cfg = compose_cfg(tmp_path, "shapeshift=sweep", "rank=4", "scheme=exact3", "layers=attn_ffn")
    policy = policy_from_config(cfg.shapeshift)
    assert policy == {"attention": {"rank": 4, "order": 3, "scheme": "exact", "path": "auto"},
                      "ffn": {"rank": 4, "order": 3, "scheme": "exact", "path": "auto"}}
    assert cfg.shapeshift.name == "sweep-attn_ffn-r4-exact3"
    assert policy_from_config(compose_cfg(tmp_path).shapeshift) is None
    paper = policy_from_config(compose_cfg(tmp_path, "shapeshift=r1_emb16").shapeshift)
    assert paper["embedding"]["rank"] == 16 and paper["attention"]["rank"] == 1


def test_experiment_files_override_defaults(tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        demo = compose("train", overrides=["experiment=demo"])
        paper = compose("train", overrides=["experiment=iwslt14_paper"])
    assert demo.optim.lr == 3e-3 and demo.arch.overrides.encoder_embed_dim == 128
    assert paper.optim.lr == 2e-3 and paper.batching.max_sentences == 128


@pytest.mark.parametrize("skip_done", [None, True])
@pytest.mark.parametrize(("experiment", "task"), [("demo", "translation"), ("glue/snli_demo", "glue")])
def test_the_demos_train_where_their_committed_records_are_done(experiment: str, task: str, skip_done: bool | None,
                                                                monkeypatch, tmp_path: Path) -> None:
    """A fresh clone holds a demo's committed records, done and under the same config hash: `make demo` and `make
    demo-glue` must still train (reproduce-table runs, by contrast, skip what is recorded)."""
    from shapeshifter.experiment import runner

    overrides = [f"run.records={tmp_path / 'records'}"] + ([f"run.skip_done={skip_done}"] if skip_done else [])
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}", *overrides])
    path = record_path(cfg)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"status": "done"}))
    trained = []
    monkeypatch.setattr(runner, "run_task",
                        lambda built, out, rec: trained.append((built.kind, rec)) or {"status": "done"})
    run_job(cfg, tmp_path / "run")
    assert trained == ([] if skip_done else [(task, path)])


def test_evaluate_entry_point_rebuilds_model_from_run_dir(sample: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = compose_cfg(sample, "shapeshift=r8_emb64", "ckpt.monitor=valid_loss", LARGER)
    run_dir = tmp_path / "run"
    run_job(cfg, run_dir)
    script = Path(__file__).resolve().parents[2] / "pipelines" / "evaluate.py"
    done = subprocess.run([sys.executable, str(script), str(run_dir), "--split", "valid", "--beam", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (result_file,) = (run_dir / "eval").glob("valid-*.json")
    result = json.loads(result_file.read_text())
    assert result["num_sentences"] > 0 and "sacrebleu_signature" in result
    missing = subprocess.run([sys.executable, str(script), str(tmp_path / "nope")], capture_output=True, text=True)
    assert missing.returncode != 0 and "config.yaml not found" in missing.stderr


def test_evaluate_projects_a_dense_run_onto_a_policy_without_training(sample: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "pipelines" / "evaluate.py"

    def trained(name: str, *overrides: str) -> Path:
        cfg = compose_cfg(sample, "ckpt.monitor=valid_loss", "seed=7", *overrides)  # a seed no other test records
        run_job(cfg, tmp_path / name)
        return tmp_path / name

    def evaluate(run_dir: Path, *policy: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(script), str(run_dir), "--split", "valid", "--beam", "1",
                               "--project", *policy], capture_output=True, text=True, timeout=300)

    dense = trained("dense")
    done = evaluate(dense, "embedding.rank=4", "attention.rank=2", "ffn.rank=2")
    assert done.returncode == 0, done.stderr[-2000:]
    (result_file,) = (dense / "eval").glob("valid-*-project-*.json")
    projected = json.loads(result_file.read_text())["projected"]
    assert projected["policy"]["attention"] == {"rank": 2} and projected["reduction_vs_dense"] > 2
    assert set(projected["mean_reconstruction_error"]) == {"embedding", "attention", "ffn"}
    assert all(0 < e < 1 for e in projected["mean_reconstruction_error"].values())
    bad = evaluate(dense, "attention.rnak=2")
    assert bad.returncode != 0 and "rnak" in bad.stderr and "Traceback" not in bad.stderr
    factorized = evaluate(trained("kron", "shapeshift=r8_emb64", LARGER), "attention.rank=2")
    assert factorized.returncode != 0 and "already factorized" in factorized.stderr


def test_a_named_slice_of_the_sample_is_written_on_first_use(tmp_path: Path) -> None:
    from shapeshifter.translation.data.smoke import ensure_slice

    raw_dir = tmp_path / "raw"
    assert ensure_slice("sample_smoke", raw_dir)
    lines = (raw_dir / "train.tags.de-en.de").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1500
    assert not ensure_slice("sample_de_en", tmp_path / "other") and not (tmp_path / "other").exists()


def test_a_debug_run_is_never_recorded_as_done(sample: Path, tmp_path: Path) -> None:
    from shapeshifter.experiment.records import load_records

    cfg = compose_cfg(sample, "debug=fast", "shapeshift=r8_emb64", LARGER)
    record = run_job(cfg, tmp_path / "run")
    assert record["status"] == "debug" and record["training"]["steps"] == 5
    assert record_path(cfg).parent.name == "debug" and json.loads(record_path(cfg).read_text())["status"] == "debug"
    with pytest.raises(ValueError, match=r"not done: .*\(debug\)"):  # tables never use it: named, not dropped
        load_records(record_path(cfg).parent)
    assert load_records(record_path(cfg).parent, partial=True) == []
    assert run_job(cfg, tmp_path / "run")["status"] == "debug"  # and a rerun runs again instead of skipping
