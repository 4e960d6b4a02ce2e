"""Every plot built from the committed records, at both scales, is readable (issue 24, item 6): legends beside
the data, every dashed or dotted line explained in a legend, no overlapping tick or point labels, one panel per
device in Table 1's plot, file names that say what the x axis is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from matplotlib.lines import Line2D

from shapeshifter.bench import plots as bench_plots
from shapeshifter.bench.plots import plot_peers
from shapeshifter.cli.tables import DEMOS
from shapeshifter.reports import paper, plots, quality
from shapeshifter.reports.registry import REGISTRY, SCALES, build_table

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "results" / "records"
X_AXES = {"params": "total parameters", "reduction": "fewer parameters than dense"}


@pytest.fixture
def figures(monkeypatch) -> dict[str, Any]:
    """The figures the plot functions save, kept open (by file name) instead of written."""
    kept: dict[str, Any] = {}

    def keep(fig: Any, path: Path, source: str = "") -> Path:
        fig.tight_layout()
        fig.canvas.draw()
        kept[path.name] = fig
        return path

    for module in (plots, paper, quality, bench_plots):
        monkeypatch.setattr(module, "save_figure", keep)
    yield kept
    plots.pyplot().close("all")


def _overlapping(boxes: list[Any]) -> list[tuple[Any, Any]]:
    return [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]


def check_readable(name: str, fig: Any) -> None:
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    legends = [ax.get_legend() for ax in axes if ax.get_legend() is not None] + list(fig.legends)
    assert legends, f"{name}: no legend"
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in axes), f"{name}: legend over data"
    explained = {h.get_linestyle() for legend in legends for h in legend.legend_handles if isinstance(h, Line2D)}
    for ax in axes:
        for minor in (False, True):
            labels = [t for t in ax.get_xticklabels(minor=minor) if t.get_text() and t.get_visible()]
            clash = _overlapping([t.get_window_extent(renderer) for t in labels])
            assert not clash, f"{name}: x tick labels overlap: {[t.get_text() for t in labels]}"
        assert not _overlapping([t.get_window_extent(renderer) for t in ax.texts]), f"{name}: point labels overlap"
        styles = {line.get_linestyle() for line in ax.lines if line.get_visible()} - {"-", "None", " ", ""}
        assert styles <= explained, f"{name}: line styles {styles - explained} not in a legend"
    if "_vs_" in name:  # <y>_vs_<x>.png: the x axis is what the name says
        x = name.removesuffix(".png").split("_vs_")[1]
        assert X_AXES[x] in axes[0].get_xlabel(), (name, axes[0].get_xlabel())


@pytest.mark.parametrize("scale", SCALES)
def test_every_table_plot_of_the_committed_records_is_readable(scale, figures, tmp_path):
    built = []
    for table in REGISTRY:
        try:
            build_table(table, scale, RECORDS, tmp_path)
        except FileNotFoundError:
            continue
        built.append(table)
    assert "table1" in built and figures
    for name, fig in figures.items():
        check_readable(name, fig)
    assert "table1_time_ratio_vs_rank.png" not in figures
    table1 = figures["table1_ratio_vs_reduction.png"]
    devices = {rec["config"]["device"] for rec in paper.finished_records(
        RECORDS / ("table1" if scale == "full" else "table1-smoke"), "bench_model")}
    assert sorted(ax.get_title() for ax in table1.axes) == sorted(devices)  # one panel per device


def test_the_demo_plots_are_readable(figures, tmp_path):
    for demo, folder in (("demo", "demo/records/demo"), ("demo-glue", "demo_glue/records")):
        build, title = DEMOS[demo]
        build(ROOT / "results" / folder, tmp_path / demo, title)
    assert set(figures) == {"bleu_vs_params.png", "accuracy_vs_params.png"}
    for name, fig in figures.items():
        check_readable(name, fig)


def test_the_peers_plot_keeps_its_legend_beside_the_bars(figures, tmp_path):
    for record in sorted((ROOT / "results" / "bench").glob("peers-*.json")):
        plot_peers(json.loads(record.read_text()), tmp_path / f"{record.stem}.png")
    assert figures
    for name, fig in figures.items():
        check_readable(name, fig)


def test_a_plot_with_overlapping_labels_fails_the_check(figures):
    """The check itself: labels on coinciding points and a legend over the data are caught."""
    fig, ax = plots.pyplot().subplots()
    ax.plot([1, 2], [1, 2], linestyle="--")
    for label in ("a", "b"):
        ax.annotate(label, (1, 1))
    with pytest.raises(AssertionError, match="no legend"):
        check_readable("x.png", fig)
    ax.legend(["line"], loc="center")
    fig.canvas.draw()
    with pytest.raises(AssertionError, match="legend over data"):
        check_readable("x.png", fig)
    ax.legend(["line"], loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.canvas.draw()
    with pytest.raises(AssertionError, match="point labels overlap"):
        check_readable("x.png", fig)


def test_tick_labels_are_compact_and_a_single_or_unscored_point_still_plots(figures, tmp_path):
    assert [plots.compact_number(v) for v in (500, 2000, 20_000, 1_500_000, 3e9)] == ["500", "2k", "20k", "1.5M",
                                                                                       "3G"]
    one = [{"config": "dense", "params": 123_456, "bleu": 1.0}]
    plots.plot_quality_vs_params(one, tmp_path / "one_bleu_vs_params.png")
    plots.plot_quality_vs_params([one[0] | {"bleu": None}], tmp_path / "none_bleu_vs_params.png")
    check_readable("one_bleu_vs_params.png", figures["one_bleu_vs_params.png"])
