"""How well does each structure fit a *trained* embedding table at a fixed parameter budget?

Training a factorized model from scratch mixes two questions: can the structure represent what a dense model
learns, and can training find it. This answers the first one for the embedding tables of a trained dense
translation model: for each budget, the relative Frobenius error of the best fit by

* ``kronecker``: order-2 Kronecker sum (Van Loan-Pitsianis SVD, optimal for its rank), rows in dictionary order
  (fairseq sorts by frequency, so the mixed-radix digits of a token id group tokens of similar frequency);
* ``kronecker_shuffled``: the same after a random permutation of the rows (does the id -> row mapping matter?);
* ``lowrank``: truncated SVD of the table (ALBERT's factorized embedding), optimal for its parameter count.

Errors are reported plain and weighted by token frequency (the dictionary counts), since frequent tokens
dominate the loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from shapeshifter.experiment.checkpoints import load_checkpoint, model_state_dict
from shapeshifter.experiment.records import config_hash, file_sha256, git_commit, versions
from shapeshifter.nn.embedding import KroneckerEmbedding
from shapeshifter.nn.shapes import resolve_shape


def relative_errors(weight: Tensor, approx: Tensor, counts: Tensor | None) -> tuple[float, float | None]:
    """(||W - A|| / ||W||, the same with each row weighted by its token count), padding rows included."""
    diff = (weight - approx).double()
    plain = float(diff.norm() / weight.double().norm())
    if counts is None:
        return plain, None
    w = counts.double().clamp_min(0).sqrt()[:, None]
    return plain, float((diff * w).norm() / (weight.double() * w).norm())


def lowrank_fit(weight: Tensor, params: int) -> tuple[Tensor, int, int]:
    """Best rank-e approximation with e*(rows+cols) <= params; returns (approximation, e, parameters)."""
    rows, cols = weight.shape
    e = max(1, min(min(rows, cols), params // (rows + cols)))
    u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
    approx = (u[:, :e] * s[:e]) @ vh[:e]
    return approx.to(weight.dtype), e, e * (rows + cols)


def kronecker_fit(weight: Tensor, params: int, perm: Tensor | None = None) -> tuple[Tensor, int, int]:
    """Best order-2 Kronecker sum within ``params`` (rows permuted by ``perm`` first, un-permuted after)."""
    rows, cols = weight.shape
    per_rank = resolve_shape(rows, cols, 2, "balanced").params_per_rank()
    rank = max(1, params // per_rank)
    source = weight if perm is None else weight[perm]
    layer, _ = KroneckerEmbedding.from_dense(source, rank=rank, order=2)
    approx = layer.dense_weight().detach()
    if perm is not None:
        approx = approx[torch.argsort(perm)]
    return approx, rank, rank * per_rank


def fit_table(weight: Tensor, counts: Tensor | None, budgets: Sequence[float], seed: int = 0) -> list[dict[str, Any]]:
    """One row per (budget, structure): rank, parameters, plain and frequency-weighted error."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(weight.shape[0], generator=gen)
    out = []
    for reduction in budgets:
        params = math.floor(weight.numel() / reduction)
        fits = {"kronecker": kronecker_fit(weight, params), "kronecker_shuffled": kronecker_fit(weight, params, perm),
                "lowrank": lowrank_fit(weight, params)}
        for name, (approx, rank, used) in fits.items():
            err, werr = relative_errors(weight, approx, counts)
            out.append({"reduction": reduction, "structure": name, "rank": rank, "params": used, "error": err,
                        "weighted_error": werr})
    return out


def token_counts(dict_file: Path) -> Tensor:
    """Counts of a fairseq dictionary file in model row order (the 4 specials first, with count 0)."""
    from fairseq.data import Dictionary

    d = Dictionary.load(str(dict_file))
    return torch.tensor([float(c) if i >= d.nspecial else 0.0 for i, c in enumerate(d.count)])


TABLES = {"encoder.embed_tokens.weight": "source", "decoder.embed_tokens.weight": "target"}


def analyse_checkpoint(checkpoint: Path, data_bin: Path, src: str, tgt: str,
                       budgets: Sequence[float] = (5.4, 10, 25, 50)) -> dict[str, Any]:
    """An ``embedding_fit`` record: the fits of both embedding tables of a trained translation checkpoint."""
    state = model_state_dict(load_checkpoint(checkpoint))
    config = {"checkpoint_sha256": file_sha256(checkpoint), "budgets": list(budgets), "seed": 0}
    rows = []
    for key, side in TABLES.items():
        counts = token_counts(data_bin / f"dict.{src if side == 'source' else tgt}.txt")
        weight = state[key].float()
        if counts.numel() < weight.shape[0]:  # fairseq pads the table past the dictionary
            counts = torch.cat([counts, torch.zeros(weight.shape[0] - counts.numel())])
        rows += [{"table": side, **row} for row in fit_table(weight, counts, budgets)]
    return {"kind": "embedding_fit", "status": "done", "config": config, "config_hash": config_hash(config),
            "checkpoint": str(checkpoint), "results": rows, "git_commit": git_commit(), "versions": versions()}


def fit_markdown(record: dict[str, Any]) -> str:
    """The record as a table: per table and budget, the error of each structure (plain / frequency-weighted)."""
    lines = ["| table | fewer params (×) | structure | rank | params | rel. error | freq.-weighted error |",
             "|---|---|---|---|---|---|---|"]
    for r in record["results"]:
        weighted = "–" if r["weighted_error"] is None else f"{r['weighted_error']:.3f}"
        lines.append(f"| {r['table']} | {r['reduction']:g} | {r['structure']} | {r['rank']} | {r['params']:,} | "
                     f"{r['error']:.3f} | {weighted} |")
    return "\n".join(lines) + "\n"
