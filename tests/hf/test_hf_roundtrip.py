"""Hugging Face models after shapeshift (issue items 4 and 5): forward, backward, generate, the report, and the
save_pretrained / `shapeshifter.hf.from_pretrained` round trip with equal outputs, on tiny random models."""

import json

import pytest
import torch
from tiny_hf_models import BUILDERS, HF_MODELS
from torch import nn

from shapeshifter import hf
from shapeshifter.nn import StackedMatrix, TiedOutput
from shapeshifter.params import count_parameters
from shapeshifter.surgery import LayerSpec, shapeshift

pytest.importorskip("transformers")

POLICY = {"embedding": {"rank": 2}, "attention": {"rank": 2}, "ffn": {"rank": 1, "order": 3},
          "output": {"rank": 2}, "other": {"rank": 2}}
GENERATES = {"GPT2LMHeadModel", "LlamaForCausalLM", "T5ForConditionalGeneration", "BartForConditionalGeneration",
             "GPTNeoXForCausalLM", "Phi3ForCausalLM"}


@pytest.mark.parametrize("name", HF_MODELS)
def test_shapeshifted_model_trains_generates_and_round_trips(name, tmp_path):
    torch.manual_seed(0)
    model, run = BUILDERS[name]()
    report = hf.shapeshift(model, POLICY)
    assert report.factorized
    assert all(r.reason for r in report.unhandled)
    out = run(model)  # training mode: the factored paths
    out.float().pow(2).mean().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if ".matrix.factors." in n)
    model.eval()
    if name in GENERATES:
        prompt = torch.tensor([[3, 4, 5]])
        generated = model.generate(prompt, max_new_tokens=3, do_sample=False)
        assert generated.shape[0] == 1
    with torch.no_grad():
        expected = run(model)
    hf.save(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["shapeshifter"]["policy"] == POLICY
    with pytest.raises(ValueError, match=r"shapeshifter\.hf\.from_pretrained"):  # not random dense weights
        type(model).from_pretrained(tmp_path)
    loaded = hf.from_pretrained(type(model), tmp_path)
    assert not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(run(loaded), expected)
    if name in GENERATES:
        assert torch.equal(loaded.generate(prompt, max_new_tokens=3, do_sample=False), generated)
    # the tie survives the reload: one table behind the embedding and the output projection
    head = loaded.get_output_embeddings()
    if isinstance(head, TiedOutput):
        assert head.embedding is loaded.get_input_embeddings()


def test_gpt2_conv1d_is_factorized_behind_its_interface():
    torch.manual_seed(0)
    model, run = BUILDERS["GPT2LMHeadModel"]()
    # inside a plain module (not a PreTrainedModel) the layout is not applied: reported, left as is
    plain = shapeshift(nn.ModuleDict({"gpt2": BUILDERS["GPT2LMHeadModel"]()[0]}), POLICY)
    assert {r.name for r in plain.unhandled} >= {"gpt2.transformer.h.0.attn.c_attn.weight",
                                                 "gpt2.transformer.h.0.mlp.c_fc.weight"}
    report = hf.shapeshift(model, POLICY)
    assert report.unhandled == []
    c_attn = model.transformer.h[0].attn.c_attn
    assert isinstance(c_attn, hf.FactoredConv1D) and c_attn.kind == "kronecker"
    assert (c_attn.nf, c_attn.nx) == (48, 16) and c_attn.weight.shape == (16, 48)  # Conv1D's in x out
    x = torch.randn(2, 3, 16)
    torch.testing.assert_close(c_attn(x), x @ c_attn.weight + c_attn.bias)
    types_ = {r.name: r.layer_type for r in report.layers}
    assert types_["transformer.h.0.attn.c_attn"] == "attention" and types_["transformer.h.0.mlp.c_proj"] == "ffn"
    counts = count_parameters(model)["by_type"]  # the factors are counted under the Conv1D's layer type
    assert counts["attention"]["factorized"] == sum(
        f.numel() for h in model.transformer.h for m in (h.attn.c_attn, h.attn.c_proj) for f in m.factors)
    assert counts["other"]["factorized"] == 0


def test_from_pretrained_refuses_a_dense_folder_and_a_mismatched_one(tmp_path):
    model, _ = BUILDERS["LlamaForCausalLM"]()
    model.save_pretrained(tmp_path / "dense")
    with pytest.raises(ValueError, match="no 'shapeshifter' entry"):
        hf.from_pretrained(type(model), tmp_path / "dense")
    hf.shapeshift(model, {"ffn": LayerSpec(rank=2)})  # a LayerSpec is stored as its fields
    hf.save(model, tmp_path / "ffn")
    config = json.loads((tmp_path / "ffn" / "config.json").read_text())
    assert config["shapeshifter"]["policy"]["ffn"]["rank"] == 2
    config["shapeshifter"]["policy"] = {"attention": {"rank": 2}}
    (tmp_path / "ffn" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match"):
        hf.from_pretrained(type(model), tmp_path / "ffn")


def test_gpt2_c_attn_per_slice_is_one_factorization_per_slice_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model, run = BUILDERS["GPT2LMHeadModel"]()
    model.eval()
    with torch.no_grad():
        expected = run(model)
    policy = {"attention": {"rank": 64, "qkv": "per_slice"}}  # rank 64: every slice exactly (4x4 ⊗ 4x4)
    report = hf.shapeshift(model, policy, init="project")
    records = {r.name: r for r in report.layers}
    assert records["transformer.h.0.attn.c_attn"].factors == "3 × [4x4 ⊗ 4x4]"
    assert records["transformer.h.0.attn.c_proj"].factors == "4x4 ⊗ 4x4"  # not fused: one matrix
    c_attn = model.transformer.h[0].attn.c_attn
    assert isinstance(c_attn.matrix, StackedMatrix) and c_attn.weight.shape == (16, 48)
    with torch.no_grad():
        torch.testing.assert_close(run(model), expected, rtol=1e-4, atol=1e-4)
    hf.save(model, tmp_path)
    loaded = hf.from_pretrained(type(model), tmp_path)
    assert isinstance(loaded.transformer.h[1].attn.c_attn.matrix, StackedMatrix)
    with torch.no_grad():
        torch.testing.assert_close(run(loaded), expected, rtol=1e-4, atol=1e-4)


def test_plain_and_auto_from_pretrained_refuse_a_saved_folder_and_a_resave_keeps_the_mark(tmp_path):
    from transformers import AutoModelForMaskedLM

    model, run = BUILDERS["BertForMaskedLM"]()
    hf.shapeshift(model, {"attention": {"rank": 2}})
    with pytest.raises(ValueError, match="then upload"):
        hf.save(model, tmp_path / "hub", push_to_hub=True)
    hf.save(model, tmp_path / "first")
    for load in (type(model).from_pretrained, AutoModelForMaskedLM.from_pretrained):
        with pytest.raises(ValueError, match="holds a shapeshifted model"):
            load(tmp_path / "first")
    loaded = hf.from_pretrained(type(model), tmp_path / "first")
    assert not hasattr(loaded.config, hf.GUARD_KEY)  # the mark is not carried into the loaded model's config
    hf.save(loaded, tmp_path / "again")
    with pytest.raises(ValueError, match="holds a shapeshifted model"):
        type(model).from_pretrained(tmp_path / "again")
    loaded.eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(run(hf.from_pretrained(type(model), tmp_path / "again")), run(model))


@pytest.mark.parametrize("name", ["GPT2LMHeadModel", "GPTNeoXForCausalLM", "AlbertForMaskedLM"])
def test_the_framework_free_shapeshift_records_the_policy_so_save_pretrained_round_trips(name, tmp_path):
    """`shapeshifter.shapeshift` on a transformers model is `hf.shapeshift`: GPT-2's Conv1D is factorized and the
    policy lands in the config, so a plain ``save_pretrained`` folder loads with `hf.from_pretrained`."""
    import shapeshifter

    torch.manual_seed(0)
    model, run = BUILDERS[name]()
    report = shapeshifter.shapeshift(model, POLICY)
    assert report.unhandled == [] and model.config.shapeshifter["policy"] == POLICY
    with pytest.raises(ValueError, match="is a transformers model: use shapeshifter.shapeshift"):
        shapeshift(BUILDERS[name]()[0], POLICY)  # the core knows no transformers layouts
    model.eval()
    model.save_pretrained(tmp_path)
    loaded = hf.from_pretrained(type(model), tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(run(loaded), run(model))
