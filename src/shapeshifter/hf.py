"""Hugging Face models at the edge: GPT-2's ``Conv1D`` layout and a save/load round trip of shapeshifted models.

Everything that knows `transformers` lives here; `shapeshifter.surgery` and `shapeshifter.nn` stay plain
PyTorch. `shapeshift` is `shapeshifter.surgery.shapeshift` with the Hugging Face layouts added and the policy
recorded in ``model.config``, so `save` / `from_pretrained` can rebuild the same factorized model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .nn.factors import ReadOnlyWeight
from .nn.linear import FactoredLinear
from .surgery import FusedLayout, Init, ShapeshiftReport
from .surgery import shapeshift as _shapeshift


class FactoredConv1D(ReadOnlyWeight):
    """GPT-2's ``Conv1D`` (``y = x @ W + b`` with W stored in x out) whose W is a factorized linear.

    Keeps Conv1D's interface: ``nf``, ``nx``, ``bias`` and a read-only ``weight`` of shape (nx, nf).
    """

    def __init__(self, linear: FactoredLinear) -> None:
        super().__init__()
        self.linear = linear
        self.nf, self.nx = linear.out_features, linear.in_features

    @property
    def bias(self) -> Tensor | None:
        return self.linear.bias

    def _read_weight(self) -> Tensor:
        return self.linear.weight.t()

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)

    def extra_repr(self) -> str:
        return f"nf={self.nf}, nx={self.nx} (Conv1D layout)"


class Conv1DLayout:
    """`FusedLayout` of ``transformers.pytorch_utils.Conv1D`` (GPT-2's fused c_attn and its c_proj, c_fc)."""

    def matches(self, module: nn.Module) -> bool:
        from transformers.pytorch_utils import Conv1D

        return type(module) is Conv1D

    def dense(self, module: nn.Module) -> nn.Linear:
        w = module.weight
        linear = nn.Linear(module.nx, module.nf, bias=module.bias is not None, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            linear.weight.copy_(w.t())
            if module.bias is not None:
                linear.bias.copy_(module.bias)
        return linear

    def wrap(self, module: nn.Module, linear: FactoredLinear) -> nn.Module:
        return FactoredConv1D(linear)


LAYOUTS: tuple[FusedLayout, ...] = (Conv1DLayout(),)
CONFIG_KEY = "shapeshifter"


def shapeshift(
    model: nn.Module,
    policy: Mapping[str, Any] | None,
    init: Init = "random",
    patterns: Mapping[str, Any] | None = None,
) -> ShapeshiftReport:
    """`shapeshifter.surgery.shapeshift` with GPT-2's Conv1D handled; the policy is kept in ``model.config``."""
    report = _shapeshift(model, policy, init, patterns, layouts=LAYOUTS)
    config = getattr(model, "config", None)
    if config is not None:
        setattr(config, CONFIG_KEY, {"policy": _plain(policy), "patterns": _plain(patterns)})
    return report


def _plain(value: Any) -> Any:
    """A JSON-ready copy (tuples to lists, mappings to dicts) of a policy or patterns mapping."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
