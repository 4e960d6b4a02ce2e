"""Every option of the sweep axes (conf/layers, conf/scheme, the `rank` key) composes into a valid policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from shapeshifter.experiment.policy import policy_from_config
from shapeshifter.experiment.sweep import compose_cfg, sweep_jobs

CONF = Path(__file__).resolve().parents[2] / "conf"
LAYERS = {"all": {"embedding", "attention", "ffn", "output"}, "attn": {"attention"}, "attn_ffn": {"attention", "ffn"},
          "emb": {"embedding"}, "ffn": {"ffn"}, "out": {"output"}}
SCHEMES = {"balanced": ("balanced", 2), "balanced3": ("balanced", 3), "balanced4": ("balanced", 4),
           "exact": ("exact", 2), "exact3": ("exact", 3), "exact4": ("exact", 4)}


def test_the_axes_cover_every_option_on_disk() -> None:
    assert {p.stem for p in (CONF / "layers").glob("*.yaml")} == set(LAYERS)
    assert {p.stem for p in (CONF / "scheme").glob("*.yaml")} == set(SCHEMES)


@pytest.mark.parametrize("layers", sorted(LAYERS))
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_layers_x_scheme_x_rank(layers: str, scheme: str) -> None:
    cfg = compose_cfg(CONF, ["shapeshift=sweep", f"layers={layers}", f"scheme={scheme}", "rank=4"])
    policy = policy_from_config(cfg.shapeshift)
    assert set(policy) == LAYERS[layers]
    assert {(p["scheme"], p["order"], p["rank"]) for p in policy.values()} == {(*SCHEMES[scheme], 4)}
    assert cfg.shapeshift.name == f"sweep-{layers}-r4-{scheme}"  # one run name per grid point


def test_the_paper_grid_reads_like_the_command_line() -> None:
    # `-m rank=1,2,4 scheme=balanced,exact layers=attn,ffn,all` is 18 jobs with 18 distinct names
    jobs = sweep_jobs(["rank=1,2,4", "scheme=balanced,exact", "layers=attn,ffn,all"], [])
    names = {compose_cfg(CONF, ["shapeshift=sweep", *job]).shapeshift.name for job in jobs}
    assert len(jobs) == len(names) == 18


def test_explicit_shapes_per_layer_type() -> None:
    # explicit ((m_1..m_N), (n_1..n_N)) shapes differ per matrix size, so they go in per_type
    cfg = compose_cfg(CONF, ["shapeshift=sweep", "layers=attn_ffn", "rank=2",
                             "+shapeshift.per_type.attention.scheme=[[32,16],[16,32]]",
                             "+shapeshift.per_type.ffn.scheme=[[32,32],[16,32]]"])
    policy = policy_from_config(cfg.shapeshift)
    assert policy["attention"]["scheme"] == [[32, 16], [16, 32]] and policy["ffn"]["scheme"] == [[32, 32], [16, 32]]


def test_range_sweeps_expand_like_hydra() -> None:
    assert sweep_jobs(["rank=range(1,3)", "scheme=balanced,exact"], []) == [
        ["rank=1", "scheme=balanced"], ["rank=1", "scheme=exact"], ["rank=2", "scheme=balanced"],
        ["rank=2", "scheme=exact"]]


def test_the_command_line_comes_first_and_replaces_a_param_of_the_same_key() -> None:
    # as Hydra's BasicSweeper merges hydra.sweeper.params with a multirun's overrides
    assert sweep_jobs(["rank=1,2", "scheme=balanced,exact"], ["experiment=x", "scheme=exact3", "seed=1,2"]) == [
        ["scheme=exact3", "experiment=x", "seed=1", "rank=1"], ["scheme=exact3", "experiment=x", "seed=2", "rank=1"],
        ["scheme=exact3", "experiment=x", "seed=1", "rank=2"], ["scheme=exact3", "experiment=x", "seed=2", "rank=2"]]


def test_a_glue_config_holds_only_what_glue_reads() -> None:
    """The translation task's own settings come with it (conf/adapter/translation.yaml): a GLUE config has none,
    so its hash covers only what GLUE reads, and setting one is refused instead of ignored."""
    from hydra.errors import ConfigCompositionException
    from omegaconf import OmegaConf

    from shapeshifter.experiment.records import config_hash

    def digest(*overrides: str) -> str:
        return config_hash(OmegaConf.to_container(compose_cfg(CONF, list(overrides)), resolve=True))

    glue = compose_cfg(CONF, ["experiment=glue/snli_demo"])
    assert "eval" not in glue and "batching" not in glue and "label_smoothing" not in glue.optim
    assert "monitor" not in glue.ckpt and "warmup_updates" not in glue.optim
    for setting in ("eval.beam=1", "batching.max_tokens=100", "optim.label_smoothing=0.3", "ckpt.monitor=valid_loss"):
        with pytest.raises(ConfigCompositionException, match=setting.split("=")[0]):
            compose_cfg(CONF, ["experiment=glue/snli_demo", setting])
    assert digest("experiment=glue/snli_demo") != digest("experiment=glue/snli_demo", "optim.lr=0.1")
    translation = compose_cfg(CONF, [])
    assert translation.eval.beam == 5 and translation.ckpt.monitor == "valid_bleu"
    assert translation.optim.warmup_updates == 4000 and translation.optim.lr == 5.0e-4
    assert digest() != digest("eval.beam=1")  # and translation keeps its beam in the hash
