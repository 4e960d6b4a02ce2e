"""Peak memory of one step (a training step, a layer's forward + backward), the same definition on CPU and CUDA.

``peak = resident + most allocated on top at once while the step runs``, where ``resident`` is what exists
before the step and the caller counts with `tensor_bytes` (parameters, optimizer state, the batch). The
increase is read from torch itself, never from the process size:

* CUDA: ``torch.cuda.max_memory_allocated`` minus the allocated bytes before the step (the caching allocator's
  own count, so cached-but-free blocks and other resident models do not count);
* CPU: the allocations and frees the profiler records (``profile_memory=True``) through the c10 CPU allocator,
  replayed in order. ``tracemalloc`` does not see torch's allocator and the process RSS high-water mark mixes in
  the interpreter, libraries and freed-but-kept pages, so neither measures a step. Memory that oneDNN or BLAS
  take outside torch's allocator (scratch space) is not seen here either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn


def _tensors(obj: Any) -> Iterable[Tensor]:
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, nn.Module):
        for t in (*obj.parameters(), *obj.buffers()):
            yield t
            if t.grad is not None:
                yield t.grad
    elif isinstance(obj, torch.optim.Optimizer):
        for state in obj.state.values():
            yield from _tensors(state)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _tensors(v)


def tensor_bytes(*objects: Any) -> int:
    """Bytes of the distinct storages held by tensors, modules (parameters, buffers, gradients), optimizers
    (their state) and dicts/lists of these; a storage shared by several (tied weights) counts once."""
    seen: dict[tuple[str, int], int] = {}
    for obj in objects:
        for t in _tensors(obj):
            storage = t.untyped_storage()
            seen[(str(t.device), storage.data_ptr())] = storage.nbytes()
    return sum(seen.values())


def _cpu_peak_increase(fn: Callable[[], Any]) -> int:
    """Most bytes allocated on top of the start at once while ``fn`` runs on CPU (profiler memory events)."""
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action  # the events behind profile.export_memory_timeline

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                 with_stack=True) as prof:
        fn()
    current = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:
        if action == Action.CREATE:
            current += size
        elif action == Action.DESTROY:
            current -= size
        peak = max(peak, current)
    return peak


def peak_bytes(fn: Callable[[], Any], device: torch.device, resident: int) -> int:
    """Peak bytes of live tensors while ``fn`` runs: ``resident`` plus the largest increase (module docstring)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return resident + torch.cuda.max_memory_allocated(device) - before
    return resident + _cpu_peak_increase(fn)
