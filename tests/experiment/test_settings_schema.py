"""The settings nodes (``optim``, ``ckpt``, ``batching``, ``eval``) are typed by the schemas each task's config
picks (`shapeshifter.experiment.settings`): Hydra refuses a key they do not hold and converts values to the
declared types; a key added with ``+`` is refused by the run's validation with the closest field named; fields
nothing set stay out of records and the hash."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf

from shapeshifter.experiment.records import SETTINGS_NODES, UNSET, config_hash, without_unset
from shapeshifter.experiment.settings import (
    SCHEMAS,
    BatchingSettings,
    CkptSettings,
    EvalSettings,
    OptimSettings,
    TranslationCkptSettings,
    TranslationOptimSettings,
    unknown_setting,
)
from shapeshifter.experiment.task import plain

CONF = Path(__file__).resolve().parents[2] / "conf"
GLUE = ("data=snli_sample", "experiment=glue/scratch")


def composed(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_the_records_know_every_schema_node() -> None:
    assert set(SCHEMAS) == set(SETTINGS_NODES)


def test_each_task_types_its_settings_nodes() -> None:
    translation, glue = composed(), composed(*GLUE)
    assert {node: OmegaConf.get_type(translation[node]) for node in ("optim", "ckpt", "batching", "eval")} == {
        "optim": TranslationOptimSettings, "ckpt": TranslationCkptSettings, "batching": BatchingSettings,
        "eval": EvalSettings}
    assert OmegaConf.get_type(glue.optim) is OptimSettings and OmegaConf.get_type(glue.ckpt) is CkptSettings
    assert "batching" not in glue and "eval" not in glue


def test_a_typo_in_a_config_file_is_refused_by_hydra(tmp_path: Path) -> None:
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "typo.yaml").write_text("# @package _global_\noptim:\n  lrr: 1.0e-3\n")
    with pytest.raises(ConfigCompositionException) as error:
        composed(f"hydra.searchpath=[file://{tmp_path}]", "experiment=typo")
    assert "Key 'lrr' not in 'TranslationOptimSettings'" in str(error.value.__cause__ or error.value)


@pytest.mark.parametrize(("overrides", "message"), [
    (("+optim.lrr=1",), "optim.lrr is not a setting; did you mean optim.lr?"),
    (("+ckpt.patiense=2",), "ckpt.patiense is not a setting; did you mean ckpt.patience?"),
    (("+eval.bem=2",), "eval.bem is not a setting; did you mean eval.beam?"),
    ((*GLUE, "+optim.warmup_updates=3"), "optim.warmup_updates is not a setting; known: ['betas', 'clip_norm'"),
])
def test_a_key_added_with_plus_is_named_with_the_closest_field(overrides: tuple[str, ...], message: str) -> None:
    assert unknown_setting(composed(*overrides)).startswith(message)


def test_known_keys_added_with_plus_are_accepted() -> None:
    cfg = composed("+optim.factor_lr_scale=3", "+ckpt.patience=2")
    assert unknown_setting(cfg) is None and cfg.optim.factor_lr_scale == 3.0 and cfg.ckpt.patience == 2


def test_values_take_the_declared_types() -> None:
    assert composed("optim.lr=1").optim.lr == 1.0 and isinstance(composed("optim.lr=1").optim.lr, float)
    with pytest.raises(ConfigCompositionException):
        composed("eval.beam=two")


def test_unset_fields_stay_out_of_records_and_the_hash() -> None:
    cfg = composed()
    assert OmegaConf.is_missing(cfg.optim, "factor_lr_scale") and cfg.optim.get("factor_lr_scale", 1.0) == 1.0
    record_config = without_unset(plain(cfg))
    assert "factor_lr_scale" not in record_config["optim"] and "patience" not in record_config["ckpt"]
    assert UNSET not in str(record_config)
    assert config_hash(plain(cfg)) == config_hash(record_config)
    assert config_hash(plain(composed("+optim.factor_lr_scale=1.0"))) != config_hash(record_config)


def test_every_config_file_sets_only_schema_fields() -> None:
    """An experiment file that is never composed by a test still cannot hold a key its schema refuses."""
    widest = {"optim": TranslationOptimSettings, "ckpt": TranslationCkptSettings, "batching": BatchingSettings,
              "eval": EvalSettings}
    checked = 0
    for path in sorted(CONF.rglob("*.yaml")):
        node = OmegaConf.load(path)
        for name, schema in widest.items():
            if isinstance(node.get(name), DictConfig):
                unknown = set(node[name]) - {f.name for f in fields(schema)}
                assert not unknown, f"{path.relative_to(CONF)}: {name}.{sorted(unknown)} not in {schema.__name__}"
                checked += 1
    assert checked >= 29
