"""`torch.compile` for models with factorized layers (and dense ones alike), counting what it compiles.

Eager factorized layers do per-call Python work the compiler cannot trace as is: caches keyed by shape or by the
factors' version counters, and the per-forward batched builds of `shapeshifter.nn.grouped`. `compile_model` turns
those into what a compiled graph wants: path choices are plain Python comparisons on static sizes (guarded,
recompiled only when a choice flips), grouped builds are off (the compiler fuses the builds itself), and in
inference the dense path reads the materialized W built before the call (`prime_inference_cache`), which the graph
takes as an input.

Variable lengths: a compiled graph is specialized to its input shapes, so a training loop over batches of varying
length would recompile every step. `bucket_length` rounds a length up to a multiple (pad the batch to it), and
``dynamic=None`` (torch's default) marks a dimension dynamic after its first change, so at most one recompilation
follows per dimension; `CompileCounter.compiles` says how many graphs were compiled (a record field).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .factors import FactoredMatrix


class CompileCounter:
    """A `torch.compile` backend that counts the graphs it compiles and hands them to ``backend``."""

    def __init__(self, backend: str = "inductor") -> None:
        self.backend = backend
        self.compiles = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        self.compiles += 1
        from torch._dynamo import lookup_backend

        return lookup_backend(self.backend)(gm, example_inputs)


def prime_inference_cache(model: nn.Module) -> int:
    """Build the inference cache (`FactoredMatrix.cached_weight`) of every factored matrix of ``model`` now, so a
    compiled inference graph reads a ready W; returns how many matrices were primed."""
    matrices = [m for m in model.modules() if isinstance(m, FactoredMatrix)]
    for m in matrices:
        m.cached_weight()
    return len(matrices)


def compile_model(model: nn.Module, counter: CompileCounter | None = None, dynamic: bool | None = None,
                  mode: str | None = None) -> nn.Module:
    """``model`` compiled in place (`nn.Module.compile`): calls of ``model(...)`` run the compiled graph.

    Grouped weight builds (`shapeshifter.nn.grouped`) are switched off for the compiled model. ``counter``
    (default: a new `CompileCounter` on inductor) is kept as ``model.compile_counter``.
    """
    counter = counter or CompileCounter()
    for hook in list(model._forward_pre_hooks.values()):
        owner = getattr(hook, "__self__", None)
        if owner is not None and hasattr(owner, "enabled") and hasattr(owner, "groups"):
            owner.enabled = False
    model.compile(backend=counter, dynamic=dynamic, mode=mode)
    model.compile_counter = counter
    return model


def bucket_length(length: int, multiple: int = 8) -> int:
    """``length`` rounded up to a multiple of ``multiple``: pad batches to it, so a compiled step sees a few
    shapes rather than one per length."""
    if multiple < 1:
        raise ValueError(f"bucket multiple must be a positive integer, got {multiple}")
    return math.ceil(length / multiple) * multiple
