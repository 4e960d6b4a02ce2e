"""The one run skeleton every task goes through, so that each gets the same guarantees:

1. validate everything cheap (keys, schedule, trainer, loggers, `Task.validate`): a bad config fails before
   anything is written;
2. write the record ("running") and build data, model and LightningModule (`Task.setup`); a failure there
   (bad data, a shape that does not fit a matrix) marks the record "failed" with the error;
3. claim the config-hash-marked checkpoint folder and fit, resuming from ``last.ckpt`` (or, when that file is
   damaged, the previous epoch's, `training.resume_point`);
4. refuse to finish a run that stopped short of its schedule, evaluate (`Task.evaluate`), send the summary to
   the loggers and mark the record "done", closing the W&B run however the job ends. An error at any step after
   the record is written marks it "failed" with the error (a signal leaves it "running"); the next run of the
   same command resumes from ``last.ckpt`` either way.

Under DDP (`experiment.ddp`) steps 3-4's fit and evaluation run on every rank (`fit_and_evaluate`); everything that
writes (record, checkpoint folder, loggers, summary) happens on global rank zero only.

A task is an adapter: a `Task` subclass beside its engine that supplies the task-specific steps (translation:
`shapeshifter.translation.task.TranslationTask`, classification: `shapeshifter.glue.task.GlueTask`). The config
names it (``adapter._target_``, set by each ``conf/data`` file) and `build_task` builds it. The record's
``objective`` (what a Hydra sweeper optimizes) is the best value of the monitored validation metric, never a test score.
"""

from __future__ import annotations

import contextlib
import signal
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from shapeshifter.experiment.callbacks import make_callbacks, validate_callbacks
from shapeshifter.experiment.ddp import global_rank, launch_ranks, validate_cpu_ddp, world_size
from shapeshifter.experiment.loggers import finish_wandb, lightning_output_once, make_loggers, validate_loggers
from shapeshifter.experiment.records import (
    NO_DATA,
    claim_checkpoint_dir,
    fail_record,
    finish_record,
    new_record,
    without_unset,
    write_record,
)
from shapeshifter.experiment.settings import unknown_setting
from shapeshifter.experiment.wandb_records import attach_record

if TYPE_CHECKING:
    from shapeshifter.experiment.ddp_environment import LaunchedRank


def plain(node: Any) -> Any:
    """A config node as plain Python containers (resolved); anything else unchanged."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def validate_keys(cfg: DictConfig) -> None:
    """Refuse a setting added with ``+`` that its node's schema does not hold (`settings.unknown_setting`): a
    typo would otherwise train silently with the default."""
    problem = unknown_setting(cfg)
    if problem:
        raise ValueError(problem)


def validate_rank_axis(cfg: DictConfig) -> None:
    """The top-level ``rank`` (a sweep axis) only reaches policies that read it (``shapeshift=sweep``): with any
    other policy ``rank=4`` would change the config hash and nothing else."""
    rank = cfg.get("rank", 1)
    if rank != 1 and "${rank}" not in str(OmegaConf.to_container(cfg.shapeshift, resolve=False)):
        raise ValueError(f"rank={rank} has no effect with shapeshift={cfg.shapeshift.get('name')} (it sets its own "
                         "ranks): use shapeshift.rank=... with a named policy, or shapeshift=sweep rank=...")


def validate_schedule(cfg: DictConfig) -> None:
    """Fail before any work on an optimizer or trainer setting that cannot train."""
    for key, value in (("optim.lr", cfg.optim.lr), ("optim.factor_lr_scale", cfg.optim.get("factor_lr_scale", 1.0))):
        if not _positive_number(value):
            raise ValueError(f"{key} must be a positive number, got {value!r}")
    max_steps = cfg.trainer.get("max_steps") or -1
    if cfg.trainer.max_epochs is not None and cfg.trainer.max_epochs < 1 and max_steps <= 0:
        raise ValueError(f"trainer.max_epochs must be >= 1 (or set trainer.max_steps), got {cfg.trainer.max_epochs}: "
                         "a run that trains nothing would be recorded as done")


SEED_RANGE = (0, 2**32 - 1)  # what Lightning's seed_everything (and numpy's generator) accept


def validate_seed(cfg: DictConfig) -> None:
    """``seed`` outside Lightning's range would fail only once the data is prepared (``seed_everything``)."""
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise ValueError(f"seed must be a whole number in [{SEED_RANGE[0]}, {SEED_RANGE[1]}] (Lightning's range), "
                         f"got {seed!r}")


def validate_trainer(cfg: DictConfig) -> None:
    """A GPU trainer on a machine without one, or several CPU processes without the DDP strategy, fails here,
    naming the key, rather than inside Lightning after the record is written and the data prepared."""
    validate_cpu_ddp(cfg.trainer)
    accelerator = str(cfg.trainer.get("accelerator", "auto")).lower()
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"trainer.accelerator={accelerator} but CUDA is not available on this machine: use "
                             "trainer=cpu (or run on a GPU node)")
    elif accelerator == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise ValueError("trainer.accelerator=mps but MPS is not available on this machine: use trainer=cpu")


class Task(ABC):
    """The task-specific steps of a run; `run_task` calls them in order and owns everything else. Tools that open
    a finished run folder ask its task too (`data_content`, `require_translation`, `evaluate_folder`)."""

    kind: str  # the record's ``kind``

    def __init__(self, cfg: DictConfig, identity: str | None = NO_DATA) -> None:
        self.cfg = cfg
        self._identity = identity  # `identity`, when the caller knows it already (a run folder, a launched rank)

    def data_content(self, fetch: bool) -> str | None:
        """The identity of the run's data (`experiment.data_identity`), which the config hash covers in place of
        the data's paths; ``fetch``: get the inputs as the run would and raise when they are missing, else None
        when they are not (yet) here."""
        return None

    def identity(self) -> str | None:
        """`data_content` of the inputs as the run reads them (fetched once): what names the run's record, its
        run folder and its teacher's data."""
        if self._identity is NO_DATA:
            self._identity = self.data_content(fetch=True)
        return self._identity

    def make_local_inputs(self, root: Path) -> None:
        """Write what the run reads that the repo does not ship but can make on this machine (a named slice of
        the committed sample, a tiny local BERT for smoke runs); relative paths are under ``root``. Nothing by
        default."""
        return None

    def require_translation(self, tool: str, run: Any) -> None:
        """ValueError unless ``tool`` (export, translate: it rebuilds a fairseq Transformer) can open the finished
        run folder ``run`` (`experiment.run_folder.RunFolder`)."""
        raise ValueError(f"{run.path}: data.kind={self.kind!r}; {tool} works on translation runs only")

    @abstractmethod
    def evaluate_folder(self, run: Any, args: Any) -> tuple[dict[str, Any], str]:
        """Score a checkpoint of the finished run folder ``run`` again (``pipelines/evaluate.py``, its parsed
        ``args``); returns ``(report, result label)``."""

    @abstractmethod
    def validate(self) -> dict[str, Any]:
        """Check the config without reading data; returns fields for the record's header."""

    @abstractmethod
    def setup(self, record: dict[str, Any]) -> tuple[Any, Any]:
        """Prepare data and model; fill ``record["params"]``, ``record["timings"]``, ...; return
        ``(LightningModule, LightningDataModule)``."""

    @property
    @abstractmethod
    def monitor(self) -> tuple[str, str] | None:
        """``(metric, "min" | "max")`` that picks the best checkpoint and drives early stopping (None: none)."""

    @abstractmethod
    def checkpoint_callbacks(self, ckpt_dir: Path) -> list[Any]:
        """The monitored checkpoint callbacks, best-by-`monitor` first (``last.ckpt`` is the skeleton's)."""

    def trainer_options(self) -> dict[str, Any]:
        """Extra ``Trainer`` arguments of this task."""
        return {}

    @abstractmethod
    def train_timings(self, trainer: Any, module: Any, train_s: float) -> dict[str, Any]:
        """Timings of the fit for the record (``train_s``, ``train_steps``, ``train_step_s``, ...)."""

    @abstractmethod
    def evaluate(self, trainer: Any, module: Any, dm: Any, best_checkpoint: str | None,
                 record: dict[str, Any], out_dir: Path) -> None:
        """Evaluate the chosen weights; fill ``record["metrics"]`` and the evaluation timings."""

    def summary(self, record: dict[str, Any]) -> dict[str, float]:
        """Final scalars sent to every logger (W&B summary, CSV)."""
        return {}


TRAINER_TARGET = "lightning.pytorch.Trainer"  # the trainer of a config saved before trainer._target_ existed

# The task of a config saved before ``adapter`` existed (a teacher's or an evaluated run's folder), by ``data.kind``.
TASK_OF_KIND = {"translation": "shapeshifter.translation.task.TranslationTask",
                "glue": "shapeshifter.glue.task.GlueTask"}


def task_node(cfg: DictConfig) -> Any:
    """The config node that names the run's task (``adapter``), or the one its ``data.kind`` implies in a config
    saved before that node existed; None when neither names one."""
    node = cfg.get("adapter")
    if node is not None:
        return node
    target = TASK_OF_KIND.get(str((cfg.get("data") or {}).get("kind")))
    return {"_target_": target} if target else None


def build_task(cfg: DictConfig, identity: str | None = NO_DATA) -> Task:
    """The run's `Task`, built by Hydra from ``adapter._target_`` over the whole config (``identity``: its data's,
    when known)."""
    node = task_node(cfg)
    if node is None:
        kind = (cfg.get("data") or {}).get("kind")
        raise ValueError(f"data.kind must be 'translation' or 'glue', got {kind!r} (config group "
                         f"data={cfg.get('data')}); or name the task with adapter._target_")
    return instantiate(node, _partial_=True)(cfg, identity)


def training_callbacks(task: Task, ckpt_dir: Path) -> tuple[list[Any], int | None]:
    """The monitored checkpoints, ``last.ckpt``, early stopping, a step limit and the progress bar, in the order
    Lightning needs them (``last.ckpt`` after the monitored ones); returns ``(callbacks, step limit)``."""
    from lightning.pytorch.callbacks import RichProgressBar

    # Lightning and torch: train.py --help and reproduce.py list import this module without them
    from shapeshifter.experiment.training import StopAtStep, last_checkpoint_callback, stopping_callbacks

    cfg = task.cfg
    callbacks = [*task.checkpoint_callbacks(ckpt_dir), last_checkpoint_callback(ckpt_dir)]
    if task.monitor is not None:
        callbacks += stopping_callbacks(cfg.ckpt.get("patience"), *task.monitor)
    callbacks += make_callbacks(cfg)  # callbacks=...: ones that only watch (lr_monitor)
    step_limit = cfg.trainer.max_steps if (cfg.trainer.get("max_steps") or -1) > 0 else None
    if step_limit:
        callbacks.append(StopAtStep(step_limit))
    if cfg.trainer.get("progress_bar", "rich") == "rich":
        callbacks.append(RichProgressBar())
    return callbacks, step_limit


def build_trainer(task: Task, callbacks: list[Any], loggers: list[Any], out_dir: Path,
                  rank: LaunchedRank | None = None) -> Any:
    """The Trainer of ``cfg.trainer``, built by Hydra from its ``_target_`` (Lightning's Trainer); ``rank``: this
    process's place among ranks `experiment.ddp` launched (DDP over gloo with that environment). The datamodules shard
    their data by rank themselves, so Lightning must not swap in its ``DistributedSampler``."""
    # Lightning and torch: train.py --help and reproduce.py list import this module without them
    from shapeshifter.experiment.training import VerifiedCheckpointIO

    lightning_output_once()
    cfg = task.cfg
    progress = cfg.trainer.get("progress_bar", "rich")
    node = {k: v for k, v in plain(cfg.trainer).items() if k not in ("progress_bar", "plugins")}
    node.setdefault("_target_", TRAINER_TARGET)
    run = {"max_steps": -1,  # epoch-based in Lightning; a step limit is StopAtStep (experiment/training.py)
           "use_distributed_sampler": False, **task.trainer_options()}
    if rank is not None:
        from lightning.pytorch.strategies import DDPStrategy

        run["strategy"] = DDPStrategy(cluster_environment=rank, process_group_backend="gloo")
    # every checkpoint Lightning reads (resume, validate/test with ckpt_path) is CRC-checked and loaded with
    # weights_only=True, and every one it writes is written atomically in its own folder (experiment.training)
    plugins = [*(plain(cfg.trainer.get("plugins")) or []), VerifiedCheckpointIO()]
    return instantiate(node, _partial_=True, _convert_="all")(
        default_root_dir=str(out_dir), callbacks=callbacks, logger=loggers, plugins=plugins,
        gradient_clip_val=cfg.optim.clip_norm or None,
        enable_progress_bar=progress not in (None, False, "none", "off", "false"), **run)


def csv_log(loggers: list[Any]) -> Path | None:
    """The CSV logger's ``metrics.csv`` (None when the run has no CSV logger)."""
    from lightning.pytorch.loggers import CSVLogger

    csv_logger = next((lg for lg in loggers if isinstance(lg, CSVLogger)), None)
    return Path(csv_logger.log_dir) / "metrics.csv" if csv_logger is not None else None


def set_objective(record: dict[str, Any], monitor: tuple[str, str] | None) -> None:
    """The value a sweeper optimizes: the best monitored validation score of the fit (None without one)."""
    best = record.get("training", {}).get("best")
    record["objective"] = best if monitor is not None else None
    record["objective_metric"], record["objective_mode"] = monitor if monitor is not None else (None, None)


def validate_run(cfg: DictConfig) -> None:
    """Every cheap check of the shared config nodes (the task checks its own in `Task.validate`)."""
    validate_keys(cfg)
    validate_rank_axis(cfg)
    validate_seed(cfg)
    validate_schedule(cfg)
    validate_trainer(cfg)
    validate_loggers(cfg.get("logger"))
    validate_callbacks(cfg)


def fit_and_evaluate(task: Task, module: Any, dm: Any, loggers: list[Any], rank: LaunchedRank | None,
                     resume: Path | None, record: dict[str, Any], out_dir: Path) -> None:
    """Fit (resuming from ``resume``), check the schedule was completed and evaluate, filling ``record``: what every
    rank of a DDP run does alike (the collectives of one rank are matched by the others')."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    # Lightning and torch: train.py --help and reproduce.py list import this module without them
    from shapeshifter.experiment.training import (
        check_schedule_completed,
        expected_steps,
        learning_curve,
        training_summary,
    )

    cfg = task.cfg
    callbacks, step_limit = training_callbacks(task, out_dir / "checkpoints")
    trainer = build_trainer(task, callbacks, loggers, out_dir, rank)
    t0 = time.perf_counter()
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume else None)
    except SIGTERMException as stop:  # Lightning's carries no exit code, so a job killed with SIGTERM exited 0
        raise SystemExit(128 + signal.SIGTERM) from stop
    record.setdefault("timings", {}).update(task.train_timings(trainer, module, time.perf_counter() - t0))
    record["training"] = training_summary(trainer, callbacks, max_steps=step_limit)
    record["training"]["curve"] = learning_curve(csv_log(loggers), (task.monitor or (None,))[0],
                                                 record["training"]["epochs"])
    check_schedule_completed(record["training"], expected_steps(trainer, cfg.trainer.max_epochs, step_limit))
    best = callbacks[0].best_model_path or None
    task.evaluate(trainer, module, dm, best, record, out_dir)


def finish_run(task: Task, record: dict[str, Any], record_path: Path, loggers: list[Any]) -> None:
    """Objective, summary to the loggers, and the record marked "done" (or "debug"), sent to W&B too."""
    set_objective(record, task.monitor)
    summary = task.summary(record)
    for logger in loggers:
        logger.log_metrics(summary)
        logger.save()
    if task.cfg.run.get("debug"):  # a check that the config runs: never a result a table or a sweep could use
        record["status"] = "debug"
        write_record(record, record_path)
    else:
        finish_record(record, record_path)
    attach_record(record)  # the final record also goes to the W&B run, before it is closed


def start_record(task: Task, record_path: Path, writes: bool) -> tuple[dict[str, Any], Any, Any]:
    """The record ("running", written when ``writes``) and the task's module and datamodule; a setup failure
    marks the record "failed"."""
    cfg = task.cfg
    header = task.validate()
    record = new_record(without_unset(plain(cfg)), kind=task.kind, data_content=task.identity())
    record.update(header)
    record["world_size"] = world_size(cfg.trainer)
    if writes:
        write_record(record, record_path)
    try:
        module, dm = task.setup(record)
    except Exception as err:
        if writes:
            fail_record(record, record_path, err)
        raise
    if writes:
        write_record(record, record_path)
    return record, module, dm


def run_task(task: Task, out_dir: Path, record_path: Path) -> dict[str, Any]:
    """Run one job of ``task`` from config to "done" record (module docstring).

    On a rank other than global rank zero of an externally launched DDP job nothing is written: it fits and
    evaluates with the others and returns its unwritten record.
    """
    # Lightning and torch: train.py --help and reproduce.py list import this module without them
    from shapeshifter.experiment.training import resume_point

    cfg = task.cfg
    validate_run(cfg)
    zero = global_rank() == 0
    record, module, dm = start_record(task, record_path, writes=zero)
    ckpt_dir = out_dir / "checkpoints"
    try:
        if zero:
            claim_checkpoint_dir(ckpt_dir, record["config_hash"])
        resume = resume_point(ckpt_dir, move_damaged=zero) if cfg.run.resume else None
        record["resumed_from"] = str(resume) if resume else None
        loggers = make_loggers(cfg.get("logger"), out_dir, cfg.run.name, cfg.run.group,
                               record["config"]) if zero else []  # the loggers show the config as recorded
        with launch_ranks(fit_and_evaluate, task, out_dir, resume) as rank:
            fit_and_evaluate(task, module, dm, loggers, rank, resume, record, out_dir)
        if zero:
            finish_run(task, record, record_path, loggers)
    except Exception as err:  # a signal (SystemExit, KeyboardInterrupt) leaves it "running", to be resumed
        if zero:  # never left "running" by an error; the next run of the command resumes from last.ckpt
            with contextlib.suppress(OSError):  # a full disk: the error raised is the run's, not this one
                fail_record(record, record_path, err)
        raise
    finally:
        finish_wandb()  # one W&B run per job, closed even when the job fails
    return record
