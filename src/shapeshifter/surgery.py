"""`shapeshift`: replace a model's `nn.Linear` / `nn.Embedding` layers by factorized ones in place.

The policy says, per layer type (see `shapeshifter.layer_types`), whether to keep the layer dense or how
to factorize it: a Kronecker sum (``kind: kronecker``, the default; rank / order / reshape scheme, PHM
being the scheme ``phm<n>``) or a low-rank product (``kind: lowrank``; rank), e.g.
``{"embedding": {"rank": 64, "kind": "lowrank"}, "attention": {"rank": 4, "scheme": "phm4"}}``.

Tied weights stay tied: an output projection whose weight *is* an embedding's weight becomes a
`TiedOutput` reading the factorized embedding (it follows the ``embedding`` policy, since one matrix
cannot have two); embeddings sharing one weight (T5's ``shared`` and both stacks' ``embed_tokens``) share
one replacement. Factorized layers keep a read-only ``weight`` (materialized), so code that reads it, such as
`nn.MultiheadAttention` reading ``out_proj.weight``, keeps working.

Matrices held in a layout of their own go through a `FusedLayout`: `nn.MultiheadAttention`'s fused ``3d x d``
``in_proj_weight`` always (it becomes a `FactoredMultiheadAttention`, ``attention`` policy), GPT-2's ``Conv1D``
when `shapeshifter.hf` passes its layout. A fused q/k/v projection is factorized as one matrix by default
(``qkv: fused``); ``qkv: per_slice`` factorizes each slice on its own (`StackedMatrix`), as separate q/k/v
projections would be. At equal parameters the two fit a trained encoder's in-projection within 1% of each
other (fused a little better on W, per slice on its learned update) and fused is no slower
(`shapeshifter.bench.fused_qkv`), hence the default, which is also what GPT-2's ``c_attn`` got before.

``rank: full`` asks for the rank at which each matrix is represented exactly (`LayerSpec.at`), e.g. to check
that nothing but the weights changes. A linear layer typed ``other`` that looks like a block's attention or FFN
projection (`shapeshifter.layer_types.looks_like_block_layer`) and stays dense is warned about, by name, and
listed in the report's ``warnings``: usually an architecture whose names no pattern knows yet.

A Hugging Face model (a ``transformers`` ``PreTrainedModel``) goes through `shapeshifter.hf.shapeshift`: its
layouts apply and the policy is recorded in ``model.config``, so ``save_pretrained`` and
``shapeshifter.hf.from_pretrained`` round-trip whichever of the two was called.

Subclasses with a forward of their own (scaled or offset embeddings) and matrices no layout handles (the
separate ``q/k/v_proj_weight`` of an `nn.MultiheadAttention` whose kdim/vdim differ, GPT-2's ``Conv1D`` without
its layout) are left as they are and listed in the report as unhandled, with the reason, never replaced by
something that computes differently.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol

import torch
from torch import nn

from .layer_types import LAYER_TYPES, LayerTypeClassifier, looks_like_block_layer
from .nn.attention import FactoredMultiheadAttention
from .nn.embedding import FactoredEmbedding, KroneckerEmbedding, TiedOutput
from .nn.factors import FactoredMatrix, KroneckerMatrix, Path
from .nn.linear import FactoredLinear, KroneckerLinear
from .nn.lowrank import LowRankEmbedding, LowRankLinear, LowRankMatrix
from .nn.projection import project_into
from .nn.shapes import ShapeSpec, check_scheme_name, check_scheme_rank, phm_n, resolve_shape
from .nn.stacked import StackedMatrix

Init = Literal["random", "project"]
Kind = Literal["kronecker", "lowrank"]
Qkv = Literal["fused", "per_slice"]

# The layer classes of each kind: (linear, embedding).
LAYER_CLASSES: dict[str, tuple[type[FactoredLinear], type[FactoredEmbedding]]] = {
    "kronecker": (KroneckerLinear, KroneckerEmbedding),
    "lowrank": (LowRankLinear, LowRankEmbedding),
}
# The matrix class of each kind, for the parts of a `StackedMatrix`.
MATRIX_CLASSES: dict[str, type[FactoredMatrix]] = {"kronecker": KroneckerMatrix, "lowrank": LowRankMatrix}
SPEC_FIELDS = ("rank", "order", "scheme", "path", "kind", "qkv", "init_gain")
FULL = "full"  # the rank at which every matrix is exact (`LayerSpec.at`)


@dataclass(frozen=True)
class LayerSpec:
    """How to factorize one layer type.

    ``kind="kronecker"`` (default): a rank-``rank`` sum of order-``order`` Kronecker products reshaped by
    ``scheme`` (``"phm<n>"`` is PHM and needs rank n, order 2). ``kind="lowrank"``: ``W = U @ V`` of inner
    size ``rank``; it has no order or scheme, so those must stay at their defaults. ``qkv`` says how a fused
    q/k/v projection (``3d x d``) is factorized: as one matrix (``"fused"``) or one factorization per ``d x d``
    slice (``"per_slice"``, the parameters of separate q/k/v projections at this rank); other layers ignore it.
    ``init_gain`` scales the std of a random init (default: the replaced layer's own std), to measure how much
    the init's variance matters. ``rank="full"`` is, per matrix, the smallest rank that represents any matrix
    of its shape exactly (`at`); defined for low rank and Kronecker order 2 (an order-3 fit is CP-ALS, which
    need not reach an exact fit, and PHM fixes its rank).
    """

    rank: int | Literal["full"]
    order: int = 2
    scheme: ShapeSpec = "balanced"
    path: Path = "auto"
    kind: Kind = "kronecker"
    qkv: Qkv = "fused"
    init_gain: float = 1.0

    def __post_init__(self) -> None:
        if self.rank != FULL and (not isinstance(self.rank, int) or self.rank < 1):
            raise ValueError(f"rank must be a positive integer or 'full' (exact), got {self.rank!r}")
        if not isinstance(self.order, int) or self.order < 2:
            raise ValueError(f"order must be an integer >= 2, got {self.order!r}")
        if self.kind not in LAYER_CLASSES:
            raise ValueError(f"kind must be one of {sorted(LAYER_CLASSES)}, got {self.kind!r}")
        if self.kind == "lowrank" and (self.order, self.scheme) != (2, "balanced"):
            raise ValueError(f"kind 'lowrank' has no order or reshape scheme, got order={self.order}, "
                             f"scheme={self.scheme!r}; leave them at their defaults (2, 'balanced')")
        if isinstance(self.init_gain, bool) or not isinstance(self.init_gain, int | float) or self.init_gain <= 0:
            raise ValueError(f"init_gain must be a positive number, got {self.init_gain!r}")
        if self.path not in ("auto", "factored", "dense"):
            raise ValueError(f"path must be 'auto', 'factored' or 'dense', got {self.path!r}")
        if self.qkv not in ("fused", "per_slice"):
            raise ValueError(f"qkv must be 'fused' or 'per_slice', got {self.qkv!r}")
        if self.kind == "kronecker":
            check_scheme_name(self.scheme, self.order)
        if self.rank != FULL:
            check_scheme_rank(self.scheme, self.rank, self.order)
        elif self.kind == "kronecker" and (self.order != 2 or phm_n(self.scheme) is not None):
            raise ValueError(f"rank 'full' (exact) needs order 2 and a scheme that leaves the rank free, got order "
                             f"{self.order}, scheme {self.scheme!r}: an order-3 fit (CP-ALS) need not be exact "
                             f"and PHM's rank is its n")

    def at(self, rows: int, cols: int) -> LayerSpec:
        """This spec for one ``rows x cols`` matrix: ``rank="full"`` becomes the rank that makes it exact, low
        rank: min(rows, cols); Kronecker A ⊗ B with A m1 x n1, B m2 x n2: min(m1 n1, m2 n2), the rank of the
        rearranged (m1 n1) x (m2 n2) matrix (Van Loan and Pitsianis; the padding a scheme adds is cropped)."""
        if self.rank != FULL:
            return self
        if self.kind == "lowrank":
            return replace(self, rank=min(rows, cols))
        ks = resolve_shape(rows, cols, 2, self.scheme)
        return replace(self, rank=min(m * n for m, n in zip(ks.out_factors, ks.in_factors, strict=True)))

    @property
    def layer_args(self) -> tuple[Any, ...]:
        """The positional arguments after the matrix size, for the layer classes of this kind."""
        if self.rank == FULL:
            raise ValueError("rank 'full' depends on the matrix: use spec.at(rows, cols).layer_args")
        return (self.rank,) if self.kind == "lowrank" else (self.rank, self.order, self.scheme)


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
        out[layer_type] = spec if isinstance(spec, LayerSpec) else _spec_from_mapping(layer_type, spec)
    return out


def _spec_from_mapping(layer_type: str, spec: Any) -> LayerSpec:
    """A `LayerSpec` from a policy entry such as ``{"rank": 4, "kind": "lowrank"}`` (from YAML or code)."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"policy[{layer_type!r}] must be 'dense' or a mapping with rank/order/scheme, "
                         f"got {spec!r}")
    fields = dict(spec)
    unknown = set(fields) - set(SPEC_FIELDS)
    if unknown:
        raise ValueError(f"policy[{layer_type!r}]: unknown field(s) {sorted(unknown)}; "
                         f"allowed: {', '.join(SPEC_FIELDS)}")
    if "rank" not in fields:
        raise ValueError(f"policy[{layer_type!r}] needs a 'rank' ('full' for exact, or the value 'dense')")
    scheme = fields.get("scheme", "balanced")
    if not isinstance(scheme, str):  # explicit ((m..), (n..)) possibly as lists from YAML
        scheme = tuple(tuple(int(v) for v in part) for part in scheme)
    try:
        rank = FULL if fields["rank"] == FULL else whole_number(f"policy[{layer_type!r}].rank", fields["rank"])
    except ValueError as err:
        raise ValueError(f"{err} (or 'full' for exact)") from err
    order = whole_number(f"policy[{layer_type!r}].order", fields.get("order", 2))
    try:
        return LayerSpec(rank, order, scheme, fields.get("path", "auto"), fields.get("kind", "kronecker"),
                         qkv=fields.get("qkv", "fused"), init_gain=fields.get("init_gain", 1.0))
    except ValueError as err:
        raise ValueError(f"policy[{layer_type!r}]: {err}") from err


def whole_number(name: str, value: Any) -> int:
    """``value`` as an int when it is one (``4``, ``"4"``, ``4.0``); an error naming ``name`` for ``2.7``,
    ``"two"`` or ``True``."""
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer():
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(number)


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
    factors: str | None = None  # factor sizes: "32x16 ⊗ 16x32" (Kronecker), "6632x20 · 20x512" (low rank)
    factorization: str | None = None  # kronecker | lowrank
    reconstruction_error: float | None = None
    reason: str | None = None


@dataclass
class ShapeshiftReport:
    """One `LayerRecord` per matrix, and a line per layer that looks like attention/FFN but stayed dense."""

    layers: list[LayerRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def unhandled(self) -> list[LayerRecord]:
        return [r for r in self.layers if r.status == "unhandled"]

    @property
    def factorized(self) -> list[LayerRecord]:
        return [r for r in self.layers if r.status == "factorized"]

    def params_by_type(self) -> dict[str, tuple[int, int]]:
        """``(dense, factorized)`` parameters of the factorized matrices of each layer type."""
        out: dict[str, tuple[int, int]] = {}
        for r in self.factorized:
            dense, factored = out.get(r.layer_type, (0, 0))
            out[r.layer_type] = (dense + r.params_before, factored + r.params_after)
        return out

    def mean_error_by_type(self) -> dict[str, float]:
        """Mean relative reconstruction error of the projected layers, per layer type (empty after a random init)."""
        errors: dict[str, list[float]] = {}
        for r in self.factorized:
            if r.reconstruction_error is not None:
                errors.setdefault(r.layer_type, []).append(r.reconstruction_error)
        return {t: sum(e) / len(e) for t, e in errors.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": [asdict(r) for r in self.layers],
            "factorized": len(self.factorized),
            "dense": sum(r.status == "dense" for r in self.layers),
            "unhandled": [r.name for r in self.unhandled],
            "warnings": list(self.warnings),
        }

    def totals(self) -> dict[str, int]:
        """Parameters of the listed matrices (and their biases) before and after, and layers per status; a
        matrix shared by several layers counts once."""
        out = {"params_before": sum(r.params_before for r in self.layers),
               "params_after": sum(r.params_after for r in self.layers)}
        return out | {status: sum(r.status == status for r in self.layers)
                      for status in ("factorized", "dense", "unhandled")}

    def summary(self) -> str:
        """One line per matrix, a total line, then the warnings."""
        lines = [f"{'layer':60s} {'type':9s} {'status':10s} {'shape':>12s} {'params':>10s} {'factors':>22s} err"]
        for r in self.layers:
            err = "" if r.reconstruction_error is None else f"{r.reconstruction_error:.3f}"
            note = r.factors or (r.reason or "")
            lines.append(f"{r.name:60s} {r.layer_type:9s} {r.status:10s} {r.shape[0]:>5d}x{r.shape[1]:<6d} "
                         f"{r.params_after:>10,d} {note:>22s} {err}")
        t = self.totals()
        fewer = f"{t['params_before'] / t['params_after']:.2f}× fewer" if t["params_after"] else "no parameters left"
        lines.append(f"{'total':60s} {'':9s} {'':10s} {'':>12s} {t['params_after']:>10,d} from "
                     f"{t['params_before']:,d} ({fewer}); {t['factorized']} factorized, {t['dense']} dense, "
                     f"{t['unhandled']} unhandled")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _target_std(weight: torch.Tensor, skip_row: int | None = None, gain: float = 1.0) -> float | None:
    """Std of the weight being replaced (the model's own init) times ``gain``; None when it carries no
    information (the layer's own default init then applies)."""
    w = weight.detach()
    if skip_row is not None:
        w = torch.cat([w[:skip_row], w[skip_row + 1:]])
    std = float(w.float().std()) if w.numel() > 1 else 0.0
    return std * gain if std > 0 else None


def _parents(*roots: nn.Module) -> dict[int, list[tuple[nn.Module, str]]]:
    """Every (parent, attribute) under ``roots`` that refers to each module, shared modules included."""
    refs: dict[int, list[tuple[nn.Module, str]]] = {}
    for root in roots:
        for _, parent in root.named_modules(remove_duplicate=False):
            for attr, child in parent.named_children():
                refs.setdefault(id(child), []).append((parent, attr))
    return refs


class FusedLayout(Protocol):
    """A module that holds a linear map in a layout of its own (GPT-2's ``Conv1D`` stores W as in x out).

    `shapeshift` factorizes W (out x in, as `nn.Linear`) and asks the layout to wrap the factorized linear in
    a module with the original's interface; layouts for framework classes live at the edge
    (`shapeshifter.hf`), so this module imports no framework.
    """

    suffix: str  # appended to the module's name to name W in the report ("" when the module is W's only holder)

    def matches(self, module: nn.Module) -> bool: ...

    def dense(self, module: nn.Module) -> nn.Linear:
        """An `nn.Linear` computing what ``module`` computes (W out x in; a copy is fine)."""
        ...

    def slices(self, name: str, module: nn.Module) -> int:
        """How many maps W stacks by rows (3 for fused q, k, v), factorized apart under ``qkv: per_slice``."""
        ...

    def wrap(self, module: nn.Module, linear: FactoredLinear) -> nn.Module:
        """The replacement: ``linear`` behind ``module``'s interface."""
        ...


class MultiheadAttentionLayout:
    """`FusedLayout` of `nn.MultiheadAttention` (kdim = vdim = embed_dim): W is ``in_proj_weight``, q/k/v stacked."""

    suffix = ".in_proj"

    def matches(self, module: nn.Module) -> bool:
        return type(module) is nn.MultiheadAttention and module.in_proj_weight is not None

    def dense(self, module: nn.Module) -> nn.Linear:
        w, b = module.in_proj_weight, module.in_proj_bias
        linear = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            linear.weight.copy_(w)
            if b is not None:
                linear.bias.copy_(b)
        return linear

    def slices(self, name: str, module: nn.Module) -> int:
        return 3

    def wrap(self, module: nn.Module, linear: FactoredLinear) -> nn.Module:
        return FactoredMultiheadAttention.replacing(module, linear.matrix, linear.bias)


# Layouts of PyTorch's own modules, always applied (after those passed to `shapeshift`).
TORCH_LAYOUTS: tuple[FusedLayout, ...] = (MultiheadAttentionLayout(),)


def shapeshift(
    model: nn.Module,
    policy: Mapping[str, Any] | None,
    init: Init = "random",
    patterns: Mapping[str, Any] | None = None,
    layouts: Sequence[FusedLayout] = (),
) -> ShapeshiftReport:
    """Replace the model's linear and embedding layers per ``policy``, in place; returns a report.

    ``policy`` maps layer types to specs (see `parse_policy`); its optional ``"exclude"`` entry lists
    regexes of module names that stay dense (e.g. BERT's 2-row ``token_type_embeddings``).

    ``init="random"`` draws factors whose product matches the std of the weight being replaced (so the
    model keeps its own init scale); ``init="project"`` fits the factors to the current (pretrained) weight
    with `from_dense` and records the relative reconstruction error per layer.

    What the model computes never changes silently: a subclass of `nn.Linear` / `nn.Embedding` with a
    forward of its own (a scaled or offset embedding) is left dense and reported unhandled; embeddings that
    share one weight get one shared replacement (or all stay dense); ``layouts`` adds modules such as
    GPT-2's ``Conv1D`` (`shapeshifter.hf.shapeshift` passes the Hugging Face ones) to `TORCH_LAYOUTS`
    (`nn.MultiheadAttention`); a Hugging Face model without layouts is refused here (`shapeshifter.shapeshift`
    sends it to `shapeshifter.hf.shapeshift`, so this module imports nothing of transformers' edge).

    Every linear layer typed ``other`` that looks like a block's attention/FFN projection and stays dense is
    named in one `UserWarning` and in ``report.warnings``.
    """
    if init not in ("random", "project"):
        raise ValueError(f"init must be 'random' or 'project', got {init!r}")
    if not layouts and is_hugging_face(model):  # the layouts of transformers' modules live at the edge
        raise ValueError(f"{type(model).__name__} is a transformers model: use shapeshifter.shapeshift or "
                         "shapeshifter.hf.shapeshift (its Conv1D layouts, its policy kept in model.config)")
    surgery = _Surgery(parse_policy(policy), _exclude_patterns((policy or {}).get("exclude")),
                       LayerTypeClassifier(patterns), init)
    named = list(model.named_modules())
    owner_of_weight = {id(m.weight): (n, m) for n, m in named if isinstance(m, nn.Embedding)}
    report = ShapeshiftReport()
    # Embeddings first, so tied output projections can point at their replacement.
    for group in _weight_groups([(n, m) for n, m in named if isinstance(m, nn.Embedding)]):
        report.layers += surgery.embeddings(group)
    layouts = (*layouts, *TORCH_LAYOUTS)
    for n, m in named:
        layout = next((lay for lay in layouts if lay.matches(m)), None)
        if layout is not None:
            report.layers.append(surgery.fused(n, m, layout))
        elif isinstance(m, nn.Linear):
            report.layers.append(surgery.linear(n, m, owner_of_weight.get(id(m.weight))))
    parents = _parents(model, *surgery.replacements.values())  # a replacement may hold replaced children
    for module_id, new in surgery.replacements.items():
        for parent, attr in parents.get(module_id, []):
            setattr(parent, attr, new)
    report.layers += _unhandled_parameters(model, named, surgery)
    report.warnings = _dense_lookalikes(report, surgery.specs)
    if report.warnings:
        warnings.warn(f"shapeshift left {len(report.warnings)} layer(s) dense: {'; '.join(report.warnings)}. "
                      "Give 'other' a policy, or type them with patterns= (shapeshifter.layer_types)", stacklevel=2)
    return report


def is_hugging_face(model: nn.Module) -> bool:
    """Whether ``model`` is a ``transformers`` ``PreTrainedModel`` (checked without importing transformers)."""
    return any(c.__name__ == "PreTrainedModel" and c.__module__.startswith("transformers")
               for c in type(model).__mro__)


def _dense_lookalikes(report: ShapeshiftReport, specs: Policy) -> list[str]:
    """One line per linear layer that no pattern typed, that looks like attention/FFN, and that the policy
    leaves dense only because ``other`` is dense while attention or FFN is factorized."""
    if specs["other"] is not None or (specs["attention"] is None and specs["ffn"] is None):
        return []
    return [f"{r.name} ({r.shape[0]}x{r.shape[1]}): looks like attention/FFN, but no name pattern typed it "
            f"(type 'other', whose policy is dense)"
            for r in report.layers
            if r.layer_type == "other" and r.status == "dense" and r.kind == "linear"
            and r.reason == "policy: dense" and looks_like_block_layer(r.name)]


def _weight_groups(embeddings: list[tuple[str, nn.Embedding]]) -> list[list[tuple[str, nn.Embedding]]]:
    """Embeddings grouped by the weight they hold (T5/BART keep one table in ``shared`` and both stacks)."""
    groups: dict[int, list[tuple[str, nn.Embedding]]] = {}
    for name, module in embeddings:
        groups.setdefault(id(module.weight), []).append((name, module))
    return list(groups.values())


def _own_forward(module: nn.Module) -> str | None:
    """Why a subclass of `nn.Linear` / `nn.Embedding` cannot become a plain factorized layer, or None."""
    base = nn.Embedding if isinstance(module, nn.Embedding) else nn.Linear
    if type(module).forward is base.forward:
        return None
    return (f"{type(module).__name__} overrides {base.__name__}.forward (e.g. a scale or a position offset); "
            f"a plain factorized layer would compute something else")


@dataclass
class _Surgery:
    """The settings of one `shapeshift` call and the replacements decided so far (by module id)."""

    specs: Policy
    excluded: list[re.Pattern[str]]
    classify: LayerTypeClassifier
    init: Init
    replacements: dict[int, nn.Module] = field(default_factory=dict)
    layout_params: set[int] = field(default_factory=set)  # ids of the parameters of modules a layout matched

    def skip_reason(self, name: str, spec: LayerSpec | None) -> str | None:
        """Why the policy keeps this layer dense, or None when it is to be factorized."""
        if spec is None:
            return "policy: dense"
        if any(p.search(name) for p in self.excluded):
            return "policy: excluded"
        return None

    def embeddings(self, group: list[tuple[str, nn.Embedding]]) -> list[LayerRecord]:
        """One replacement for a group of embeddings sharing a weight, or all of them left as they are."""
        first_name, first = group[0]
        rows, cols = first.weight.shape
        spec = self.specs["embedding"]
        records = [LayerRecord(n, "embedding", "embedding", (rows, cols), "dense", rows * cols, rows * cols)
                   for n, _ in group]
        for rec in records[1:]:  # one matrix: counted once, under the first name
            rec.params_before = rec.params_after = 0
        reason = next((r for n, _ in group if (r := self.skip_reason(n, spec)) is not None), None)
        if reason is not None:
            for rec in records:
                rec.reason = reason
            return records
        unsupported = next((r for _, m in group if (r := _unsupported_embedding(m)) is not None), None)
        if unsupported is not None:
            for rec in records:
                rec.status, rec.reason = "unhandled", unsupported
            return records
        new, err = _named(first_name, "embedding", _make_embedding, first, spec, self.init)
        for (_, module), rec in zip(group, records, strict=True):
            self.replacements[id(module)] = new
            _describe(rec, new)
        _fill(records[0], new, err)
        for rec in records[1:]:
            rec.reason = f"shares the weight of {first_name}"
        return records

    def linear(self, name: str, module: nn.Linear, tied: tuple[str, nn.Embedding] | None,
               layer_type: str | None = None, slices: int = 1) -> LayerRecord:
        """Record (and decide the replacement of) one linear layer; ``slices`` > 1: W stacks that many maps."""
        out_f, in_f = module.weight.shape
        n_bias = 0 if module.bias is None else out_f
        layer_type = layer_type or self.classify(name, module)
        rec = LayerRecord(name, layer_type, "linear", (out_f, in_f), "dense", out_f * in_f + n_bias,
                          out_f * in_f + n_bias)
        spec = self.specs[layer_type]
        if tied is not None:
            self.tie(rec, module, *tied)
        elif (reason := self.skip_reason(name, spec)) is not None:
            rec.reason = reason
        elif (reason := _own_forward(module)) is not None:
            rec.status, rec.reason = "unhandled", reason
        else:
            blocks = slices if spec.qkv == "per_slice" else 1
            new, err = _named(name, layer_type, _make_linear, module, spec, self.init, blocks)
            self.replacements[id(module)] = new
            _fill(rec, new, err)
            rec.params_after += n_bias  # the bias stays dense
        return rec

    def fused(self, name: str, module: nn.Module, layout: FusedLayout) -> LayerRecord:
        """A linear map in a layout of its own: factorized as its `nn.Linear` twin, then wrapped."""
        twin = layout.dense(module)
        self.layout_params |= {id(p) for p in module.parameters(recurse=False)}
        rec = self.linear(name + layout.suffix, twin, None, self.classify(name, module), layout.slices(name, module))
        new = self.replacements.pop(id(twin), None)
        if new is not None:
            self.replacements[id(module)] = layout.wrap(module, new)
        return rec

    def tie(self, rec: LayerRecord, module: nn.Linear, emb_name: str, emb: nn.Embedding) -> None:
        """An output projection sharing ``emb``'s weight reads its replacement (embedding policy)."""
        n_bias = 0 if module.bias is None else module.out_features
        rec.kind, rec.params_before, rec.params_after = "tied_output", n_bias, n_bias
        new_emb = self.replacements.get(id(emb))
        if new_emb is None:
            rec.reason = f"tied to dense embedding {emb_name}"
            return
        self.replacements[id(module)] = TiedOutput(new_emb, module.bias)
        _describe(rec, new_emb)
        rec.reason = f"tied to {emb_name} (embedding policy)"


def _unsupported_embedding(module: nn.Embedding) -> str | None:
    """Why this embedding cannot be factorized without changing what it computes, or None."""
    if module.max_norm is not None or module.sparse or module.scale_grad_by_freq:
        return "max_norm/sparse/scale_grad_by_freq are not supported"
    return _own_forward(module)


def _unhandled_parameters(model: nn.Module, named: list[tuple[str, nn.Module]], surgery: _Surgery) -> list[LayerRecord]:
    """Any other matrix-shaped parameter is something we could not factorize: say so."""
    covered = {id(p) for m in surgery.replacements.values() for p in m.parameters()} | surgery.layout_params
    covered |= {id(m.weight) for _, m in named if isinstance(m, (nn.Linear, nn.Embedding))}
    records = []
    for pname, param in model.named_parameters():
        if param.dim() >= 2 and id(param) not in covered:
            owner = pname.rsplit(".", 1)[0] if "." in pname else ""
            shape = (param.shape[0], param.numel() // param.shape[0])
            records.append(LayerRecord(
                pname, surgery.classify(owner), "parameter", shape, "unhandled", param.numel(), param.numel(),
                reason="matrix outside nn.Linear/nn.Embedding that no layout handles (e.g. the q/k/v_proj_weight of "
                       "a MultiheadAttention with kdim/vdim != embed_dim, GPT-2's Conv1D without shapeshifter.hf)",
            ))
    return records


def _named(name: str, layer_type: str, make: Any, *args: Any) -> Any:
    """``make(*args)``, with a ValueError (e.g. an explicit shape too small for this matrix) naming the layer and
    the policy entry that chose the shape."""
    try:
        return make(*args)
    except ValueError as err:
        raise ValueError(f"{name} (policy[{layer_type!r}]): {err}") from err


def _make_linear(module: nn.Linear, spec: LayerSpec, init: Init,
                 blocks: int = 1) -> tuple[FactoredLinear, float | None]:
    if blocks > 1:
        return _make_stacked(module, spec, init, blocks)
    spec = spec.at(*module.weight.shape)
    cls = LAYER_CLASSES[spec.kind][0]
    if init == "project":
        return cls.from_dense(module, *spec.layer_args, path=spec.path)
    w = module.weight
    new = cls(w.shape[1], w.shape[0], *spec.layer_args, bias=module.bias is not None,
              init_std=_target_std(w, gain=spec.init_gain), path=spec.path, device=w.device, dtype=w.dtype)
    _copy_bias(new, module)
    return new, None


def _make_stacked(module: nn.Linear, spec: LayerSpec, init: Init, blocks: int) -> tuple[FactoredLinear, float | None]:
    """A linear whose W is ``blocks`` maps stacked by rows (q, k, v), each factorized on its own."""
    w = module.weight
    if w.shape[0] % blocks:
        raise ValueError(f"{w.shape[0]} rows do not split into {blocks} equal slices")
    spec = spec.at(w.shape[0] // blocks, w.shape[1])
    parts = [MATRIX_CLASSES[spec.kind](w.shape[0] // blocks, w.shape[1], *spec.layer_args, path=spec.path,
                                       device=w.device, dtype=w.dtype) for _ in range(blocks)]
    new = FactoredLinear(StackedMatrix(parts, spec.path), bias=module.bias is not None,
                         init_std=_target_std(w, gain=spec.init_gain), device=w.device, dtype=w.dtype)
    err = project_into(new.matrix, w.detach()) if init == "project" else None
    _copy_bias(new, module)
    return new, err


def _copy_bias(new: FactoredLinear, module: nn.Linear) -> None:
    """The replaced layer's bias, which stays dense (a randomly initialised replacement keeps it as it was)."""
    if module.bias is not None:
        with torch.no_grad():
            new.bias.copy_(module.bias)


def _make_embedding(module: nn.Embedding, spec: LayerSpec, init: Init) -> tuple[FactoredEmbedding, float | None]:
    spec = spec.at(*module.weight.shape)
    cls = LAYER_CLASSES[spec.kind][1]
    if init == "project":
        return cls.from_dense(module, *spec.layer_args, path=spec.path)
    w = module.weight
    new = cls(w.shape[0], w.shape[1], *spec.layer_args, padding_idx=module.padding_idx,
              init_std=_target_std(w, module.padding_idx, spec.init_gain), path=spec.path, device=w.device,
              dtype=w.dtype)
    return new, None


def _describe(rec: LayerRecord, layer: FactoredLinear | FactoredEmbedding) -> None:
    """Mark ``rec`` factorized by ``layer``'s matrix: rank, order (None for low rank), factor sizes, kind."""
    rec.status = "factorized"
    rec.rank, rec.order, rec.factors, rec.factorization = layer.rank, layer.order, layer.matrix.describe(), layer.kind


def _fill(rec: LayerRecord, new: FactoredLinear | FactoredEmbedding, err: float | None) -> None:
    _describe(rec, new)
    rec.params_after = new.matrix.factor_params
    rec.reconstruction_error = err
