"""Where a training step's time goes: wall time against the time the device spends in kernels, and how many
kernels a step launches, per model and batch size.

A step whose kernels fill only a small part of its wall time is bound by launching them (Python, the framework,
the driver), not by arithmetic; there, a model with more and smaller kernels is slower at equal FLOPs, and a
larger batch narrows the gap. These numbers tell which regime a time ratio of Table 1 was measured in.

On every device (CPU included, where the profiler sees no kernels) a step's operators are also counted at the
dispatcher (`count_ops`): each non-view aten operator the forward, backward and optimizer dispatch, which is what
becomes a kernel launch on a GPU (a fused or compiled step dispatches fewer).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from .timing import sync, timed

LAUNCH_CALLS = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx")


def _device_kernels(events: Sequence[Any]) -> list[Any]:
    """The averaged profiler events that ran on the GPU (kernels and copies), without the spans of user
    annotations (the optimizer's step shows on the GPU timeline too, around kernels already counted)."""
    return [e for e in events if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)]


class _OpCounter(TorchDispatchMode):
    """Counts the aten operators dispatched inside it, views and ``detach`` left out (they launch nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if not func.is_view and func is not torch.ops.aten.detach.default:
            self.counts[func.__name__] += 1
        return func(*args, **(kwargs or {}))


def count_ops(step: Callable[[], None]) -> Counter[str]:
    """How many times one call of ``step`` dispatches each non-view aten operator (``"mm.default"``: 96, ...).

    A compiled region dispatches its fused kernels as one call each, so eager and compiled steps compare."""
    with _OpCounter() as counter:
        step()
    return counter.counts


def profile_steps(step: Callable[[], None], device: torch.device, steps: int = 5, warmup: int = 3,
                  top: int = 5, ops: bool = True) -> dict[str, Any]:
    """Per step: wall seconds (device work included), seconds of device kernels, kernels launched, the ``top``
    kernels by device time, and the aten operators dispatched (``ops``, any device; ``top_ops`` the most
    frequent). Kernel fields are None off CUDA (the profiler sees no device there); ``ops=False`` leaves the
    operator fields None (a compiled step: under a dispatch mode torch.compile runs the step eagerly)."""
    def run(n: int) -> None:
        for _ in range(n):
            step()

    run(warmup)
    wall = timed(lambda: run(steps), device) / steps  # without the profiler, which slows what it watches
    counted = count_ops(step) if ops else None
    out: dict[str, Any] = {"wall_s": wall, "kernel_s": None, "busy": None, "kernels": None, "launches": None,
                           "top_kernels": [], "ops": None if counted is None else sum(counted.values()),
                           "top_ops": {} if counted is None else dict(counted.most_common(top))}
    if device.type != "cuda":
        return out
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run(steps)
        sync(device)
    events = prof.key_averages()
    kernels = _device_kernels(events)
    kernel_s = sum(e.self_device_time_total for e in kernels) / 1e6 / steps
    launches = sum(e.count for e in events if e.key in LAUNCH_CALLS) / steps
    ranked = sorted(kernels, key=lambda e: e.self_device_time_total, reverse=True)[:top]
    out |= {"kernel_s": kernel_s, "busy": kernel_s / wall, "kernels": sum(e.count for e in kernels) / steps,
            "launches": launches,
            "top_kernels": [{"name": e.key[:120], "per_step": e.count / steps,
                             "share": e.self_device_time_total / 1e6 / steps / kernel_s if kernel_s else None}
                            for e in ranked]}
    return out


def to_markdown(rows: Sequence[dict[str, Any]], device_name: str) -> str:
    """One line per (batch, model): wall ms, kernel ms, busy share, kernels per step, ratios to dense."""
    lines = [f"## Training step: wall time vs device kernel time ({device_name})", "",
             "| tokens | model | path | params | wall (ms) | wall (× dense) | kernels (ms) | busy | kernels per step |"
             " kernels (× dense) | ops per step | ops (× dense) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    dense = {r["tokens"]: r for r in rows if r["model"] == "dense"}
    for r in rows:
        d = dense[r["tokens"]]
        ms = "–" if r["kernel_s"] is None else f"{1000 * r['kernel_s']:.1f}"
        busy = "–" if r["busy"] is None else f"{r['busy']:.0%}"
        count = "–" if r["kernels"] is None else f"{r['kernels']:,.0f}"
        ratio = "–" if r["kernels"] is None else f"{r['kernels'] / d['kernels']:.2f}"
        ops = "–" if r.get("ops") is None else f"{r['ops']:,}"
        ops_ratio = "–" if r.get("ops") is None or not d.get("ops") else f"{r['ops'] / d['ops']:.2f}"
        lines.append(f"| {r['tokens']:,} | {r['model']} | {r.get('path', 'auto')} | {r['params']:,} | "
                     f"{1000 * r['wall_s']:.1f} | {r['wall_s'] / d['wall_s']:.2f} | {ms} | {busy} | {count} | "
                     f"{ratio} | {ops} | {ops_ratio} |")
    lines += ["", "busy: the device's kernel time over the step's wall time (a step far below 100% waits on "
                  "launches, not on arithmetic). Wall times without the profiler; kernel counts and times from "
                  "torch.profiler over the same number of steps; ops: non-view aten operators one step "
                  "dispatches (forward, backward, optimizer), counted on any device. path: the factorized "
                  "layers' matmul path (auto: "
                  "the cost model's choice per layer and batch; dense: build W, one GEMM; factored: through the "
                  "factors)."]
    return "\n".join(lines) + "\n"
