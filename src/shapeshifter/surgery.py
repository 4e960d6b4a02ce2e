"""`shapeshift`: replace a model's `nn.Linear` / `nn.Embedding` layers by Kronecker-factored ones in place.

The policy says, per layer type (see `shapeshifter.layer_types`), whether to keep the layer dense or which
rank / order / reshape scheme to use. Tied weights stay tied: an output projection whose weight *is* an
embedding's weight becomes a `TiedKroneckerOutput` reading the factorized embedding (it follows the
``embedding`` policy, since one matrix cannot have two). Matrices that live outside `nn.Linear` /
`nn.Embedding` (fused ``in_proj_weight`` of `nn.MultiheadAttention`, GPT-2's ``Conv1D``, ...) cannot be
replaced safely; they are listed in the report as unhandled, never skipped silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from .layer_types import LAYER_TYPES, LayerTypeClassifier
from .nn.embedding import KroneckerEmbedding, TiedKroneckerOutput
from .nn.factors import Path
from .nn.linear import KroneckerLinear
from .nn.shapes import ShapeSpec

Init = Literal["random", "project"]


@dataclass(frozen=True)
class LayerSpec:
    """How to factorize one layer type."""

    rank: int
    order: int = 2
    scheme: ShapeSpec = "balanced"
    path: Path = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"rank must be a positive integer, got {self.rank!r}")
        if not isinstance(self.order, int) or self.order < 2:
            raise ValueError(f"order must be an integer >= 2, got {self.order!r}")


Policy = dict[str, LayerSpec | None]


def parse_policy(policy: Mapping[str, Any] | None) -> Policy:
    """Normalise a policy mapping: values ``"dense"``/None, a `LayerSpec`, or a dict of its fields.

    Layer types not mentioned stay dense; an unknown layer type or field is an error. The reserved key
    ``"exclude"`` (regexes of module names to keep dense) is validated here and read by `shapeshift`.
    """
    out: Policy = {t: None for t in LAYER_TYPES}
    for layer_type, spec in dict(policy or {}).items():
        if layer_type == "exclude":
            _exclude_patterns(spec)
            continue
        if layer_type not in LAYER_TYPES:
            raise ValueError(f"policy: unknown layer type {layer_type!r}; expected one of {LAYER_TYPES}")
        if spec is None or spec == "dense":
            continue
        if isinstance(spec, LayerSpec):
            out[layer_type] = spec
            continue
        if not isinstance(spec, Mapping):
            raise ValueError(f"policy[{layer_type!r}] must be 'dense' or a mapping with rank/order/scheme, "
                             f"got {spec!r}")
        fields = dict(spec)
        unknown = set(fields) - {"rank", "order", "scheme", "path"}
        if unknown:
            raise ValueError(f"policy[{layer_type!r}]: unknown field(s) {sorted(unknown)}; "
                             f"allowed: rank, order, scheme, path")
        if "rank" not in fields:
            raise ValueError(f"policy[{layer_type!r}] needs a 'rank' (or the value 'dense')")
        scheme = fields.get("scheme", "balanced")
        if not isinstance(scheme, str):  # explicit ((m..), (n..)) possibly as lists from YAML
            scheme = tuple(tuple(int(v) for v in part) for part in scheme)
        out[layer_type] = LayerSpec(int(fields["rank"]), int(fields.get("order", 2)), scheme,
                                    fields.get("path", "auto"))
    return out


def _exclude_patterns(value: Any) -> list[re.Pattern[str]]:
    """Compile the policy's ``exclude`` entry (a regex or a list of them)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    try:
        return [re.compile(str(p)) for p in items]
    except re.error as err:
        raise ValueError(f"policy['exclude']: bad regular expression: {err}") from err


@dataclass
class LayerRecord:
    """What happened to one matrix."""

    name: str
    layer_type: str
    kind: str  # linear | embedding | tied_output | parameter
    shape: tuple[int, int]
    status: str  # factorized | dense | unhandled
    params_before: int
    params_after: int
    rank: int | None = None
    order: int | None = None
    factors: str | None = None
    reconstruction_error: float | None = None
    reason: str | None = None


@dataclass
class ShapeshiftReport:
    layers: list[LayerRecord] = field(default_factory=list)

    @property
    def unhandled(self) -> list[LayerRecord]:
        return [r for r in self.layers if r.status == "unhandled"]

    @property
    def factorized(self) -> list[LayerRecord]:
        return [r for r in self.layers if r.status == "factorized"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": [asdict(r) for r in self.layers],
            "factorized": len(self.factorized),
            "dense": sum(r.status == "dense" for r in self.layers),
            "unhandled": [r.name for r in self.unhandled],
        }

    def summary(self) -> str:
        lines = [f"{'layer':60s} {'type':9s} {'status':10s} {'shape':>12s} {'params':>10s} {'factors':>22s} err"]
        for r in self.layers:
            err = "" if r.reconstruction_error is None else f"{r.reconstruction_error:.3f}"
            note = r.factors or (r.reason or "")
            lines.append(f"{r.name:60s} {r.layer_type:9s} {r.status:10s} {r.shape[0]:>5d}x{r.shape[1]:<6d} "
                         f"{r.params_after:>10,d} {note:>22s} {err}")
        return "\n".join(lines)


def _target_std(weight: torch.Tensor, skip_row: int | None = None) -> float | None:
    """Std of the weight being replaced (the model's own init); None when it carries no information."""
    w = weight.detach()
    if skip_row is not None:
        w = torch.cat([w[:skip_row], w[skip_row + 1:]])
    std = float(w.float().std()) if w.numel() > 1 else 0.0
    return std if std > 0 else None


def _parents(model: nn.Module) -> dict[int, list[tuple[nn.Module, str]]]:
    """Every (parent, attribute) that refers to each module, shared modules included."""
    refs: dict[int, list[tuple[nn.Module, str]]] = {}
    for _, parent in model.named_modules(remove_duplicate=False):
        for attr, child in parent.named_children():
            refs.setdefault(id(child), []).append((parent, attr))
    return refs


def shapeshift(
    model: nn.Module,
    policy: Mapping[str, Any] | None,
    init: Init = "random",
    patterns: Mapping[str, Any] | None = None,
) -> ShapeshiftReport:
    """Replace the model's linear and embedding layers per ``policy``, in place; returns a report.

    ``policy`` maps layer types to specs (see `parse_policy`); its optional ``"exclude"`` entry lists
    regexes of module names that stay dense (e.g. BERT's 2-row ``token_type_embeddings``).

    ``init="random"`` draws factors whose product matches the std of the weight being replaced (so the
    model keeps its own init scale); ``init="project"`` fits the factors to the current (pretrained) weight
    with `from_dense` and records the relative reconstruction error per layer.
    """
    if init not in ("random", "project"):
        raise ValueError(f"init must be 'random' or 'project', got {init!r}")
    spec_by_type = parse_policy(policy)
    excluded = _exclude_patterns((policy or {}).get("exclude"))
    classify = LayerTypeClassifier(patterns)
    parents = _parents(model)
    report = ShapeshiftReport()
    replacements: dict[int, nn.Module] = {}

    named = list(model.named_modules())
    owner_of_weight = {id(m.weight): (n, m) for n, m in named if isinstance(m, nn.Embedding)}
    fused_parents = {id(c) for _, m in named if isinstance(m, nn.MultiheadAttention) for c in m.children()}

    # Embeddings first, so tied output projections can point at their replacement.
    for name, module in named:
        if not isinstance(module, nn.Embedding):
            continue
        rows, cols = module.weight.shape
        spec = spec_by_type["embedding"]
        rec = LayerRecord(name, "embedding", "embedding", (rows, cols), "dense", rows * cols, rows * cols)
        if spec is None:
            rec.reason = "policy: dense"
        elif any(p.search(name) for p in excluded):
            rec.reason = "policy: excluded"
        elif module.max_norm is not None or module.sparse or module.scale_grad_by_freq:
            rec.status, rec.reason = "unhandled", "max_norm/sparse/scale_grad_by_freq are not supported"
        else:
            new, err = _make_embedding(module, spec, init)
            replacements[id(module)] = new
            _fill(rec, new, err)
        report.layers.append(rec)

    for name, module in named:
        if not isinstance(module, nn.Linear):
            continue
        out_f, in_f = module.weight.shape
        n_bias = 0 if module.bias is None else out_f
        layer_type = classify(name, module)
        rec = LayerRecord(name, layer_type, "linear", (out_f, in_f), "dense", out_f * in_f + n_bias,
                          out_f * in_f + n_bias)
        tied = owner_of_weight.get(id(module.weight))
        if id(module) in fused_parents:
            rec.status = "unhandled"
            rec.reason = "inside nn.MultiheadAttention, which reads out_proj.weight directly"
        elif tied is not None:
            emb_name, emb = tied
            rec.kind, rec.params_before = "tied_output", n_bias
            rec.params_after = n_bias
            new_emb = replacements.get(id(emb))
            if new_emb is None:
                rec.reason = f"tied to dense embedding {emb_name}"
            else:
                replacements[id(module)] = TiedKroneckerOutput(new_emb, module.bias)
                rec.status, rec.reason = "factorized", f"tied to {emb_name} (embedding policy)"
                rec.rank, rec.order, rec.factors = new_emb.rank, new_emb.order, str(new_emb.kshape)
        elif spec_by_type[layer_type] is None:
            rec.reason = "policy: dense"
        elif any(p.search(name) for p in excluded):
            rec.reason = "policy: excluded"
        else:
            new, err = _make_linear(module, spec_by_type[layer_type], init)
            replacements[id(module)] = new
            _fill(rec, new, err)
            rec.params_after += n_bias
        report.layers.append(rec)

    for module_id, new in replacements.items():
        for parent, attr in parents.get(module_id, []):
            setattr(parent, attr, new)

    # Any other matrix-shaped parameter is something we could not factorize: say so.
    covered = {id(p) for m in replacements.values() for p in m.parameters()}
    covered |= {id(m.weight) for _, m in named if isinstance(m, (nn.Linear, nn.Embedding))}
    for pname, param in model.named_parameters():
        if param.dim() >= 2 and id(param) not in covered:
            owner = pname.rsplit(".", 1)[0] if "." in pname else ""
            shape = (param.shape[0], param.numel() // param.shape[0])
            report.layers.append(LayerRecord(
                pname, classify(owner), "parameter", shape, "unhandled", param.numel(), param.numel(),
                reason="matrix outside nn.Linear/nn.Embedding (e.g. fused in_proj_weight, Conv1D)",
            ))
    return report


def _make_linear(module: nn.Linear, spec: LayerSpec, init: Init) -> tuple[KroneckerLinear, float | None]:
    w = module.weight
    if init == "project":
        return KroneckerLinear.from_dense(module, spec.rank, spec.order, spec.scheme, path=spec.path)
    new = KroneckerLinear(w.shape[1], w.shape[0], spec.rank, spec.order, spec.scheme, bias=module.bias is not None,
                          init_std=_target_std(w), path=spec.path, device=w.device, dtype=w.dtype)
    if module.bias is not None:
        with torch.no_grad():
            new.bias.copy_(module.bias)
    return new, None


def _make_embedding(module: nn.Embedding, spec: LayerSpec, init: Init) -> tuple[KroneckerEmbedding, float | None]:
    w = module.weight
    if init == "project":
        return KroneckerEmbedding.from_dense(module, spec.rank, spec.order, spec.scheme, path=spec.path)
    new = KroneckerEmbedding(w.shape[0], w.shape[1], spec.rank, spec.order, spec.scheme,
                             padding_idx=module.padding_idx, init_std=_target_std(w, module.padding_idx),
                             path=spec.path, device=w.device, dtype=w.dtype)
    return new, None


def _fill(rec: LayerRecord, new: KroneckerLinear | KroneckerEmbedding, err: float | None) -> None:
    rec.status = "factorized"
    rec.rank, rec.order, rec.factors = new.rank, new.order, str(new.kshape)
    rec.params_after = new.matrix.factor_params
    rec.reconstruction_error = err
