"""Build fairseq Transformer models from a registered arch name plus plain-value overrides.

fairseq is used for the model definition only; training is done by Lightning (see `module.py`).
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from shapeshifter.experiment.checkpoints import load_model_weights
from shapeshifter.nn.factors import FactorizedModule
from shapeshifter.nn.grouped import group_weights
from shapeshifter.surgery import shapeshift


def transformer_arg_names() -> set[str]:
    """All option names the fairseq `transformer` model understands (valid override keys)."""
    from fairseq.models.transformer import TransformerModel

    parser = argparse.ArgumentParser(add_help=False)
    TransformerModel.add_args(parser)
    return {action.dest for action in parser._actions if action.dest != "help"}


def transformer_args(arch: str, overrides: dict[str, Any] | None = None) -> argparse.Namespace:
    """fairseq's argparse namespace for `arch`, with `overrides` applied before the arch defaults.

    fairseq arch functions only fill attributes that are not set yet (`getattr(args, k, default)`),
    so setting the overrides first and then calling the arch function gives "arch defaults + overrides".
    """
    from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY

    if arch not in ARCH_CONFIG_REGISTRY or ARCH_MODEL_REGISTRY[arch].__name__ != "TransformerModel":
        known = sorted(a for a, m in ARCH_MODEL_REGISTRY.items() if m.__name__ == "TransformerModel")
        raise ValueError(f"unknown Transformer arch {arch!r}; fairseq registers: {', '.join(known)}")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - transformer_arg_names())
    if unknown:
        raise ValueError(f"unknown fairseq Transformer override(s) for arch {arch!r}: {', '.join(unknown)}")
    args = argparse.Namespace(arch=arch, **overrides)
    ARCH_CONFIG_REGISTRY[arch](args)
    return args


def use_module_attention_path(model: nn.Module) -> int:
    """Let fairseq attention with factorized projections pick, per call, its fused path or the module path.

    fairseq's `MultiheadAttention.forward` has a fast path that hands ``q_proj.weight`` etc. to
    `F.multi_head_attention_forward` (PyTorch's fused attention: one SDPA kernel instead of fairseq's bmm,
    softmax, dropout, bmm and their copies); reading ``.weight`` of a factorized projection materializes W
    (cached in inference). When every projection would take its dense path anyway (the cost model's choice for
    this many rows; always for the cached W at inference unless the factors are cheaper), the fast path computes
    the same thing with fewer operators; otherwise ``skip_embed_dim_check`` (which disables the fast path and
    nothing else we use) sends the call through ``self.q_proj(x)``, where each projection takes its own path. A
    forward pre-hook sets it before each call. Returns how many modules got the hook.
    """
    from fairseq.modules import MultiheadAttention

    switched = 0
    for module in model.modules():
        if not isinstance(module, MultiheadAttention):
            continue
        projections = (module.q_proj, module.k_proj, module.v_proj, module.out_proj)
        if not all(type(p) is nn.Linear for p in projections):
            module.register_forward_pre_hook(_choose_attention_path, with_kwargs=True)
            switched += 1
    return switched


def _choose_attention_path(module: nn.Module, args: tuple, kwargs: dict) -> None:
    """Pre-hook of a fairseq `MultiheadAttention`: fused fast path iff every projection takes its dense path."""
    query = args[0] if args else kwargs["query"]
    rows = query.shape[0] * query.shape[1]  # (time, batch, channels)
    inference = not torch.is_grad_enabled()
    dense = True
    for proj in (module.q_proj, module.k_proj, module.v_proj, module.out_proj):
        if isinstance(proj, FactorizedModule):
            matrix = proj.matrix
            path = matrix.choose_inference_path(rows) if inference else matrix.choose_path(rows)
            dense = dense and path == "dense"
    module.skip_embed_dim_check = not dense


def cache_incremental_modules(model: nn.Module) -> int:
    """Let beam search visit only the decoder modules that keep incremental state, found once.

    fairseq's `reorder_incremental_state_scripting` walks every decoder module at every decoding step to find those
    with a ``reorder_incremental_state`` method; a factorized layer is three modules (layer, matrix, factor list),
    so the walk costs the factorized model more Python than the dense one, for the same answer every step. The
    decoder gets a method that visits the modules found at build time, by name (so a deep copy or a pickle of the
    model reorders its own modules). Returns how many modules it visits.
    """
    decoder = model.decoder
    names = [name for name, m in decoder.named_modules() if hasattr(m, "reorder_incremental_state")]
    decoder.reorder_incremental_state_scripting = _ReorderFoundModules(decoder, names)
    return len(names)


class _ReorderFoundModules:
    """fairseq's `reorder_incremental_state_scripting` over the decoder modules found by
    `cache_incremental_modules` (a plain object holding its decoder, so pickles and deep copies follow it)."""

    def __init__(self, decoder: nn.Module, names: list[str]) -> None:
        self.decoder, self.names = decoder, names

    def __call__(self, incremental_state: dict, new_order: torch.Tensor) -> None:
        for name in self.names:
            result = self.decoder.get_submodule(name).reorder_incremental_state(incremental_state, new_order)
            if result is not None:
                incremental_state = result


def build_transformer(
    arch: str,
    src_dict: Any,
    tgt_dict: Any,
    overrides: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    seed: int = 1,
    init: str = "random",
    init_from: Any = None,
) -> tuple[nn.Module, Any]:
    """Build a fairseq `TransformerModel` for `arch` and optionally shapeshift it.

    Returns `(model, report)`; `report` is the `ShapeshiftReport` from `shapeshifter.surgery.shapeshift`
    (None for a dense model, i.e. `policy=None`). The seed fixes both fairseq's initialisation and the
    factor initialisation of the shapeshifted layers. ``init_from`` (a checkpoint of the dense model) loads
    trained weights before the surgery, so ``init="project"`` fits the factors to them.
    """
    from fairseq.models.transformer import TransformerModel

    args = transformer_args(arch, overrides)
    torch.manual_seed(seed)
    task = SimpleNamespace(source_dictionary=src_dict, target_dictionary=tgt_dict)
    model = TransformerModel.build_model(args, task)
    if init_from is not None:
        load_model_weights(model, init_from)
    report = None
    if policy is not None:
        report = shapeshift(model, policy, init=init)
        use_module_attention_path(model)
        group_weights(model)  # one batched build of W per shape and training forward (fewer, larger kernels)
    cache_incremental_modules(model)  # dense and factorized alike
    return model, report


def unique_parameter_count(model: nn.Module) -> int:
    """Number of parameters with tied tensors counted once (`nn.Module.parameters()` deduplicates)."""
    return sum(p.numel() for p in model.parameters())


def placeholder_dictionary(size: int) -> Any:
    """A fairseq `Dictionary` with exactly `size` symbols (specials included), for sizing models only."""
    from fairseq.data import Dictionary

    d = Dictionary()
    if size < len(d):
        raise ValueError(f"a fairseq dictionary has at least {len(d)} symbols (specials), got size {size}")
    for i in range(size - len(d)):
        d.add_symbol(f"<sym{i}>")
    return d
