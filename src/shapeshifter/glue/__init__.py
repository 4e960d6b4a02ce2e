"""GLUE (and user-file) sentence(-pair) classification: tasks, data, metrics, models, Lightning module.

Submodules are imported lazily so that ``shapeshifter.glue.tasks`` stays cheap (no Lightning import).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GLUE_TASKS": "tasks",
    "TaskSpec": "tasks",
    "generic_task": "tasks",
    "get_task": "tasks",
    "glue_metrics": "metrics",
    "WordTokenizer": "tokenization",
    "HFTokenizer": "tokenization",
    "GlueDataModule": "data",
    "load_glue_splits": "data",
    "load_generic_splits": "data",
    "read_table": "data",
    "TransformerEncoderClassifier": "models",
    "PretrainedEncoderClassifier": "models",
    "apply_shapeshift": "models",
    "build_scratch_classifier": "models",
    "build_pretrained_classifier": "models",
    "GlueClassifierModule": "module",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'shapeshifter.glue' has no attribute {name!r}")
    return getattr(importlib.import_module(f"shapeshifter.glue.{_EXPORTS[name]}"), name)
