"""The ``callbacks=`` group: Lightning callbacks that watch a fit without changing it, built by Hydra from their
``_target_``.

The ``callbacks`` node is left out of the config hash (`records.NON_SEMANTIC_KEYS`), so a key that could change
a result must never be read from it: `validate_callbacks` refuses any callback, class or setting outside
`CALLBACKS`. Early stopping, which does change results, is ``ckpt.patience`` (hashed; ``callbacks=early_stopping``
sets it).
"""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from shapeshifter.experiment.loggers import enabled

# callback -> its class and settings with their defaults; each entry is result-neutral (it only logs)
CALLBACKS: dict[str, dict[str, Any]] = {
    "lr_monitor": {"_target_": "lightning.pytorch.callbacks.LearningRateMonitor", "logging_interval": "step"},
}
INTERVALS = ("step", "epoch")


def _settings(node: Any) -> dict[str, Any]:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})


def validate_callbacks(cfg: DictConfig) -> None:
    """Refuse an unknown callback, class or setting (it would be ignored, or change a result outside the hash)
    and a logging callback without a logger to log to."""
    node = cfg.get("callbacks") or {}
    for name in node:
        if name not in CALLBACKS:
            raise ValueError(f"callbacks.{name} is not a known callback; known: {sorted(CALLBACKS)} (early stopping "
                             "is ckpt.patience, or callbacks=early_stopping)")
        settings, known = _settings(node[name]), CALLBACKS[name]
        unknown = set(settings) - set(known)
        if unknown:
            raise ValueError(f"callbacks.{name}: unknown key(s) {sorted(unknown)}; "
                             f"known: {sorted(k for k in known if k != '_target_')}")
        if settings.get("_target_", known["_target_"]) != known["_target_"]:
            raise ValueError(f"callbacks.{name}._target_ must be {known['_target_']}, got {settings['_target_']!r} "
                             "(the callbacks node is outside the config hash: only callbacks that log belong here)")
    interval = _settings(node.get("lr_monitor")).get("logging_interval", "step")
    if "lr_monitor" in node and interval not in INTERVALS:
        raise ValueError(f"callbacks.lr_monitor.logging_interval must be one of {INTERVALS}, got {interval!r}")
    if "lr_monitor" in node and not any(enabled(cfg.get("logger"), name) for name in ("csv", "wandb")):
        raise ValueError("callbacks.lr_monitor logs the learning rate, but logger=none has no logger: use "
                         "logger=csv (or wandb), or drop the callback")


def make_callbacks(cfg: DictConfig) -> list[Any]:
    """The callbacks of the ``callbacks`` node (validated by `validate_callbacks`), built by Hydra."""
    node = cfg.get("callbacks") or {}
    return [instantiate({**CALLBACKS[name], **_settings(node[name])}) for name in node]
