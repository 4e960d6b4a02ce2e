"""Turn the ``shapeshift`` config node into a `shapeshift` policy.

The node is composed from three sweep axes (config groups): ``layers`` (which layer types are factorized),
``rank`` and ``scheme`` (reshape scheme and order), plus optional per-type overrides such as the paper's
higher-rank embeddings::

    shapeshift:
      layers: [attention, ffn]      # or [] for the dense baseline
      rank: 1                       # or full: the rank at which every matrix is exact
      order: 2
      scheme: balanced              # balanced | exact | phm<n> | [[m_1..m_N], [n_1..n_N]]
      kind: kronecker               # optional: kronecker (default) | lowrank (W = U @ V; order 2, scheme balanced)
      init: random                  # random | project
      init_gain: 1.0                # optional: std of a random init relative to the replaced layer's
      per_type: {embedding: {rank: 16}}   # fields merged over the defaults for that type
      exclude: [token_type_embeddings$]   # module-name regexes that stay dense
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shapeshifter.layer_types import LAYER_TYPES
from shapeshifter.surgery import parse_policy, whole_number

ALIASES = {"attn": "attention", "emb": "embedding", "embeddings": "embedding", "out": "output"}


def layer_types(layers: list[str]) -> list[str]:
    """``shapeshift.layers`` as layer types, aliases and ``all`` expanded (in order, without repeats)."""
    types = []
    for name in layers:
        name = ALIASES.get(name, name)
        if name == "all":
            types.extend(t for t in LAYER_TYPES if t != "other")
        elif name in LAYER_TYPES:
            types.append(name)
        else:
            raise ValueError(f"shapeshift.layers: unknown layer type {name!r}; use {LAYER_TYPES} or 'all'")
    return list(dict.fromkeys(types))


def check_whole_numbers(node: Mapping[str, Any]) -> None:
    """``rank`` and ``order`` (also per layer type) are integers in a config: ``'2'`` or ``2.0`` would train the
    same model as ``2`` under another config hash, so a sweep would run it twice and tables split it."""
    entries = [("shapeshift", node)]
    entries += [(f"shapeshift.per_type.{t}", dict(v or {})) for t, v in dict(node.get("per_type") or {}).items()]
    for where, entry in entries:
        for key in ("rank", "order"):
            value = entry.get(key)
            if value is None or (isinstance(value, int) and not isinstance(value, bool)) or (key, value) == (
                    "rank", "full"):  # rank: full is exact (LayerSpec.at)
                continue
            whole = whole_number(f"{where}.{key}", value)  # 2.7, 'two', True: the error names the key
            raise ValueError(f"{where}.{key} must be a whole number, got {value!r}: write {where}.{key}={whole} "
                             "(no quotes or decimals)")


def policy_from_config(node: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A policy dict (validated), or None when nothing is factorized (the dense baseline)."""
    if node is None:
        return None
    node = dict(node)
    unknown = set(node) - {"layers", "rank", "order", "scheme", "init", "per_type", "path", "kind", "name",
                           "layers_name", "scheme_name", "exclude", "init_from", "init_gain"}
    if unknown:
        raise ValueError(f"shapeshift config: unknown key(s) {sorted(unknown)}")
    if node.get("init", "random") not in ("random", "project"):
        raise ValueError(f"shapeshift.init must be 'random' or 'project', got {node.get('init')!r}")
    check_whole_numbers(node)
    layers = node.get("layers") or []
    layers = [layers] if isinstance(layers, str) else list(layers)
    types = layer_types(layers)
    if not types:
        return None
    base = {"rank": node.get("rank", 1), "order": node.get("order", 2), "scheme": node.get("scheme", "balanced"),
            "path": node.get("path", "auto")}
    for key in ("kind", "init_gain"):  # only when given: policies stay identical to those in records and checkpoints
        if key in node:
            base[key] = node[key]
    per_type = dict(node.get("per_type") or {})
    bad = set(per_type) - set(LAYER_TYPES)
    if bad:
        raise ValueError(f"shapeshift.per_type: unknown layer type(s) {sorted(bad)}")
    unused = set(per_type) - set(types)
    if unused:
        raise ValueError(f"shapeshift.per_type: {sorted(unused)} would have no effect: not factorized by "
                         f"shapeshift.layers={layers}")
    policy: dict[str, Any] = {}
    for t in dict.fromkeys(types):
        spec = dict(base)
        spec.update(dict(per_type.get(t) or {}))
        policy[t] = spec
    if node.get("exclude"):
        policy["exclude"] = list(node["exclude"])
    try:
        parse_policy(policy)  # fail now, before data preparation or training
    except ValueError as err:
        raise ValueError(f"shapeshift: {err}") from err
    return policy


def check_smaller_than_dense(report: Any, allow: bool = False, types: tuple[str, ...] | None = None) -> None:
    """Refuse a policy whose factorized matrices of one layer type hold more parameters than the dense matrices
    they replace (``rank=5000`` on a small model: a larger model, trained for nothing), naming the type and its
    largest layer, unless ``allow`` (``run.allow_larger=true``). ``types``: only these layer types (the others
    are checked later, e.g. once the vocabulary is known)."""
    if report is None or allow:
        return
    for layer_type, (dense, factored) in report.params_by_type().items():
        if factored <= dense or (types is not None and layer_type not in types):
            continue
        worst = max((r for r in report.factorized if r.layer_type == layer_type),
                    key=lambda r: r.params_after / max(1, r.params_before))
        raise ValueError(
            f"shapeshift: the factorized {layer_type} matrices would hold {factored:,} parameters, "
            f"{factored / max(1, dense):.1f}x the {dense:,} of the dense ones they replace ({worst.name}: "
            f"{worst.params_after:,} vs {worst.params_before:,}, factors {worst.factors}, rank {worst.rank}): lower "
            "the rank or change the scheme, or pass run.allow_larger=true to train the larger model anyway")
