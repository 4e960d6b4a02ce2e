"""The ``callbacks=`` group: Lightning callbacks that watch a fit without changing it.

The ``callbacks`` node is left out of the config hash (`records.NON_SEMANTIC_KEYS`), so a key that could change
a result must never be read from it: `validate_callbacks` refuses any key outside `CALLBACKS`. Early stopping,
which does change results, is ``ckpt.patience`` (hashed; ``callbacks=early_stopping`` sets it).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

# callback -> its settings; each entry is result-neutral (it only logs)
CALLBACKS: dict[str, set[str]] = {"lr_monitor": {"logging_interval"}}
INTERVALS = ("step", "epoch")


def validate_callbacks(cfg: DictConfig) -> None:
    """Refuse an unknown callback or setting (it would be ignored, and outside the hash) and a logging callback
    without a logger to log to."""
    from shapeshifter.app.loggers import enabled

    node = cfg.get("callbacks") or {}
    for name in node:
        if name not in CALLBACKS:
            raise ValueError(f"callbacks.{name} is not a known callback; known: {sorted(CALLBACKS)} (early stopping "
                             "is ckpt.patience, or callbacks=early_stopping)")
        unknown = set(node[name] or {}) - CALLBACKS[name]
        if unknown:
            raise ValueError(f"callbacks.{name}: unknown key(s) {sorted(unknown)}; known: {sorted(CALLBACKS[name])}")
    interval = (node.get("lr_monitor") or {}).get("logging_interval", "step")
    if "lr_monitor" in node and interval not in INTERVALS:
        raise ValueError(f"callbacks.lr_monitor.logging_interval must be one of {INTERVALS}, got {interval!r}")
    if "lr_monitor" in node and not any(enabled(cfg.get("logger"), name) for name in ("csv", "wandb")):
        raise ValueError("callbacks.lr_monitor logs the learning rate, but logger=none has no logger: use "
                         "logger=csv (or wandb), or drop the callback")


def make_callbacks(cfg: DictConfig) -> list[Any]:
    """The callbacks of the ``callbacks`` node (validated by `validate_callbacks`)."""
    node = cfg.get("callbacks") or {}
    out: list[Any] = []
    if "lr_monitor" in node:
        from lightning.pytorch.callbacks import LearningRateMonitor

        out.append(LearningRateMonitor(logging_interval=(node.lr_monitor or {}).get("logging_interval", "step")))
    return out
