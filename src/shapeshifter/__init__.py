"""Shapeshifter: Transformers whose weight matrices are sums of Kronecker products of small factors.

The top-level names are loaded lazily, so ``import shapeshifter.translation.data`` (recipes) does not pay for torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "parse_policy": "shapeshifter.surgery",
    "LayerSpec": "shapeshifter.surgery",
    "ShapeshiftReport": "shapeshifter.surgery",
    "count_parameters": "shapeshifter.params",
}
__all__ = sorted([*_EXPORTS, "shapeshift"])


def shapeshift(model: Any, *args: Any, **kwargs: Any) -> Any:
    """`shapeshifter.surgery.shapeshift`; a transformers model called without ``layouts`` goes through
    `shapeshifter.hf.shapeshift` (its Conv1D layouts, its policy kept in ``model.config``)."""
    surgery = import_module("shapeshifter.surgery")
    if not kwargs.get("layouts") and surgery.is_hugging_face(model):
        return import_module("shapeshifter.hf").shapeshift(model, *args, **kwargs)
    return surgery.shapeshift(model, *args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'shapeshifter' has no attribute {name!r}")
