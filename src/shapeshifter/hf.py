"""Hugging Face models at the edge: GPT-2's ``Conv1D`` layout and a save/load round trip of shapeshifted models.

Everything that knows `transformers` lives here; `shapeshifter.surgery` and `shapeshifter.nn` stay plain
PyTorch. `shapeshift` is `shapeshifter.surgery.shapeshift` with the Hugging Face layouts added and the policy
recorded in ``model.config``, so `save` / `from_pretrained` can rebuild the same factorized model.

A folder written by `save` refuses a plain ``ModelClass.from_pretrained`` (and ``AutoModel...``, ``pipeline``),
which would otherwise build the dense model and leave every factorized matrix at random init with only a
warning: its ``config.json`` names as weights file (``transformers_weights``, read by ``from_pretrained`` since
huggingface/transformers#38152) a sentence that is no file name, so ``from_pretrained`` raises a ValueError
quoting it, before building anything. Nothing else in a config can stop it: an unknown ``model_type`` or
``quantization_config`` is only warned about, missing and unexpected keys only reported. Transformers drops
``transformers_weights`` whenever it saves a config, so `save` writes it after ``save_pretrained``: a folder
written by ``model.save_pretrained`` itself is not guarded (`from_pretrained` here still loads it), and
transformers older than that change ignore the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from .nn.factors import FactorizedModule
from .nn.linear import FactoredLinear
from .surgery import FusedLayout, Init, ShapeshiftReport
from .surgery import shapeshift as _shapeshift


class FactoredConv1D(FactoredLinear):
    """GPT-2's ``Conv1D`` (``y = x @ W + b`` with W stored in x out) whose W is factorized.

    Takes over a factorized linear's matrix and bias (so its parameters are named like every other factorized
    layer's, ``c_attn.matrix.factors.0``) and keeps Conv1D's interface: ``nf``, ``nx`` and a read-only
    ``weight`` of shape (nx, nf).
    """

    def __init__(self, linear: FactoredLinear) -> None:
        FactorizedModule.__init__(self)  # no new parameters: they are the linear's
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.nf, self.nx = linear.out_features, linear.in_features
        self.matrix = linear.matrix
        if linear.bias is None:
            self.register_parameter("bias", None)
        else:
            self.bias = linear.bias

    def _read_weight(self) -> Tensor:
        return self.matrix.read_weight().t()

    def extra_repr(self) -> str:
        return f"nf={self.nf}, nx={self.nx} (Conv1D layout)"


class Conv1DLayout:
    """`FusedLayout` of ``transformers.pytorch_utils.Conv1D`` (GPT-2's fused c_attn and its c_proj, c_fc).

    ``c_attn`` stacks q, k and v (self-attention) or k and v (cross-attention), ``nx`` outputs each.
    """

    suffix = ""

    def matches(self, module: nn.Module) -> bool:
        from transformers.pytorch_utils import Conv1D

        return type(module) is Conv1D

    def dense(self, module: nn.Module) -> nn.Linear:
        w = module.weight
        linear = nn.Linear(module.nx, module.nf, bias=module.bias is not None, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            linear.weight.copy_(w.t())
            if module.bias is not None:
                linear.bias.copy_(module.bias)
        return linear

    def slices(self, name: str, module: nn.Module) -> int:
        fused = name.rsplit(".", 1)[-1] == "c_attn" and module.nf % module.nx == 0
        return module.nf // module.nx if fused else 1

    def wrap(self, module: nn.Module, linear: FactoredLinear) -> nn.Module:
        return FactoredConv1D(linear)


LAYOUTS: tuple[FusedLayout, ...] = (Conv1DLayout(),)
CONFIG_KEY = "shapeshifter"


def shapeshift(
    model: nn.Module,
    policy: Mapping[str, Any] | None,
    init: Init = "random",
    patterns: Mapping[str, Any] | None = None,
) -> ShapeshiftReport:
    """`shapeshifter.surgery.shapeshift` with GPT-2's Conv1D handled; the policy is kept in ``model.config``."""
    report = _shapeshift(model, policy, init, patterns, layouts=LAYOUTS)
    if getattr(model, "config", None) is not None:
        _declare(model, policy, patterns)
    return report


def _plain(value: Any) -> Any:
    """A JSON-ready copy (tuples to lists, mappings and `LayerSpec` to dicts) of a policy or patterns mapping."""
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _aliases(model: nn.Module) -> dict[str, str]:
    """``{alias: name}`` for every parameter reachable under a second name (a tied output, a shared table)."""
    first = {id(p): n for n, p in model.named_parameters()}
    return {n: first[id(p)] for n, p in model.named_parameters(remove_duplicate=False) if first[id(p)] != n}


def _declare(model: nn.Module, policy: Mapping[str, Any] | None, patterns: Mapping[str, Any] | None) -> None:
    """Record the policy in the config and the tied factors in ``_tied_weights_keys``.

    The tie declaration lets ``model.save_pretrained`` write each shared factor once (it refuses shared tensors
    it was not told about: "contained shared tensors ... which are not properly defined").
    """
    setattr(model.config, CONFIG_KEY, {"policy": _plain(policy), "patterns": _plain(patterns)})
    declared = dict(getattr(type(model), "_tied_weights_keys", None) or {})
    model._tied_weights_keys = {**declared, **_aliases(model)}


M = TypeVar("M", bound=nn.Module)
WEIGHTS, INDEX = "model.safetensors", "model.safetensors.index.json"
# What a plain `from_pretrained` of a saved folder says (not a *.safetensors name, so transformers refuses it).
GUARD_KEY = "transformers_weights"
GUARD = ("this folder holds a shapeshifted model (factorized weights), which a plain from_pretrained would load "
         "as random dense weights: load it with shapeshifter.hf.from_pretrained(ModelClass, folder)")


def save(model: nn.Module, directory: str | Path, **kwargs: Any) -> None:
    """``model.save_pretrained`` of a model shapeshifted by `shapeshift` (the factors, each tied one once), its
    config marked so that a plain ``from_pretrained`` of the folder fails (see the module docstring)."""
    if getattr(model.config, CONFIG_KEY, None) is None:
        raise ValueError("the model was not shapeshifted with shapeshifter.hf.shapeshift: no policy in its config")
    if kwargs.get("push_to_hub"):
        raise ValueError("save first, then upload the folder: pushed by save_pretrained, its config would lack "
                         "the mark that stops a plain from_pretrained")
    model.save_pretrained(directory, **kwargs)
    config_file = Path(directory) / "config.json"
    config = json.loads(config_file.read_text())
    config[GUARD_KEY] = GUARD
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def from_pretrained(model_class: type[M], directory: str | Path, **config_kwargs: Any) -> M:
    """The factorized model saved in ``directory``: built from its config, shapeshifted by the stored policy,
    then loaded with the saved factors (every key accounted for), in eval mode as ``from_pretrained`` returns.

    A plain ``model_class.from_pretrained(directory)`` would build the dense model and leave every factorized
    matrix at random init (transformers only warns), hence this function; `save` makes that call fail.
    """
    config = model_class.config_class.from_pretrained(directory, **config_kwargs)
    if hasattr(config, GUARD_KEY):  # the mark is for plain from_pretrained, not a file to read
        delattr(config, GUARD_KEY)
    stored = getattr(config, CONFIG_KEY, None)
    if stored is None:
        raise ValueError(f"{directory} holds no shapeshifted model (no {CONFIG_KEY!r} entry in its config.json)")
    model = model_class(config)
    shapeshift(model, stored["policy"], "random", stored["patterns"])
    current, rename = set(model.state_dict()), _checkpoint_renamer(model)
    state = {(k if k in current else rename(k)): v for k, v in _load_state(Path(directory)).items()}
    result = model.load_state_dict(state, strict=False)
    missing = set(result.missing_keys) - set(_aliases(model))
    if missing or result.unexpected_keys:
        raise ValueError(f"{directory} does not match the shapeshifted {model_class.__name__}: missing "
                         f"{sorted(missing)}, unexpected {sorted(result.unexpected_keys)}")
    return model.eval()


def _checkpoint_renamer(model: nn.Module) -> Callable[[str], str]:
    """Checkpoint key -> module key, as ``from_pretrained`` renames them (transformers 5 saves some models, e.g.
    ViT, under their legacy names); renamings only, factor keys never go through tensor converters."""
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightRenaming, apply_renamings
    except ImportError:  # transformers 4 saves the module names as they are
        return lambda key: key
    renamings = [t for t in get_model_conversion_mapping(model) if isinstance(t, WeightRenaming)]
    return lambda key: apply_renamings(key, renamings)


def _load_state(directory: Path) -> dict[str, Tensor]:
    """The tensors of a (possibly sharded) safetensors checkpoint."""
    from safetensors.torch import load_file

    if (directory / INDEX).exists():
        files = sorted(set(json.loads((directory / INDEX).read_text())["weight_map"].values()))
    else:
        files = [WEIGHTS]
    state: dict[str, Tensor] = {}
    for name in files:
        state.update(load_file(directory / name))
    return state
