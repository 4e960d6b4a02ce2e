"""Timing of several candidates that do the same work, interleaved so that a load spike on a shared machine
hits a whole repetition (all candidates) rather than one of them; ratios are then taken within a repetition."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch


def sync(device: torch.device) -> None:
    """Wait for queued device work, so a timing covers the kernels and not only their launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes, device work included."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def interleaved_times(fns: Mapping[str, Callable[[], Any]], device: torch.device, reps: int,
                      warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each candidate over ``reps`` repetitions (after ``warmup``), the candidates run back
    to back in an order rotated every repetition (no candidate always runs first, after a cold cache)."""
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(warmup + reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            t = timed(fns[name], device)
            if rep >= warmup:
                times[name].append(t)
    return times


def median_ratios(times: Mapping[str, list[float]], baseline: str) -> dict[str, float]:
    """Median over repetitions of each candidate's time divided by the baseline's in the same repetition."""
    base = times[baseline]
    return {name: statistics.median(t / b for t, b in zip(ts, base, strict=True)) for name, ts in times.items()}
