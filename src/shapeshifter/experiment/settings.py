"""The schema of the settings nodes every run reads (``optim``, ``ckpt``) and those only the translation task reads
(``optim``'s warmup and label smoothing, ``batching``, ``eval``, ``ckpt.monitor``/``average_last``): dataclasses
registered in Hydra's ConfigStore as ``schema/<node>/<shared|translation>``, picked by each task's config
(``conf/adapter``).

Hydra then refuses a key these do not hold when it composes the config (an experiment file's ``optim: {lrr: 1}``:
"Key 'lrr' not in 'OptimSettings'"), and converts values to the declared types. Hydra's ``+key=value`` adds a key
to any node, so `unknown_setting` checks the added ones against the same fields, naming the closest.

A field nothing sets stays unset (``???``), not a default: the defaults live in the YAML files, and a config that
does not set ``optim.factor_lr_scale`` hashes as it did before the schema existed
(`records.without_unset` leaves unset settings out of records and the hash). ``cfg.optim.get("factor_lr_scale",
1.0)`` reads an unset field as its default.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from shapeshifter.experiment.records import SETTINGS_NODES


@dataclass
class OptimSettings:
    """Adam and the schedule every task reads."""

    lr: float = MISSING
    betas: list[float] = MISSING
    eps: float = MISSING
    weight_decay: float = MISSING
    clip_norm: float = MISSING  # 0: no clipping
    factor_lr_scale: float = MISSING  # lr multiplier of factor parameters; unset: 1.0


@dataclass
class TranslationOptimSettings(OptimSettings):
    """fairseq's inverse-square-root warmup and label smoothing: only the translation task reads them."""

    warmup_updates: int = MISSING
    warmup_init_lr: float = MISSING
    label_smoothing: float = MISSING


@dataclass
class CkptSettings:
    """Early stopping (``callbacks=early_stopping``); unset: none."""

    patience: int | None = MISSING


@dataclass
class TranslationCkptSettings(CkptSettings):
    """Which validation metric picks the checkpoint, and checkpoint averaging."""

    monitor: str = MISSING
    average_last: int = MISSING


@dataclass
class BatchingSettings:
    max_tokens: int | None = MISSING
    max_sentences: int | None = MISSING


@dataclass
class EvalSettings:
    """Beam search and BLEU during training and at the end."""

    beam: int = MISSING
    max_len_a: float = MISSING
    max_len_b: int = MISSING
    lenpen: float = MISSING
    bleu_every_n_epochs: int = MISSING
    bleu_max_sentences: int | None = MISSING


SCHEMAS: dict[str, dict[str, type]] = {
    "optim": {"shared": OptimSettings, "translation": TranslationOptimSettings},
    "ckpt": {"shared": CkptSettings, "translation": TranslationCkptSettings},
    "batching": {"translation": BatchingSettings},
    "eval": {"translation": EvalSettings},
}


def register() -> None:
    """Put the schemas in Hydra's ConfigStore (before any config is composed; `shapeshifter.experiment` does it on
    import). The group ``schema`` collides with none of fairseq's."""
    store = ConfigStore.instance()
    for node, variants in SCHEMAS.items():
        for name, schema in variants.items():
            store.store(group=f"schema/{node}", name=name, node=schema, package=node)


def unknown_setting(cfg: DictConfig) -> str | None:
    """The first key of a settings node that its schema does not hold (added with ``+``), as a message naming the
    closest field; None when every key is known."""
    for node in SETTINGS_NODES:
        value = cfg.get(node)
        schema = OmegaConf.get_type(value) if isinstance(value, DictConfig) else None
        if schema is None or schema is dict:
            continue
        known = sorted(f.name for f in fields(schema))
        for key in sorted(set(value) - set(known)):
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {node}.{close[0]}?" if close else f"; known: {known}"
            return f"{node}.{key} is not a setting{hint}"
    return None
