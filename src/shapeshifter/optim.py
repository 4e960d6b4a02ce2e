"""Optimizer parameter groups for models with factorized layers (pure PyTorch).

Adam moves every entry by about ``lr`` per step, whatever its scale. A factor's entries have another scale than
the dense weight they stand for (`shapeshifter.nn.factors.factor_std`), so one ``lr`` for everything changes a
factorized matrix by another relative amount per step than a dense one. ``factor_lr_scale`` multiplies the
learning rate of every factor parameter (the ``factors`` of every `FactoredMatrix`: Kronecker, low-rank and PHM
layers alike, a factorized `nn.MultiheadAttention`'s ``in_proj`` too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .nn.factors import FactoredMatrix


def factor_ids(model: nn.Module) -> set[int]:
    """Ids of the factor parameters in ``model`` (by module, not by name: a layer may call its matrix anything)."""
    return {id(f) for m in model.modules() if isinstance(m, FactoredMatrix) for f in m.factors}


def param_groups(model: nn.Module, lr: float, factor_lr_scale: float = 1.0, weight_decay: float | None = None,
                 no_decay: Callable[[str, nn.Parameter], bool] | None = None) -> list[dict[str, Any]]:
    """Groups by (factor or not) x (decayed or not); empty groups are left out, ``lr``/``weight_decay`` set per
    group only where they differ from the optimizer's defaults (``lr`` and ``weight_decay``)."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    factors = factor_ids(model)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decayed = not (no_decay is not None and no_decay(name, p))
        groups.setdefault((id(p) in factors and factor_lr_scale != 1.0, decayed), []).append(p)
    out = []
    for (scaled, decayed), params in groups.items():
        group: dict[str, Any] = {"params": params}
        if scaled:
            group["lr"] = lr * factor_lr_scale
        if weight_decay is not None:
            group["weight_decay"] = weight_decay if decayed else 0.0
        out.append(group)
    return out
