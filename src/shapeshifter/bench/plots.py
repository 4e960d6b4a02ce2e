"""Plots of the benchmarks' records (headless: matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shapeshifter.reports.plots import pyplot, save_figure


def plot_peers(record: dict[str, Any], path: Path) -> Path:
    """Two panels, time and peak memory as × dense, one group of horizontal bars per shape, one bar per peer."""
    rows = [r for r in record["rows"] if "skipped" not in r and r["peer"] != "dense"]
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    peers = list(dict.fromkeys(r["peer"] for r in rows))
    fig, axes = pyplot().subplots(1, 2, figsize=(11, 1.2 + 0.35 * len(shapes) * (len(peers) + 1)), dpi=110,
                                  sharey=True)
    height = 1.0 / (len(peers) + 1)
    for ax, key, title in ((axes[0], "time_ratio", "forward + backward time (× dense)"),
                           (axes[1], "memory_ratio", "peak memory of the step (× dense)")):
        for j, peer in enumerate(peers):
            pts = [(shapes.index(r["shape"]), r[key]) for r in rows if r["peer"] == peer]
            ax.barh([i + j * height for i, _ in pts], [v for _, v in pts], height=height, label=peer,
                    color=f"C{j}")
        ax.axvline(1.0, color="grey", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel(title)
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks([i + (len(peers) - 1) * height / 2 for i in range(len(shapes))], shapes)
    axes[0].invert_yaxis()
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the bars, not over them
    cfg = record["config"]
    fig.suptitle(f"Peers at about {1 / cfg['budget']:.0f}× fewer parameters, {record['device']}, "
                 f"{cfg['tokens']} tokens (grey line: dense)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, f"shapeshifter bench_peers, {record['machine']['platform']}")
