"""Attention and FFN of every architecture in the matrix are factorized under an attention/FFN policy; a block
layer that no name pattern types is warned about by name (issue 24, item 4)."""

import warnings

import pytest
from tiny_hf_models import BUILDERS, HF_MODELS
from torch import nn

from shapeshifter import hf
from shapeshifter.layer_types import looks_like_block_layer
from shapeshifter.surgery import shapeshift

pytest.importorskip("transformers")

BLOCKS_ONLY = {"attention": {"rank": 2}, "ffn": {"rank": 2}}


@pytest.mark.parametrize("name", HF_MODELS)
def test_every_block_linear_is_factorized_without_a_warning(name):
    model, _ = BUILDERS[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a lookalike left dense would raise here
        report = hf.shapeshift(model, BLOCKS_ONLY)
    assert report.warnings == []
    block = [r for r in report.layers if r.kind == "linear" and looks_like_block_layer(r.name)]
    assert block and all(r.status == "factorized" and r.layer_type in ("attention", "ffn") for r in block), [
        (r.name, r.layer_type, r.status) for r in block if r.status != "factorized"]


def test_gpt_neox_is_compressed_like_its_siblings():
    """The issue's numbers: GPT-NeoX got 1.34x where GPT-2 and Llama got ~4x (its block linears stayed dense)."""
    ratios = {}
    for name in ("GPTNeoXForCausalLM", "GPT2LMHeadModel", "LlamaForCausalLM"):
        model, _ = BUILDERS[name]()
        totals = hf.shapeshift(model, {t: {"rank": 1} for t in ("attention", "ffn")}).totals()
        ratios[name] = totals["params_before"] / totals["params_after"]
    assert ratios["GPTNeoXForCausalLM"] > 0.8 * min(ratios["GPT2LMHeadModel"], ratios["LlamaForCausalLM"]), ratios


class UnknownBlocks(nn.Module):
    """Names no default pattern knows: a mixer and a channel MLP inside numbered blocks, plus a pooler."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.ModuleDict({"mixer": nn.Linear(8, 8), "channel_mlp": nn.Linear(8, 16)})
                                    for _ in range(2))
        self.pooler = nn.Linear(8, 8)
        self.fc1 = nn.Linear(8, 8)  # a known FFN name, so the policy's ffn entry is used


def test_a_block_layer_left_dense_is_warned_about_by_name_and_listed_in_the_report():
    with pytest.warns(UserWarning, match=r"left 4 layer\(s\) dense: blocks\.0\.mixer \(8x8\)") as caught:
        report = shapeshift(UnknownBlocks(), {"ffn": {"rank": 2}})
    message = str(caught[0].message)
    assert all(n in message for n in ("blocks.0.channel_mlp", "blocks.1.mixer", "blocks.1.channel_mlp"))
    assert "pooler" not in message  # a head, not a block layer
    assert [w.split(" ")[0] for w in report.warnings] == ["blocks.0.mixer", "blocks.0.channel_mlp",
                                                          "blocks.1.mixer", "blocks.1.channel_mlp"]
    assert report.to_dict()["warnings"] == report.warnings
    assert "warning: blocks.1.mixer (8x8)" in report.summary()
    # typed by a pattern, or factorized through 'other', they are no longer warned about
    for policy, patterns in (({"ffn": {"rank": 2}, "other": {"rank": 2}}, None),
                             ({"ffn": {"rank": 2}}, {"ffn": [r"(mixer|channel_mlp|fc1)$"]})):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert shapeshift(UnknownBlocks(), policy, patterns=patterns).warnings == []
    # nothing is warned about when attention and FFN are dense by choice
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert shapeshift(UnknownBlocks(), {"embedding": {"rank": 2}}).warnings == []


def test_summary_ends_with_a_total_line():
    model, _ = BUILDERS["AlbertForMaskedLM"]()
    report = hf.shapeshift(model, BLOCKS_ONLY)
    t = report.totals()
    total = report.summary().splitlines()[-1]
    assert total.startswith("total") and f"{t['params_after']:,d} from {t['params_before']:,d}" in total
    assert f"{t['factorized']} factorized" in total and t["factorized"] == 6  # ALBERT's one shared layer
    # every matrix and bias of ALBERT is in a listed layer (the tied decoder's bias once); only norms are not
    assert t["params_before"] == sum(p.numel() for n, p in BUILDERS["AlbertForMaskedLM"]()[0].named_parameters()
                                     if "norm" not in n.lower())
    assert t["params_after"] < t["params_before"]
