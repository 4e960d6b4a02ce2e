"""DDP on CPU: 2 processes over gloo (``trainer=ddp_cpu``) for the tiny translation and GLUE runs.

What must hold: one record ("done") and one run folder, written by rank 0 only; validation/test metrics that
are those of the whole split (recomputed here in one process from the run's own checkpoint); the step count
of each rank's equal share of the batches; and a run killed in its second epoch that resumes from
``last.ckpt`` to the same end as an uninterrupted one. The sharding rules themselves are checked without
processes first.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from tiny_configs import TINY_TRANSLATION  # noqa: E402

from shapeshifter.distributed import eval_shard, rank_seed, rank_share  # noqa: E402
from shapeshifter.experiment.runner import record_path, run_job  # noqa: E402

CONF = Path(__file__).resolve().parents[2] / "conf"
DDP = ["trainer=ddp_cpu", "trainer.progress_bar=none", "+trainer.enable_model_summary=false",
       "logger.wandb.enabled=false"]
# max_tokens=256: 27 training batches (14 per rank, one repeated), 2 validation batches (one per rank, each the
# batch a single process evaluates), 5 test batches
TRANSLATION = [*TINY_TRANSLATION, "trainer.max_epochs=2", "batching.max_tokens=256", "eval.bleu_max_sentences=8"]
# 75 examples per split: uneven evaluation blocks (38 + 37) and a padded training share (38 per rank)
GLUE = ["experiment=glue/snli_demo", "glue.max_examples=75", "glue.batch_size=16", "glue.max_length=48",
        "arch.d_model=32", "arch.d_ff=64", "trainer.max_epochs=2"]
N_GLUE, KILL_GLUE_AT, KILL_TRANSLATION_AT = 75, 4, 19  # steps: GLUE 3 per epoch, translation 14 per epoch


pytestmark = pytest.mark.usefixtures("one_thread")


def _compose(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def _translation_cfg(sample: Path, tmp: Path, *extra: str) -> DictConfig:
    return _compose(f"data.raw_dir={sample / 'raw'}", f"data.work_dir={sample / 'work'}",
                    f"run.records={tmp / 'records'}", *TRANSLATION, *DDP, *extra)


def _glue_cfg(tmp: Path, *extra: str) -> DictConfig:
    return _compose(f"run.records={tmp / 'records'}", *GLUE, *DDP, *extra)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _only_record(tmp: Path) -> dict:
    (path,) = (tmp / "records").rglob("*.json")  # exactly one record, whatever the ranks did
    return json.loads(path.read_text())


def _fail_in_epoch_two(module_cls: type, at_step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 0 (this process) raises after ``at_step`` optimizer steps, as a job killed mid-epoch; rank 1 runs the
    unpatched module in its own process and is taken down with it."""
    original = module_cls.on_train_batch_end

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        original(self, outputs, batch, batch_idx)
        if self.global_step >= at_step:
            raise RuntimeError("killed in epoch 2")

    monkeypatch.setattr(module_cls, "on_train_batch_end", on_train_batch_end)


# -- sharding, without processes ------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "world"), [(27, 2), (8, 3), (1, 2), (6, 2)])
def test_training_shares_are_equal_and_cover_every_item(n: int, world: int) -> None:
    order = np.random.default_rng(0).permutation(n)
    shares = [rank_share(order, rank, world) for rank in range(world)]
    assert {len(s) for s in shares} == {math.ceil(n / world)}  # the same number of steps on every rank
    assert set(np.concatenate(shares)) == set(range(n))
    assert rank_share(order, 0, 1) is order  # one process: untouched


@pytest.mark.parametrize(("n", "world"), [(75, 2), (7, 3), (2, 2)])
def test_evaluation_blocks_are_disjoint_nonempty_and_in_order(n: int, world: int) -> None:
    blocks = [eval_shard(n, rank, world) for rank in range(world)]
    assert all(len(b) for b in blocks) and np.concatenate(blocks).tolist() == list(range(n))
    with pytest.raises(ValueError, match="cannot be shared by 3 ranks"):
        eval_shard(2, 0, 3)


def test_translation_samplers_shard_batches_without_reforming_them() -> None:
    from shapeshifter.translation.datamodule import TokenBatchSampler, split_for_ranks

    batches = [np.arange(i * 10, i * 10 + 10 - i) for i in range(5)]
    train = [TokenBatchSampler(batches, seed=3, shuffle=True, rank=r, world=2) for r in (0, 1)]
    for epoch in (0, 1):
        for s in train:
            s.set_epoch(epoch)
        served = [list(s) for s in train]
        assert [len(x) for x in served] == [len(s) for s in train] == [3, 3]  # 5 batches, one served twice
        assert {tuple(b) for b in served[0] + served[1]} == {tuple(b.tolist()) for b in batches}
    valid = [list(TokenBatchSampler(batches, seed=3, shuffle=False, rank=r, world=2)) for r in (0, 1)]
    assert valid == [[batches[i].tolist() for i in (0, 2, 4)], [batches[i].tolist() for i in (1, 3)]]
    # one batch of 7 sentences for 2 ranks: halved; 1 sentence for 2 ranks: an error naming the split
    assert [len(b) for b in split_for_ranks([np.arange(7)], 2, "valid")] == [3, 4]
    with pytest.raises(ValueError, match="valid split has 1 sentence"):
        split_for_ranks([np.arange(1)], 2, "valid")


def test_glue_training_sampler_pads_each_epoch_permutation() -> None:
    from shapeshifter.glue.data import EpochShuffleSampler

    samplers = [EpochShuffleSampler(75, seed=1, rank=r, world=2) for r in (0, 1)]
    single = EpochShuffleSampler(75, seed=1)
    for epoch in (0, 1):
        for s in (*samplers, single):
            s.set_epoch(epoch)
        a, b = (list(s) for s in samplers)
        assert len(a) == len(b) == len(samplers[0]) == 38
        assert set(a) | set(b) == set(range(75)) and a[0] == list(single)[0]


def test_ranks_draw_their_own_dropout_seeds() -> None:
    assert rank_seed(11, 0) == 11  # rank 0 (and a single process) as before
    assert len({rank_seed(11, r) for r in range(4)}) == 4 and rank_seed(11, 1) == rank_seed(11, 1)


# -- configuration ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("overrides", "message"), [
    (["trainer=cpu", "trainer.devices=2"], "needs trainer.strategy=ddp"),
    (["trainer=ddp_cpu", "trainer.strategy=ddp_spawn"], "ddp_spawn and ddp_fork"),
    (["trainer=ddp_cpu", "trainer.devices=0"], "number of processes"),
    (["trainer=ddp_cpu", "trainer.num_nodes=2"], "processes of one machine"),
])
def test_bad_cpu_ddp_settings_fail_before_any_record(tmp_path: Path, overrides: list[str], message: str) -> None:
    cfg = _compose(f"run.records={tmp_path / 'records'}", *GLUE, "logger.wandb.enabled=false", *overrides)
    with pytest.raises(ValueError, match=message):
        run_job(cfg, tmp_path / "out")
    assert not record_path(cfg).exists() and not list((tmp_path / "out").rglob("checkpoints"))


def test_ddp_cpu_is_the_cpu_trainer_with_two_ddp_processes() -> None:
    cpu = OmegaConf.to_container(_compose("trainer=cpu").trainer)
    ddp = OmegaConf.to_container(_compose("trainer=ddp_cpu").trainer)
    assert ddp == {**cpu, "devices": 2, "num_nodes": 1, "strategy": "ddp"}


def test_a_rank_that_dies_before_it_is_ready_is_an_error() -> None:
    from shapeshifter.experiment.ddp import _wait_ready

    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=os._exit, args=(3,), name="rank 1")
    proc.start()
    send.close()
    with pytest.raises(RuntimeError, match="rank 1 exited with code 3 before it was ready"):
        _wait_ready([proc], [receive])


# -- translation -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def translation_run(sample: Path, tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("translation_ddp")
    torch.set_num_threads(1)
    record = run_job(_translation_cfg(sample, tmp), tmp / "out")
    return tmp, record


def _validate_alone(cfg: DictConfig, task_cls: type, ckpt: Path) -> tuple[object, list[dict]]:
    """One process, the run's own checkpoint, the whole validation split: what the DDP run must have logged."""
    import lightning as L

    task = task_cls(cfg)
    task.validate()
    module, dm = task.setup({})
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    return module, trainer.validate(module, datamodule=dm, ckpt_path=str(ckpt), verbose=False)


def _run_folders(job_dir: Path) -> list[Path]:
    """The config-hash folders of a job folder (beside them: the job's config, ``.hydra/config.yaml``)."""
    return [p for p in job_dir.iterdir() if p.name != ".hydra"]


def test_translation_ddp_writes_one_record_with_whole_split_metrics(translation_run: tuple[Path, dict],
                                                                     sample: Path) -> None:
    from shapeshifter.translation.datamodule import TranslationDataModule
    from shapeshifter.translation.task import TranslationTask

    tmp, record = translation_run
    assert record["status"] == "done" and record["world_size"] == 2 and _only_record(tmp)["status"] == "done"
    (run_dir,) = _run_folders(tmp / "out")  # one run folder: rank 1 wrote nothing
    assert run_dir.name == record["config_hash"]
    files = _files(run_dir)
    assert [f for f in files if f.startswith("csv/")] == ["csv/hparams.yaml", "csv/metrics.csv"]
    assert {f for f in files if f.startswith("translations/")} == {
        "translations/test.hyp.detok.txt", "translations/test.hyp.tok.txt", "translations/test.tsv"}
    # each rank takes 14 of the 27 training batches an epoch
    dm = TranslationDataModule(str(sample / "work" / "data-bin"), "de", "en", max_tokens=256, max_source_positions=256,
                               max_target_positions=256)
    assert len(dm.batches("train")) == 27 and record["training"]["steps"] == record["timings"]["train_steps"] == 28
    # test: every sentence translated once, by rank 0
    assert record["metrics"]["test"]["num_sentences"] == 24
    assert len((run_dir / "translations" / "test.hyp.tok.txt").read_text().splitlines()) == 24
    # validation: the last epoch's logged values are those of last.ckpt's weights on the whole split
    _, (alone,) = _validate_alone(_translation_cfg(sample, tmp), TranslationTask, run_dir / "checkpoints" / "last.ckpt")
    valid = record["metrics"]["valid"]
    for key in ("valid_loss", "valid_nll_loss", "valid_ppl"):
        assert valid[key] == pytest.approx(alone[key], rel=1e-5), key
    assert valid["valid_bleu"] == alone["valid_bleu"]
    curve = record["training"]["curve"]
    assert [c["epoch"] for c in curve] == [0, 1] and curve[-1]["valid_bleu"] == valid["valid_bleu"]


def test_translation_ddp_killed_in_epoch_two_resumes_to_the_same_end(translation_run: tuple[Path, dict], sample: Path,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from shapeshifter.translation.module import TranslationModule

    _, straight = translation_run
    with monkeypatch.context() as patch:
        _fail_in_epoch_two(TranslationModule, KILL_TRANSLATION_AT, patch)
        with pytest.raises(RuntimeError, match="killed in epoch 2"):
            run_job(_translation_cfg(sample, tmp_path), tmp_path / "out")
    # an error marks the record "failed" (issue 25: never left "running"); the rerun resumes from last.ckpt all the same
    assert _only_record(tmp_path)["status"] == "failed" and "killed in epoch 2" in _only_record(tmp_path)["error"]
    (last,) = (tmp_path / "out").glob("*/checkpoints/last.ckpt")
    assert torch.load(last, weights_only=True)["global_step"] == 14  # epoch 1's

    resumed = run_job(_translation_cfg(sample, tmp_path), tmp_path / "out")
    assert resumed["status"] == "done" and resumed["resumed_from"].endswith("last.ckpt")
    assert _only_record(tmp_path)["status"] == "done" and len(_run_folders(tmp_path / "out")) == 1
    assert resumed["training"]["steps"] == straight["training"]["steps"] == 28
    for split in ("valid", "train"):
        assert resumed["metrics"][split] == pytest.approx(straight["metrics"][split], rel=1e-6), split
    test_a, test_b = resumed["metrics"]["test"], straight["metrics"]["test"]
    assert (test_a["tokenized_bleu"], test_a["num_sentences"]) == (test_b["tokenized_bleu"], test_b["num_sentences"])


# -- GLUE ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def glue_run(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("glue_ddp")
    torch.set_num_threads(1)
    return tmp, run_job(_glue_cfg(tmp), tmp / "out")


def test_glue_ddp_scores_every_example_once_and_writes_one_record(glue_run: tuple[Path, dict]) -> None:
    from shapeshifter.glue.task import GlueTask

    tmp, record = glue_run
    assert record["status"] == "done" and record["world_size"] == 2 and _only_record(tmp)["status"] == "done"
    (run_dir,) = _run_folders(tmp / "out")
    assert _files(run_dir) == ["checkpoints/CONFIG_HASH", "checkpoints/best.ckpt", "checkpoints/last.ckpt",
                               "checkpoints/last.prev.ckpt", "csv/hparams.yaml", "csv/metrics.csv"]
    # 38 training examples per rank (75 padded to 76) in batches of 16: 3 steps an epoch
    assert record["schedule"] == {"max_steps": 6, "warmup_steps": 0, "steps_per_epoch": 3}
    assert record["training"]["steps"] == 6 and record["training"]["stopped_by"] == "max_epochs"
    assert record["task"]["examples"] == {"train": N_GLUE, "validation": N_GLUE, "test": N_GLUE}
    assert record["metrics"]["examples"] == {"validation": N_GLUE, "test": N_GLUE}
    # the evaluated checkpoint scored by one process on the whole splits
    best = run_dir / "checkpoints" / "best.ckpt"
    module, _ = _validate_alone(_glue_cfg(tmp), GlueTask, best)
    assert module.examples == {"validation": N_GLUE}
    for key, value in record["metrics"]["validation"].items():
        assert value == pytest.approx(module.metrics[f"val/{key}"], abs=1e-6), key
    assert record["objective"] == pytest.approx(record["metrics"]["validation"]["accuracy"], abs=1e-6)


def test_glue_ddp_killed_in_epoch_two_resumes_to_the_same_end(glue_run: tuple[Path, dict], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from shapeshifter.glue.module import GlueClassifierModule

    _, straight = glue_run
    with monkeypatch.context() as patch:
        _fail_in_epoch_two(GlueClassifierModule, KILL_GLUE_AT, patch)
        with pytest.raises(RuntimeError, match="killed in epoch 2"):
            run_job(_glue_cfg(tmp_path), tmp_path / "out")
    assert _only_record(tmp_path)["status"] == "failed" and "killed in epoch 2" in _only_record(tmp_path)["error"]

    resumed = run_job(_glue_cfg(tmp_path), tmp_path / "out")
    assert resumed["status"] == "done" and resumed["resumed_from"].endswith("last.ckpt")
    assert _only_record(tmp_path)["status"] == "done"
    assert resumed["training"]["steps"] == straight["training"]["steps"] == 6
    assert resumed["training"]["best"] == straight["training"]["best"]
    for split in ("validation", "test"):
        assert resumed["metrics"][split] == pytest.approx(straight["metrics"][split], rel=1e-6), split
    assert resumed["metrics"]["examples"] == straight["metrics"]["examples"]
