"""Data-parallel (DDP) runs of the run skeleton: which process is which rank, and how a CPU run starts its ranks.

Every rank runs the same fit and evaluation (`task.fit_and_evaluate`, handed to `launch_ranks` by the skeleton, so
that this module does not import it back); only global rank zero writes: the
record, the checkpoints (Lightning saves on rank zero only), the CSV and W&B logs, the translations.

Two ways ranks come to exist:

* launched here (``trainer=ddp_cpu``: ``accelerator=cpu``, ``devices=N``, ``strategy=ddp``): the job's own
  process is rank 0 and keeps the record-writing logic and the fit's full state (steps, callbacks, metrics);
  `launch_ranks` starts ranks 1..N-1 as fresh processes (multiprocessing's ``forkserver``: the server is a new
  interpreter that has never run an OpenMP parallel region, so its forks are safe, and it imports torch,
  Lightning and fairseq once for all the ranks and runs of the job). Each rebuilds the task from the resolved
  config (`Task.setup` reads the data rank 0 has just prepared and cached) and joins the gloo process group
  through `LaunchedRank`. Why not Lightning's ``ddp_fork`` or ``ddp_spawn``: a child forked from a process whose
  OpenMP thread pool has run (every PyTorch process that trained or built a model) can hang in its first
  parallel region, and both run the fit in children whose state (global step, best score, early stopping) the
  parent that writes the record never sees;
* launched outside (torchrun, SLURM, Lightning's own launcher for ``trainer=ddp`` on GPUs): every process runs
  the whole job and `global_rank` tells it whether it writes.

A rank that fails takes the job down: its traceback goes to stderr, rank 0's next collective fails when the
connection closes, the record is marked "failed" with the error and the next attempt resumes from ``last.ckpt``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import socket
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Lightning is imported when ranks are launched, not by every importer of the skeleton
    from shapeshifter.experiment.ddp_environment import LaunchedRank

log = logging.getLogger("shapeshifter")

DDP_STRATEGY = "ddp"
# imported by the forkserver once, so that each rank starts without re-importing them
PRELOAD = ["torch", "lightning.pytorch", "shapeshifter.experiment.task", "shapeshifter.translation.module",
           "shapeshifter.glue.module", "fairseq.models.transformer"]
JOIN_TIMEOUT_S = 120.0  # how long rank 0 waits for the others to exit once its own work is done


def global_rank() -> int:
    """This process's global rank as the environment gives it before any Trainer exists (``RANK``,
    ``LOCAL_RANK``, ``SLURM_PROCID``: Lightning's reading); 0 for a job this module launches ranks for."""
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0))


def _accelerator(trainer_cfg: Any) -> str:
    import torch

    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
    return "gpu" if accelerator == "auto" and torch.cuda.is_available() else accelerator


def world_size(trainer_cfg: Any) -> int:
    """How many ranks the ``trainer`` node asks for: ``devices`` (a count, a list of ids, or -1 / "auto": every
    GPU, one CPU process) x ``num_nodes``."""
    import torch

    devices = trainer_cfg.get("devices", 1)
    if isinstance(devices, list | tuple):
        count = len(devices)
    elif devices in (-1, "-1", "auto", None):
        count = torch.cuda.device_count() if _accelerator(trainer_cfg) in ("gpu", "cuda") else 1
    else:
        count = int(devices)
    return max(1, count) * int(trainer_cfg.get("num_nodes", 1) or 1)


def launches_here(trainer_cfg: Any) -> bool:
    """Whether `launch_ranks` starts this job's ranks: several CPU processes on one node, no outside launcher."""
    return (_accelerator(trainer_cfg) in ("cpu", "auto") and world_size(trainer_cfg) > 1
            and "LOCAL_RANK" not in os.environ)


def validate_cpu_ddp(trainer_cfg: Any) -> None:
    """Several CPU processes need the one strategy this project launches (module docstring), on one node."""
    if _accelerator(trainer_cfg) not in ("cpu", "auto"):
        return
    devices = trainer_cfg.get("devices", 1)
    if devices not in (None, "auto") and (isinstance(devices, bool) or not isinstance(devices, int) or devices < 1):
        raise ValueError(f"trainer.devices={devices!r} on CPU: give the number of processes (an integer >= 1)")
    if world_size(trainer_cfg) == 1:
        return
    if int(trainer_cfg.get("num_nodes", 1) or 1) != 1:
        raise ValueError("trainer.num_nodes > 1 on CPU: the ranks of a CPU run are processes of one machine")
    strategy = trainer_cfg.get("strategy")
    if strategy != DDP_STRATEGY:
        raise ValueError(f"trainer.devices={devices} on CPU runs {devices} processes and needs trainer.strategy=ddp "
                         f"(trainer=ddp_cpu), got {strategy!r}: ddp_spawn and ddp_fork run the fit in children whose "
                         "state the record never sees, and forked children can hang in OpenMP")
    method = multiprocessing.get_start_method(allow_none=True)
    if method not in (None, "fork", "spawn", "forkserver"):  # e.g. "loky": a launcher=local worker
        raise ValueError(f"trainer.devices={devices} on CPU: this job runs in a {method!r} worker process (launcher="
                         "local?), which cannot start the other ranks; run DDP jobs without a parallel launcher")


@dataclass
class RankJob:
    """What a launched rank needs to rebuild the task and join the fit (everything picklable: ``work`` is a
    module-level function, pickled by name)."""

    work: Callable[..., None]  # fit_and_evaluate(task, module, dm, loggers, rank, resume, record, out_dir)
    task_cls: type
    config: dict  # resolved: the rank needs no Hydra context
    out_dir: Path
    resume: Path | None
    rank: int
    world: int
    port: int
    threads: int
    identity: str | None  # the data's identity (`Task.identity`), fetched once by the launching process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent(sig: int | None = None) -> None:
    """Linux: this process gets ``sig`` (default SIGKILL) when its parent dies (``PR_SET_PDEATHSIG``); elsewhere
    nothing. Usable as a ``preexec_fn``: a child started so is stopped when the process that started it is."""
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL if sig is None else sig)  # PR_SET_PDEATHSIG


def _die_with_parent() -> None:
    """Linux: this rank is killed when its parent (the forkserver, which exits with rank 0) dies."""
    die_with_parent()


def rank_main(job: RankJob, ready: Any) -> None:
    """Entry point of launched rank ``job.rank`` > 0: rebuild the task, tell rank 0 it is ready (or send the
    traceback of why not), then fit and evaluate with the others; it writes nothing."""
    _die_with_parent()
    import torch
    from omegaconf import OmegaConf

    # Lightning: importing the run skeleton (train.py --help, reproduce.py list) does not load it
    from shapeshifter.experiment.ddp_environment import LaunchedRank

    torch.set_num_threads(job.threads)
    try:
        task = job.task_cls(OmegaConf.create(job.config), identity=job.identity)
        task.validate()
        record: dict[str, Any] = {}
        module, dm = task.setup(record)
    except BaseException:
        ready.send(traceback.format_exc())
        raise
    ready.send(None)
    ready.close()
    job.work(task, module, dm, [], LaunchedRank(job.rank, job.world, job.port), job.resume, record, job.out_dir)


def _wait_ready(procs: list, conns: list) -> None:
    """Block until every launched rank has built its task; a rank that fails first is an error with its
    traceback (rank 0 would otherwise wait for it in the process group's rendezvous for half an hour)."""
    for proc, conn in zip(procs, conns, strict=True):
        while not conn.poll(1.0):
            if not proc.is_alive():
                raise RuntimeError(f"{proc.name} exited with code {proc.exitcode} before it was ready")
        try:
            message = conn.recv()
        except EOFError:
            proc.join(5.0)
            raise RuntimeError(f"{proc.name} exited with code {proc.exitcode} before it was ready") from None
        if message is not None:
            raise RuntimeError(f"{proc.name} failed while preparing its task:\n{message}")


def _stop(procs: list, timeout: float) -> list[str]:
    """Join the launched ranks (killing those still alive after ``timeout`` s); the ones that failed."""
    failed = []
    for proc in procs:
        proc.join(timeout)
        if proc.is_alive():
            proc.kill()
            proc.join()
            failed.append(f"{proc.name} (killed after {timeout:.0f} s)")
        elif proc.exitcode != 0:
            failed.append(f"{proc.name} (exit code {proc.exitcode})")
    return failed


def _start(work: Callable[..., None], task: Any, out_dir: Path, resume: Path | None, world: int,
           threads: int) -> tuple[int, list, list]:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    port = _free_port()
    config = _resolved(task.cfg)
    procs, conns = [], []
    for rank in range(1, world):
        receive, send = ctx.Pipe(duplex=False)
        job = RankJob(work, type(task), config, out_dir, resume, rank, world, port, threads, task.identity())
        proc = ctx.Process(target=rank_main, args=(job, send), name=f"rank {rank}")
        proc.start()
        send.close()
        procs.append(proc)
        conns.append(receive)
    return port, procs, conns


def _resolved(cfg: Any) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)


@contextlib.contextmanager
def launch_ranks(work: Callable[..., None], task: Any, out_dir: Path,
                 resume: Path | None) -> Iterator[LaunchedRank | None]:
    """In the body, this process is rank 0 of the ranks started here (yields its cluster environment for the
    Trainer), or the job needs none (yields None: one process, or ranks launched outside). Each started rank
    rebuilds ``task`` and calls ``work`` (the skeleton's fit and evaluation) with its own rank.

    The job's torch threads are shared by its ranks. On leaving, the other ranks are joined (an error if one
    failed, so that the record is not finished) and the process group is destroyed, so that a later job of this
    process starts a fresh one.
    """
    import torch

    # Lightning: importing the run skeleton (train.py --help, reproduce.py list) does not load it
    from shapeshifter.experiment.ddp_environment import LaunchedRank

    if not launches_here(task.cfg.trainer):
        yield None
        return
    world = world_size(task.cfg.trainer)
    before = torch.get_num_threads()
    threads = max(1, before // world)
    saved_env = {k: os.environ.get(k) for k in ("MASTER_ADDR", "MASTER_PORT")}
    port, procs, conns = _start(work, task, out_dir, resume, world, threads)
    torch.set_num_threads(threads)
    try:
        _wait_ready(procs, conns)
        yield LaunchedRank(0, world, port)
    except BaseException:
        _end_process_group()
        _stop(procs, timeout=10.0)
        raise
    else:
        failed = _stop(procs, timeout=JOIN_TIMEOUT_S)
        if failed:
            raise RuntimeError(f"DDP rank(s) failed: {', '.join(failed)} (their output is above)")
    finally:
        _end_process_group()
        torch.set_num_threads(before)
        _restore_env(saved_env)


def _restore_env(saved: dict[str, str | None]) -> None:
    """Lightning exports MASTER_ADDR/MASTER_PORT when it joins the process group: undo that for later jobs."""
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _end_process_group() -> None:
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
