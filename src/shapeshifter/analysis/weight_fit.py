"""Is a trained dense model's every matrix closer to a Kronecker sum (or a low-rank product) than noise is?

Projection (``init=project``) starts a compressed model from the best fit of each trained matrix. How much of
the dense solution that keeps depends on whether training put structure into the matrices that the fit can
find. This measures it per matrix: the relative Frobenius error of the best order-2 Kronecker sum and of the
best low-rank product at a given parameter budget (`embedding_fit.kronecker_fit`, `lowrank_fit`), next to the
same fits of a Gaussian matrix of the same shape and standard deviation, which has no structure at all. A
trained matrix that fits no better than its Gaussian twin gives projection nothing but its largest components.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from shapeshifter.analysis.embedding_fit import kronecker_fit, lowrank_fit, relative_errors
from shapeshifter.experiment.checkpoints import load_checkpoint, model_state_dict
from shapeshifter.experiment.records import config_hash, file_sha256, git_commit, versions
from shapeshifter.layer_types import LayerTypeClassifier

STRUCTURES = {"kronecker": kronecker_fit, "lowrank": lowrank_fit}


def gaussian_twin(weight: Tensor, generator: torch.Generator) -> Tensor:
    """A matrix of ``weight``'s shape, mean and standard deviation with independent Gaussian entries."""
    noise = torch.randn(weight.shape, generator=generator, dtype=torch.float64)
    return (noise * weight.double().std() + weight.double().mean()).to(weight.dtype)


def factorized_matrices(state: Mapping[str, Tensor]) -> dict[str, tuple[str, Tensor]]:
    """``{layer name: (layer type, weight)}`` for every 2-D weight `shapeshift` would factorize.

    Layers of type ``other`` are skipped, and so is a weight that is the same tensor as one already listed (a
    tied output projection reads the embedding, so it has no matrix of its own).
    """
    classify = LayerTypeClassifier()
    seen: set[int] = set()
    out = {}
    for key, weight in state.items():
        if not key.endswith(".weight") or weight.dim() != 2 or weight.data_ptr() in seen:
            continue
        name = key.removesuffix(".weight")
        layer_type = classify(name)
        if layer_type == "other":
            continue
        seen.add(weight.data_ptr())
        out[name] = (layer_type, weight.float())
    return out


def fit_matrix(weight: Tensor, reduction: float, twin: Tensor) -> list[dict[str, Any]]:
    """One row per structure: its rank and parameters at ``reduction``, the error on ``weight`` and on ``twin``."""
    params = math.floor(weight.numel() / reduction)
    rows = []
    for name, fit in STRUCTURES.items():
        approx, rank, used = fit(weight, params)
        twin_approx, _, _ = fit(twin, params)
        rows.append({"reduction": reduction, "structure": name, "rank": rank, "params": used,
                     "error": relative_errors(weight, approx, None)[0],
                     "gaussian_error": relative_errors(twin, twin_approx, None)[0]})
    return rows


def fit_state(state: Mapping[str, Tensor], budgets: Sequence[float], seed: int = 0) -> list[dict[str, Any]]:
    """Rows for every factorizable matrix of ``state``, every budget and structure."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for name, (layer_type, weight) in factorized_matrices(state).items():
        twin = gaussian_twin(weight, gen)
        for reduction in budgets:
            rows += [{"layer": name, "layer_type": layer_type, "shape": list(weight.shape), **row}
                     for row in fit_matrix(weight, reduction, twin)]
    return rows


def summarize(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean errors per (layer type, budget, structure), in the order the rows first name them."""
    groups: dict[tuple[str, float, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["layer_type"], row["reduction"], row["structure"]), []).append(row)
    return [{"layer_type": t, "reduction": red, "structure": s, "matrices": len(g),
             "error": statistics.fmean(r["error"] for r in g),
             "gaussian_error": statistics.fmean(r["gaussian_error"] for r in g)}
            for (t, red, s), g in groups.items()]


def analyse_weights(checkpoint: Path, budgets: Sequence[float] = (10, 25)) -> dict[str, Any]:
    """A ``weight_fit`` record: every factorizable matrix of a trained translation checkpoint, fitted."""
    state = model_state_dict(load_checkpoint(checkpoint))
    config = {"checkpoint_sha256": file_sha256(checkpoint), "budgets": list(budgets), "seed": 0}
    rows = fit_state(state, budgets, seed=0)
    if not rows:
        raise ValueError(f"{checkpoint}: no embedding, attention, FFN or output matrix to fit")
    return {"kind": "weight_fit", "status": "done", "config": config, "config_hash": config_hash(config),
            "checkpoint": str(checkpoint), "results": rows, "summary": summarize(rows),
            "git_commit": git_commit(), "versions": versions()}


def weight_fit_markdown(record: Mapping[str, Any]) -> str:
    """The record's summary as a table: per layer type and budget, trained vs Gaussian error of each structure."""
    lines = ["| layer type | matrices | fewer params (×) | structure | rank | rel. error, trained | "
             "rel. error, Gaussian of same shape and std |", "|---|---|---|---|---|---|---|"]
    ranks: dict[tuple[str, float, str], set[int]] = {}
    for r in record["results"]:
        ranks.setdefault((r["layer_type"], r["reduction"], r["structure"]), set()).add(r["rank"])
    for s in record["summary"]:
        rank = "/".join(str(k) for k in sorted(ranks[(s["layer_type"], s["reduction"], s["structure"])]))
        lines.append(f"| {s['layer_type']} | {s['matrices']} | {s['reduction']:g} | {s['structure']} | {rank} | "
                     f"{s['error']:.3f} | {s['gaussian_error']:.3f} |")
    return "\n".join(lines) + "\n"
