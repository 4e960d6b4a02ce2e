"""Parameter accounting by layer type: total, trainable, factorized vs dense, compression.

Shared parameters (tied embeddings, a `TiedOutput`'s factors) are counted once, as fairseq does. The
factors of every kind of `FactoredMatrix` (Kronecker, PHM, low rank) count as ``factorized``;
``dense_equivalent`` is what the same architecture would have with every factorized matrix dense;
``compression = dense_equivalent / total``.

The command line that builds a model, applies a policy and prints this table is `shapeshifter.cli.params`
(``shapeshifter-params``, ``pipelines/params.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import nn

from .layer_types import LAYER_TYPES, LayerTypeClassifier
from .nn.factors import FactoredMatrix
from .surgery import parse_policy

_OWNER = re.compile(r"(\.weight|\.bias)$")


def count_parameters(model: nn.Module, patterns: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Counts by layer type. Returns a JSON-able dict (see module docstring for the fields)."""
    classify = LayerTypeClassifier(patterns)
    modules = dict(model.named_modules())
    by_type = {t: {"params": 0, "factorized": 0, "dense": 0, "dense_equivalent": 0} for t in LAYER_TYPES}
    total = trainable = 0
    seen_matrices: set[int] = set()
    for pname, param in model.named_parameters():  # deduplicated: shared parameters appear once
        owner, matrix = _owner(pname, modules)
        # a parameter that is not a module's weight/bias (MultiheadAttention's in_proj_weight) is typed by its holder
        holder = modules.get(owner, modules.get(pname.rsplit(".", 1)[0] if "." in pname else ""))
        layer_type = classify(owner, holder)  # LayerNorms etc. match no pattern: "other"
        n = param.numel()
        total += n
        trainable += n if param.requires_grad else 0
        entry = by_type[layer_type]
        entry["params"] += n
        if matrix is not None:
            entry["factorized"] += n
            if id(matrix) not in seen_matrices:
                seen_matrices.add(id(matrix))
                entry["dense_equivalent"] += matrix.rows * matrix.cols
        else:
            entry["dense"] += n
            entry["dense_equivalent"] += n
    for entry in by_type.values():
        entry["compression"] = entry["dense_equivalent"] / entry["params"] if entry["params"] else 1.0
    dense_equivalent = sum(e["dense_equivalent"] for e in by_type.values())
    return {
        "total": total,
        "trainable": trainable,
        "factorized": sum(e["factorized"] for e in by_type.values()),
        "dense_equivalent": dense_equivalent,
        "compression": dense_equivalent / total if total else 1.0,
        "by_type": by_type,
    }


def _owner(pname: str, modules: Mapping[str, nn.Module]) -> tuple[str, FactoredMatrix | None]:
    """The layer a parameter counts under, and the factored matrix it is a factor of (None for dense ones).

    A factor belongs to the outermost `FactoredMatrix` on its path (a `StackedMatrix`, not its parts), and that
    to the layer holding it (``fc1.matrix``: ``fc1``; a factorized MultiheadAttention's ``in_proj``: the
    attention module); a dense parameter to its module, named as in the regular expressions (``fc1.weight``:
    ``fc1``).
    """
    path = pname.split(".")[:-1]
    for i in range(1, len(path) + 1):
        matrix = modules.get(".".join(path[:i]))
        if isinstance(matrix, FactoredMatrix):
            return ".".join(path[: i - 1]), matrix
    return _OWNER.sub("", pname), None


def format_table(counts: Mapping[str, Any], dense_total: int | None = None) -> str:
    """Plain-text table of `count_parameters` output."""
    rows = [f"{'layer type':12s} {'params':>12s} {'factorized':>12s} {'dense-equiv':>12s} {'compression':>12s}"]
    for t, e in counts["by_type"].items():
        if e["dense_equivalent"] == 0:
            continue
        rows.append(f"{t:12s} {e['params']:>12,d} {e['factorized']:>12,d} {e['dense_equivalent']:>12,d} "
                    f"{e['compression']:>11.1f}x")
    rows.append(f"{'total':12s} {counts['total']:>12,d} {counts['factorized']:>12,d} "
                f"{counts['dense_equivalent']:>12,d} {counts['compression']:>11.1f}x")
    if dense_total is not None:
        rows.append(f"dense model: {dense_total:,d} parameters -> {dense_total / counts['total']:.1f}x fewer")
    return "\n".join(rows)


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["embedding.rank=16", "ffn=dense"]`` -> nested policy dict."""
    policy: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"policy assignment must look like TYPE.FIELD=VALUE or TYPE=dense, got {item!r}")
        key, value = item.split("=", 1)
        if "." not in key:
            policy[key] = value if value == "dense" else {"rank": int(value)}
            continue
        layer_type, fld = key.split(".", 1)
        entry = policy.setdefault(layer_type, {})
        if not isinstance(entry, dict):
            raise ValueError(f"{layer_type} is both dense and given fields")
        entry[fld] = value if fld in ("scheme", "path", "kind") else int(value)
    parse_policy(policy)
    return policy
