"""How many torch threads an entry point uses: one rule for every script (``--threads N``) and Hydra job
(``run.threads``).

Why a rule at all: every torch process starts an intra-op pool as large as the machine's core count, so two
jobs on a 2-core machine run four busy threads on two cores, and each job gets many times slower than with one
thread each (oversubscription). The rule:

1. an explicit ``N`` (``--threads N``, ``run.threads=N``) wins;
2. otherwise, when several jobs share the machine -- the caller says how many, or the environment variable
   ``SHAPESHIFTER_JOBS`` does (``SHAPESHIFTER_JOBS=2 python pipelines/...``) -- each takes its share of the
   cores the process may run on, ``cores // jobs`` and at least 1 (so 1 per job on 2 cores);
3. otherwise torch's own default is left alone (all cores, or ``OMP_NUM_THREADS`` when set).
"""

from __future__ import annotations

import argparse
import os

JOBS_ENV = "SHAPESHIFTER_JOBS"
HELP = (f"torch intra-op threads (default: {JOBS_ENV} set to J > 1 jobs sharing this machine gives each "
        "cores // J threads, else torch's default)")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def jobs_from_env() -> int:
    """How many jobs ``SHAPESHIFTER_JOBS`` says share the machine (1 when unset); a bad value is an error."""
    value = os.environ.get(JOBS_ENV, "").strip()
    if not value:
        return 1
    try:
        jobs = int(value)
    except ValueError:
        raise ValueError(f"{JOBS_ENV} must be a whole number of jobs, got {value!r}") from None
    if jobs < 1:
        raise ValueError(f"{JOBS_ENV} must be >= 1, got {jobs}")
    return jobs


def resolve_threads(requested: int | None, jobs: int | None = None) -> int | None:
    """The thread count the rule gives, or None for "leave torch's default" (see the module docstring)."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads must be >= 1, got {requested}")
        return requested
    jobs = jobs_from_env() if jobs is None else jobs
    if jobs > 1:
        return max(1, available_cores() // jobs)
    return None


def apply_threads(requested: int | None, jobs: int | None = None) -> int:
    """Set torch's intra-op thread count by the rule; returns the count in effect (recorded by callers)."""
    import torch

    threads = resolve_threads(requested, jobs)
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def positive_int(text: str) -> int:
    """argparse type for ``--threads``: a whole number >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_threads_argument(parser: argparse.ArgumentParser, default: int | None = None, help: str = HELP) -> None:
    """``--threads N`` with the rule's default (None); an entry point with a reason to differ passes its own."""
    parser.add_argument("--threads", type=positive_int, default=default, metavar="N", help=help)
