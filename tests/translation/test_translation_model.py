"""Model construction from fairseq arch names, overrides, and the attention fast-path switch."""

from __future__ import annotations

import pytest
import torch

from shapeshifter.translation.fairseq_model import (
    build_transformer,
    transformer_args,
    unique_parameter_count,
    use_module_attention_path,
)

# Dense transformer_iwslt_de_en with fairseq's IWSLT'14 de-en dictionary sizes and tied decoder
# input/output embeddings: 8848*512 + 6632*512 embeddings + 6 encoder layers (2,102,784 each)
# + 6 decoder layers (3,154,432 each). Measured with this builder and matched by hand.
IWSLT_DENSE_PARAMS = 39_469_056


def _dictionary(size: int):
    from fairseq.data import Dictionary

    d = Dictionary()
    for i in range(size - len(d)):
        d.add_symbol(f"w{i}")
    assert len(d) == size
    return d


def test_iwslt_arch_has_documented_sizes():
    model, report = build_transformer(
        "transformer_iwslt_de_en",
        _dictionary(8848),
        _dictionary(6632),
        {"share_decoder_input_output_embed": True},
    )
    assert report is None
    assert len(model.encoder.layers) == 6 and len(model.decoder.layers) == 6
    layer = model.encoder.layers[0]
    assert layer.self_attn.embed_dim == 512 and layer.self_attn.num_heads == 4
    assert layer.fc1.out_features == 1024
    assert model.decoder.output_projection.weight is model.decoder.embed_tokens.weight
    assert unique_parameter_count(model) == IWSLT_DENSE_PARAMS
    try:
        from shapeshifter.params import count_parameters
    except ImportError:
        return
    assert count_parameters(model)["total"] == IWSLT_DENSE_PARAMS


def test_base_arch_and_overrides():
    base = transformer_args("transformer")
    assert (base.encoder_embed_dim, base.encoder_ffn_embed_dim, base.encoder_attention_heads) == (
        512,
        2048,
        8,
    )
    wmt = transformer_args("transformer_wmt_en_de", {"encoder_layers": 3, "dropout": 0.2})
    assert wmt.encoder_layers == 3 and wmt.decoder_layers == 6 and wmt.dropout == 0.2


def test_unknown_override_is_named():
    with pytest.raises(ValueError, match="encoder_layer_count"):
        transformer_args("transformer_iwslt_de_en", {"encoder_layer_count": 2, "dropout": 0.3})
    with pytest.raises(ValueError, match="not_an_arch"):
        transformer_args("not_an_arch")


def test_build_is_seeded(data_bin, tiny_overrides):
    from shapeshifter.translation.datamodule import TranslationDataModule

    src, tgt = TranslationDataModule(str(data_bin), "de", "en").load_dictionaries()
    a, _ = build_transformer("transformer_iwslt_de_en", src, tgt, tiny_overrides, seed=3)
    b, _ = build_transformer("transformer_iwslt_de_en", src, tgt, tiny_overrides, seed=3)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name


def test_module_attention_path_matches_fused_path(data_bin, tiny_overrides):
    """Disabling fairseq's F.multi_head_attention_forward fast path must not change a dense model."""
    from shapeshifter.translation.datamodule import TranslationDataModule

    dm = TranslationDataModule(str(data_bin), "de", "en", max_tokens=200)
    src, tgt = dm.load_dictionaries()
    model, _ = build_transformer("transformer_iwslt_de_en", src, tgt, tiny_overrides)
    model.eval()
    sample = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        fused = model(**sample["net_input"])[0]
        assert use_module_attention_path(model) == 0  # plain nn.Linear projections: nothing switched
        for module in model.modules():
            if hasattr(module, "_set_skip_embed_dim_check"):
                module._set_skip_embed_dim_check()
        unfused = model(**sample["net_input"])[0]
    torch.testing.assert_close(unfused, fused, atol=1e-5, rtol=1e-5)


def test_shapeshifted_model_forward(data_bin, tiny_overrides):
    pytest.importorskip("shapeshifter.surgery")
    from shapeshifter.translation.datamodule import TranslationDataModule

    dm = TranslationDataModule(str(data_bin), "de", "en", max_tokens=200)
    src, tgt = dm.load_dictionaries()
    policy = {"embedding": {"rank": 2, "order": 2, "scheme": "balanced"}, "attention": {"rank": 2, "order": 2,
              "scheme": "balanced"}, "ffn": {"rank": 2, "order": 2, "scheme": "balanced"}, "output": "dense",
              "other": "dense"}  # fmt: skip
    model, report = build_transformer("transformer_iwslt_de_en", src, tgt, tiny_overrides, policy=policy)
    assert report is not None
    sample = next(iter(dm.val_dataloader()))
    logits = model(**sample["net_input"])[0]
    assert logits.shape[-1] == len(tgt) and torch.isfinite(logits).all()
    logits.sum().backward()


def test_factorized_attention_takes_the_fused_path_only_where_every_projection_is_dense(data_bin, tiny_overrides):
    """The pre-hook picks fairseq's fused fast path iff all four projections take their dense path; both paths
    give the same outputs and gradients."""
    from shapeshifter.nn.factors import FactoredMatrix
    from shapeshifter.translation.datamodule import TranslationDataModule

    dm = TranslationDataModule(str(data_bin), "de", "en", max_tokens=200)
    src, tgt = dm.load_dictionaries()
    policy = {"embedding": {"rank": 2}, "attention": {"rank": 2}, "ffn": {"rank": 2}}
    model, _ = build_transformer("transformer_iwslt_de_en", src, tgt, tiny_overrides, policy=policy)
    model.eval()  # no dropout: the two runs must match
    attn = [m for m in model.modules() if type(m).__name__ == "MultiheadAttention"]
    matrices = [m for m in model.modules() if isinstance(m, FactoredMatrix)]
    net_input = next(iter(dm.val_dataloader()))["net_input"]

    def run(path: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
        for m in matrices:
            m.path = path
        model.zero_grad()
        out = model(**net_input)[0]
        out.square().mean().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    fused_out, fused_grads = run("dense")
    assert not any(m.skip_embed_dim_check for m in attn if m.self_attention)  # fast path taken
    module_out, module_grads = run("factored")
    assert all(m.skip_embed_dim_check for m in attn)
    torch.testing.assert_close(fused_out, module_out, atol=1e-5, rtol=1e-4)
    for a, b in zip(fused_grads, module_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_beam_search_visits_the_cached_incremental_modules_with_the_same_result(tiny_overrides):
    """The decoder's cached reorder visits what fairseq's module walk finds, gives the same hypotheses, and a deep
    copy of the model reorders its own modules."""
    import copy
    import pickle

    from fairseq.models.fairseq_incremental_decoder import FairseqIncrementalDecoder
    from fairseq.sequence_generator import SequenceGenerator

    from shapeshifter.translation.fairseq_model import placeholder_dictionary

    src, tgt = placeholder_dictionary(40), placeholder_dictionary(30)
    policy = {"embedding": {"rank": 2}, "attention": {"rank": 1}, "ffn": {"rank": 1}}
    model, _ = build_transformer("transformer_iwslt_de_en", src, tgt, tiny_overrides, policy=policy)
    model.eval()
    walked = [n for n, m in model.decoder.named_modules() if hasattr(m, "reorder_incremental_state")]
    assert model.decoder.reorder_incremental_state_scripting.names == walked and len(walked) > 1
    sample = {"id": torch.arange(2), "net_input": {"src_tokens": torch.randint(4, 40, (2, 6)),
                                                   "src_lengths": torch.tensor([6, 6])}}

    def decode(m):
        gen = SequenceGenerator([m], tgt, beam_size=3, max_len_b=5)
        with torch.no_grad():
            return [h[0]["tokens"].tolist() for h in gen.generate([m], sample)]

    cached = decode(model)
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert twin.decoder.reorder_incremental_state_scripting.decoder is twin.decoder
        assert decode(twin) == cached
    del model.decoder.reorder_incremental_state_scripting  # back to fairseq's own walk
    assert type(model.decoder).reorder_incremental_state_scripting is (
        FairseqIncrementalDecoder.reorder_incremental_state_scripting)
    assert decode(model) == cached
