"""Hydra overrides shared by the tests that train a translation model end to end: a one-layer, 32-wide
Transformer trained for one epoch on a slice of the committed sample (seconds on a CPU), and the composed configs
of the fault tests built on them."""

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONF = Path(__file__).resolve().parents[1] / "conf"

TINY_TRANSLATION = [
    "arch=transformer_demo", "arch.overrides.encoder_layers=1", "arch.overrides.decoder_layers=1",
    "arch.overrides.encoder_embed_dim=32", "arch.overrides.decoder_embed_dim=32",
    "arch.overrides.encoder_ffn_embed_dim=64", "arch.overrides.decoder_ffn_embed_dim=64",
    "arch.overrides.encoder_attention_heads=2", "arch.overrides.decoder_attention_heads=2",
    "trainer.max_epochs=1", "trainer.progress_bar=none", "logger.wandb.enabled=false", "optim.warmup_updates=10",
    "batching.max_tokens=1024", "eval.beam=2", "data.bpe_merges=200",
]


def translation_cfg(raw: Path, work: Path, *overrides: str) -> DictConfig:
    """The tiny translation run on the raw corpus folder ``raw``, writing under ``work``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[f"data.raw_dir={raw}", f"data.work_dir={work / 'work'}",
                                           f"run.records={work / 'records'}", *TINY_TRANSLATION, *overrides])


def glue_cfg(tmp_path: Path, *overrides: str) -> DictConfig:
    """A one-epoch GLUE run from scratch on sentence-pair files (``data.files`` among ``overrides``)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=["experiment=glue/scratch", "data=glue_files", "trainer.max_epochs=1",
                                           "trainer.progress_bar=none", "logger.wandb.enabled=false",
                                           f"run.records={tmp_path / 'records'}", *overrides])
