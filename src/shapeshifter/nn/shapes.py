"""Reshape schemes: how a matrix of size m x n is split into Kronecker factors of sizes m_j x n_j.

A `KroneckerShape` holds the per-mode sizes ``out_factors = (m_1, ..., m_N)`` and ``in_factors =
(n_1, ..., n_N)``. The factored matrix is ``prod(m_j) x prod(n_j)``, at least as large as the matrix it
stands for; the surplus rows/columns are cropped away (``W = crop(sum_k F_1k ⊗ ... ⊗ F_Nk)``).

Schemes:

* ``"balanced"`` -- factors as equal as possible, padding up when the size does not factor well. With
  word2ketXS's ``q = ceil(size ** (1/N))``, the candidates are all tuples of factors within ``[ceil(q/2),
  2q]`` whose product covers the size (``(q, ..., q)`` always does); the least padding wins, ties go to the
  most even. So 512 (N=2) is 32 x 16 with no padding, and 6632 (= 8 x 829) becomes 99 x 67 = 6633.
* ``"exact"`` -- an integer factorization with no padding, as even as possible; an error when the size has
  no factorization into N factors that are all >= 2 (a prime, say).
* ``"phm<n>"`` (``"phm2"``, ``"phm4"``, ...) -- parameterized hypercomplex multiplication (Zhang et al.,
  ICLR 2021): ``W = sum_{i<n} A_i ⊗ S_i`` with ``A_i`` of size ``n x n``, i.e. order 2 and rank n; an
  ``out x in`` matrix gets factor sizes ``((n, ceil(out/n)), (n, ceil(in/n)))``. The rank must equal n
  (`check_scheme_rank`).
* explicit -- ``((m_1, ..., m_N), (n_1, ..., n_N))``.

For ``"balanced"`` and ``"exact"``, output factors are sorted descending and input factors ascending:
pairing large ``m_j`` with small ``n_j`` minimises the parameter count ``rank * sum_j m_j n_j`` for the same
products (rearrangement inequality). PHM keeps its ``n x n`` factor first: that factor is what makes it PHM.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, Union

SchemeName = Literal["balanced", "exact", "phm2", "phm4", "phm8"]  # any "phm<n>" with n >= 2
ExplicitShape = tuple[tuple[int, ...], tuple[int, ...]]
ShapeSpec = Union[str, ExplicitShape, "KroneckerShape"]


@dataclass(frozen=True)
class KroneckerShape:
    """Per-mode factor sizes of a Kronecker-factored ``out_features x in_features`` matrix."""

    out_factors: tuple[int, ...]
    in_factors: tuple[int, ...]

    @property
    def order(self) -> int:
        return len(self.out_factors)

    @property
    def padded_out(self) -> int:
        return math.prod(self.out_factors)

    @property
    def padded_in(self) -> int:
        return math.prod(self.in_factors)

    def params_per_rank(self) -> int:
        return sum(m * n for m, n in zip(self.out_factors, self.in_factors, strict=True))

    def as_tuple(self) -> ExplicitShape:
        return (tuple(self.out_factors), tuple(self.in_factors))

    def __str__(self) -> str:
        return " ⊗ ".join(f"{m}x{n}" for m, n in zip(self.out_factors, self.in_factors, strict=True))


def _root_ceil(size: int, order: int) -> int:
    q = max(1, round(size ** (1.0 / order)))
    while q**order < size:
        q += 1
    while q > 1 and (q - 1) ** order >= size:
        q -= 1
    return q


def balanced_factors(size: int, order: int) -> tuple[int, ...]:
    """Near-even ``order`` factors (within [q/2, 2q], q = ceil(size^(1/order))) covering ``size`` with least
    padding; ties go to the most even."""
    _check_size_order(size, order)
    q = _root_ceil(size, order)
    lo, hi_bound = max(1, -(-q // 2)), 2 * q
    best: tuple[int, int, tuple[int, ...]] | None = None  # (product, spread, factors)

    def search(prefix: tuple[int, ...], prod: int, hi: int) -> None:
        nonlocal best
        remaining = order - len(prefix)
        if remaining == 0:
            if prod >= size:
                key = (prod, prefix[0] - prefix[-1], prefix)
                if best is None or key < best:
                    best = key
            return
        for f in range(hi, lo - 1, -1):
            # Even the largest completion (all later factors = f) cannot cover the size: smaller f neither.
            if prod * f**remaining < size:
                break
            if best is not None and prod * f * lo ** (remaining - 1) > best[0]:
                continue
            search(prefix + (f,), prod * f, f)

    search((), 1, hi_bound)
    assert best is not None  # q**order >= size always qualifies
    return best[2]


def exact_factors(size: int, order: int) -> tuple[int, ...]:
    """The most even factorization of ``size`` into ``order`` integers >= 2, with no padding."""
    _check_size_order(size, order)
    best: tuple[int, int, tuple[int, ...]] | None = None  # (max factor, sum, factors)

    def search(prefix: tuple[int, ...], rest: int, hi: int) -> None:
        nonlocal best
        remaining = order - len(prefix)
        if remaining == 1:
            if 2 <= rest <= hi:
                cand = prefix + (rest,)
                key = (cand[0], sum(cand), cand)
                if best is None or key < best:
                    best = key
            return
        # Largest-first: the first factor is >= rest^(1/remaining).
        low = max(2, _root_ceil(rest, remaining))
        for f in range(low, min(hi, rest // 2 ** (remaining - 1)) + 1):
            if rest % f == 0:
                search(prefix + (f,), rest // f, f)

    search((), size, size)
    if best is None:
        raise ValueError(
            f"scheme 'exact': {size} has no factorization into {order} factors >= 2 "
            f"(use scheme 'balanced', which pads, or an explicit shape)"
        )
    return best[2]


def _check_size_order(size: int, order: int) -> None:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"matrix dimension must be a positive integer, got {size!r}")
    if not isinstance(order, int) or order < 2:
        raise ValueError(f"order must be an integer >= 2, got {order!r}")


_SCHEMES = {"balanced": balanced_factors, "exact": exact_factors}
_PHM = re.compile(r"phm(\d+)")


def phm_n(shape: ShapeSpec) -> int | None:
    """The n of a ``"phm<n>"`` scheme name; None for every other shape."""
    match = _PHM.fullmatch(shape) if isinstance(shape, str) else None
    return int(match.group(1)) if match else None


def check_scheme_name(shape: ShapeSpec, order: int) -> None:
    """Raise ValueError for a scheme no matrix could use (an unknown name, explicit factors of the wrong order):
    policies are checked when parsed, before any data or model exists."""
    if isinstance(shape, KroneckerShape) or phm_n(shape) is not None:
        return
    if isinstance(shape, str):
        if shape not in _SCHEMES:
            raise ValueError(f"unknown reshape scheme {shape!r}; choose one of {sorted(_SCHEMES)}, 'phm<n>' "
                             f"(n >= 2) or give explicit factors ((m_1, ..., m_N), (n_1, ..., n_N))")
        return
    try:
        out_f, in_f = (tuple(int(v) for v in part) for part in shape)
    except (TypeError, ValueError) as err:
        raise ValueError(f"explicit shape must be ((m_1, ..., m_N), (n_1, ..., n_N)), got {shape!r}") from err
    if len(out_f) != order or len(in_f) != order or min(out_f + in_f) < 1:
        raise ValueError(f"explicit shape {shape!r} needs {order} positive output and {order} positive input "
                         f"factors (order {order})")


def check_scheme_rank(shape: ShapeSpec, rank: int, order: int = 2) -> None:
    """Raise ValueError when ``shape`` fixes the rank or order and they differ (PHM: rank n, order 2)."""
    n = phm_n(shape)
    if n is None:
        return
    if n < 2:
        raise ValueError(f"scheme {shape!r}: PHM needs n >= 2 (n = 1 is the dense matrix itself)")
    if order != 2:
        raise ValueError(f"scheme {shape!r} is order 2 (W = sum_i A_i ⊗ S_i), got order {order}")
    if rank != n:
        raise ValueError(f"scheme {shape!r} sums n = {n} Kronecker products, so rank must be {n}, got rank {rank}")


def resolve_shape(out_features: int, in_features: int, order: int, shape: ShapeSpec) -> KroneckerShape:
    """Turn a scheme name or explicit factor sizes into a validated `KroneckerShape`."""
    if isinstance(shape, KroneckerShape):
        out_f, in_f = shape.out_factors, shape.in_factors
    elif (n := phm_n(shape)) is not None:
        check_scheme_rank(shape, n, order)
        out_f, in_f = (n, -(-out_features // n)), (n, -(-in_features // n))  # no sorting: A_i is n x n
    elif isinstance(shape, str):
        if shape not in _SCHEMES:
            raise ValueError(f"unknown reshape scheme {shape!r}; choose one of {sorted(_SCHEMES)}, 'phm<n>' "
                             f"(n >= 2) or give explicit factors ((m_1, ..., m_N), (n_1, ..., n_N))")
        out_f = tuple(sorted(_SCHEMES[shape](out_features, order), reverse=True))
        in_f = tuple(sorted(_SCHEMES[shape](in_features, order)))
    else:
        try:
            out_f, in_f = (tuple(int(v) for v in part) for part in shape)
        except (TypeError, ValueError) as err:
            raise ValueError(f"explicit shape must be ((m_1, ..., m_N), (n_1, ..., n_N)), got {shape!r}") from err
    result = KroneckerShape(tuple(out_f), tuple(in_f))
    validate_shape(result, out_features, in_features, order)
    return result


def validate_shape(shape: KroneckerShape, out_features: int, in_features: int, order: int | None = None) -> None:
    """Raise ValueError unless ``shape`` has matching orders, positive sizes and covers the matrix."""
    m, n = shape.out_factors, shape.in_factors
    if len(m) != len(n):
        raise ValueError(f"shape {shape.as_tuple()}: {len(m)} output factors but {len(n)} input factors")
    if order is not None and len(m) != order:
        raise ValueError(f"shape {shape.as_tuple()} has order {len(m)}, expected order {order}")
    if len(m) < 2:
        raise ValueError(f"shape {shape.as_tuple()}: order must be >= 2")
    if any(v < 1 for v in m + n):
        raise ValueError(f"shape {shape.as_tuple()}: factor sizes must be positive")
    if shape.padded_out < out_features or shape.padded_in < in_features:
        raise ValueError(
            f"shape {shape.as_tuple()} covers {shape.padded_out}x{shape.padded_in}, which cannot hold a "
            f"{out_features}x{in_features} matrix (need prod(m_j) >= {out_features}, prod(n_j) >= {in_features})"
        )
