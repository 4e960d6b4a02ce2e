"""One batched build of W for all same-shaped factored matrices of a model, once per training forward.

In training, each factorized layer on its dense path builds its own W: for an order-2 Kronecker matrix one GEMM
and one copy forward, a copy and two GEMMs backward. A Transformer has dozens of such layers in a few shapes
(attention ``d x d``, FFN ``4d x d`` and ``d x 4d``), so `group_weights` builds the W of all matrices of one shape
with one batched GEMM instead (`FactoredMatrix.materialize_stacked`): the same arithmetic in a few large kernels
rather than many small ones, which is what a GPU step bound by kernel launches needs.

The batch is learned: a forward builds, at the first request of a group, the W of every member that asked for its
W in the previous forward (the layers that took their dense path there), and a member asking outside that set
builds its own. Each forward builds afresh (its own autograd graph); with autograd off (inference) nothing changes,
the matrices keep their own cache (`FactoredMatrix.cached_weight`).

On CPU the matrices build one by one unless asked otherwise (``cpu=True``): there a step is bound by arithmetic
and memory, not launches, and one build of all same-shaped matrices writes tens of MB that leave the caches (72
``512x512`` rank-32 matrices, forward and backward, 1 thread: 278 ms batched against 108 ms one by one).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import Tensor, nn

from .factors import FactoredMatrix
from .stacked import StackedMatrix


class WeightGroup:
    """Factored matrices of one class and the same factor shapes whose W is built together in a forward."""

    def __init__(self, members: list[FactoredMatrix], cpu: bool = False) -> None:
        self.members = members
        self.cpu = cpu
        self.active = False
        self.built: dict[int, Tensor] = {}
        self.wanted_now: set[int] = set()
        self.wanted_last: set[int] = set()

    def start(self) -> None:
        self.built.clear()
        self.wanted_now = set()
        self.active = torch.is_grad_enabled()

    def end(self) -> None:
        if self.active:
            self.wanted_last = self.wanted_now
        self.built.clear()
        self.active = False

    def weight(self, member: FactoredMatrix) -> Tensor | None:
        """``member``'s W from this forward's batched build, or None where it should build its own."""
        if not (self.active and torch.is_grad_enabled()) or (member.factors[0].is_cpu and not self.cpu):
            return None
        key = id(member)
        self.wanted_now.add(key)
        if key in self.built:
            return self.built[key]
        batch = [m for m in self.members if (id(m) in self.wanted_last or m is member) and id(m) not in self.built]
        if len(batch) < 2 or len({(f.dtype, f.device) for m in batch for f in m.factors}) != 1:
            return None
        for m, w in zip(batch, type(member).materialize_stacked(batch).unbind(0), strict=True):
            self.built[id(m)] = w
        return self.built[key]


class GroupedWeights:
    """The weight groups of one model, started and ended by its forward hooks (see `group_weights`)."""

    def __init__(self, groups: list[WeightGroup]) -> None:
        self.groups = groups
        self.enabled = True

    def _start(self, module: nn.Module, args: Any) -> None:
        for g in self.groups:
            if self.enabled:
                g.start()

    def _end(self, module: nn.Module, args: Any, output: Any) -> None:
        for g in self.groups:
            g.end()


def _signature(m: FactoredMatrix) -> tuple | None:
    """What must match for matrices to be built in one batch, or None for one that builds alone: a matrix with a
    zero row (an embedding table) or a `StackedMatrix` (it batches its own parts)."""
    if isinstance(m, StackedMatrix) or m.zero_row is not None:
        return None
    return type(m), m.rows, m.cols, tuple(tuple(f.shape) for f in m.factors)


def group_weights(model: nn.Module, cpu: bool = False) -> GroupedWeights:
    """Build the W of ``model``'s same-shaped factored matrices together, once per forward of ``model``, on
    accelerators (and on CPU with ``cpu=True``, slower there; see the module's docstring).

    Installs a forward pre-hook and a forward hook on ``model`` (the root whose forward a training step calls);
    a matrix outside any group of two or more stays as it was. Outputs and gradients are those of per-matrix
    builds; the state dict is unchanged. Returns the installed `GroupedWeights` (``.enabled = False`` turns the
    batching off, e.g. under `torch.compile`, which fuses the builds itself).
    """
    by_sig: dict[tuple, list[FactoredMatrix]] = defaultdict(list)
    for m in model.modules():
        if isinstance(m, FactoredMatrix) and (sig := _signature(m)) is not None:
            by_sig[sig].append(m)
    groups = []
    for members in by_sig.values():
        if len(members) < 2:
            continue
        group = WeightGroup(members, cpu)
        for m in members:
            m._group = group
        groups.append(group)
    grouped = GroupedWeights(groups)
    model.register_forward_pre_hook(grouped._start)
    model.register_forward_hook(grouped._end)
    return grouped
