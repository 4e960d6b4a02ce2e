"""Plot helpers of every table: matplotlib on the Agg backend, figures whose PNG bytes depend only on the records
(no software version or date in the file), log-axis ticks, and the quality-vs-parameters scatter."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shapeshifter.reports.frame import pareto_front


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend (tables are built on headless machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, source: str = "") -> Path:
    """Lay out, write and close a figure. ``source`` (the records' `stamp`) goes into the PNG's Description
    field; no software version or date is written, so the same records give the same bytes."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None, "Description": source or None})
    plt.close(fig)
    return path


# One (marker, colour) pair per point of a plot keyed by its legend: 12 markers x 10 colours, 60 distinct pairs.
POINT_MARKERS = "osD^vP*Xh<>p"


def point_style(i: int) -> dict[str, str]:
    """The marker and colour of the ``i``-th configuration of a plot whose legend names each point."""
    return {"marker": POINT_MARKERS[i % len(POINT_MARKERS)], "color": f"C{i % 10}"}


def compact_number(v: float) -> str:
    """``20k``, ``1.5M``, ``500``: a tick label short enough for a log axis."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.3g}"


def log_ticks(ax: Any, values: Sequence[float]) -> None:
    """Labelled x ticks of a log axis at 1-2-5, 1-3 or 1 per decade (fewer as the values span more decades), in
    compact form, minor ticks unlabelled: matplotlib labels the minor ticks of a short log axis, and they overlap.
    Values within one step of each other get their own two ends as ticks."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    lo, hi = min(values), max(values)
    span = math.log10(hi / lo) if lo > 0 else 0.0
    steps = (1, 2, 5) if span <= 1.5 else (1, 3) if span <= 3 else (1,)
    view_lo, view_hi = ax.get_xlim()
    ticks = [s * 10.0**k for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 2)
             for s in steps if view_lo <= s * 10.0**k <= view_hi]
    if len(ticks) < 2:
        ticks = sorted({lo, hi})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticks(ticks, [compact_number(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_quality_vs_params(rows: Sequence[dict[str, Any]], path: Path, metric: str = "bleu",
                           ylabel: str = "test BLEU (tokenized)", baseline: float | None = None,
                           baseline_label: str = "copy source", source: str = "") -> Path:
    """Quality against total parameters, one marker (shape and colour) per configuration, named in the legend
    beside the axes: text beside the points overlapped wherever configurations have about the same size and
    score."""
    scored = [r for r in rows if r.get(metric) is not None]
    fig, ax = pyplot().subplots(figsize=(7.5, max(3.8, 1.2 + 0.17 * len(rows))), dpi=120)
    front = pareto_front(rows, metric)
    if len(front) > 1:
        ax.step([r["params"] for r in front], [r[metric] for r in front], where="post", color="grey", linewidth=1,
                zorder=2, label="Pareto front")
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", linewidth=1, label=baseline_label)
    for i, r in enumerate(scored):
        ax.scatter([r["params"]], [r[metric]], s=30, zorder=3, label=r["config"], **point_style(i))
    ax.set_xscale("log")
    if scored:
        log_ticks(ax, [r["params"] for r in scored])
    ax.set_xlabel("total parameters (log scale)")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing scored and no baseline: an empty plot, no legend
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, ncol=1 if len(rows) <= 22 else 2)
    return save_figure(fig, path, source)
