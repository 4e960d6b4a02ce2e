"""The ``data`` node of a translation run as the recipe's `TranslationDataConfig`: read by the task
(`translation.task`), by whatever opens a finished run folder (`translation.run_model`: export, translate, a
distillation teacher) and by evaluate."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from shapeshifter.experiment.resolvers import config_root
from shapeshifter.experiment.task import plain
from shapeshifter.paths import anchored
from shapeshifter.translation.data import TranslationDataConfig

# Keys of a translation ``data`` node that are not `TranslationDataConfig` fields: the pipeline's own, and the
# fairseq names ``source_lang``/``target_lang`` that ``data=parallel_files`` takes (copied to src_lang/tgt_lang).
NOT_RECIPE_KEYS = ("kind", "name_in_tables", "source_lang", "target_lang")


def data_config(cfg: DictConfig):
    """`TranslationDataConfig` from the ``data`` node (validated on construction), its relative folders read from
    the project folder when the run starts elsewhere (`shapeshifter.paths.anchored`)."""
    missing = sorted(OmegaConf.missing_keys(cfg.data))
    if missing:  # ``???`` in the data config: to_container would pass the placeholder on as a value
        raise ValueError(f"{', '.join(missing)} must be set (e.g. data=parallel_files "
                         "data.trainpref=corpus/train data.source_lang=de data.target_lang=en)")
    fields = {k: v for k, v in plain(cfg.data).items() if k not in NOT_RECIPE_KEYS}
    dcfg = TranslationDataConfig(**fields)
    root = config_root(cfg)
    for key in ("raw_dir", "work_dir", "data_bin"):
        if getattr(dcfg, key) is not None:
            setattr(dcfg, key, str(anchored(getattr(dcfg, key), root)))
    for key in ("trainpref", "validpref", "testpref"):  # a prefix is no file: anchor its folder
        prefix = getattr(dcfg, key)
        if prefix:
            setattr(dcfg, key, str(anchored(Path(prefix).parent, root) / Path(prefix).name))
    return dcfg
