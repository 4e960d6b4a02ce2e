"""Regenerate the demo tables and plots from run records only (no training).

    python pipelines/tables.py demo --records results/demo/records/demo --out results/demo
    python pipelines/tables.py demo-glue --records results/demo_glue/records --out results/demo_glue

Writes ``table.md``, ``table.tex`` (booktabs), ``table.csv`` and the quality-vs-size plot, and prints the
Markdown table. The paper's tables are rebuilt by ``pipelines/reproduce.py tables`` (``make tables``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from shapeshifter.reports.frame import Column, stamp, write_table
from shapeshifter.reports.glue import GLUE_COLUMNS, glue_rows
from shapeshifter.reports.paper import finished_records
from shapeshifter.reports.plots import plot_quality_vs_params
from shapeshifter.reports.translation import TRANSLATION_COLUMNS, translation_rows

GLUE_NOTE = ("Scores are the task's main metric on the test split (validation when the test labels are hidden), "
             "evaluated at the best validation checkpoint. Time ratios against the dense model: training wall time "
             "per step (per-epoch validation included) and the whole test pass.")


def write_demo_table(out_dir: Path, title: str, rows: list[dict[str, Any]], columns: list[Column],
                     records: list[dict[str, Any]], note: str | None, plot: str, **plot_kwargs: Any) -> str:
    """``table.md/.tex/.csv`` and the plot ``plot`` in ``out_dir``; returns the Markdown."""
    md = write_table(out_dir, "table", title, rows, columns, records, note or "", caption=f"{title}. {stamp(records)}")
    plot_quality_vs_params(rows, out_dir / plot, source=stamp(records), **plot_kwargs)
    return md


def translation_table(records_dir: Path, out_dir: Path, title: str) -> str:
    records = finished_records(records_dir, "translation")
    rows = translation_rows(records)
    copy = rows[0].get("copy_bleu")
    note = None if copy is None else f"Copy-the-source baseline on the same test split: BLEU (tok) {copy:.2f}."
    return write_demo_table(out_dir, title, rows, TRANSLATION_COLUMNS, records, note, "bleu_vs_params.png",
                            baseline=copy)


def glue_table(records_dir: Path, out_dir: Path, title: str) -> str:
    records = finished_records(records_dir, "glue")
    rows = glue_rows(records)
    return write_demo_table(out_dir, title, rows, GLUE_COLUMNS, records, GLUE_NOTE, "accuracy_vs_params.png",
                            metric="score", ylabel=f"test {rows[0]['metric']} (%)", baseline=rows[0].get("majority"),
                            baseline_label="majority class")


DEMOS = {
    "demo": (translation_table, "Demo: German→English sample, dense vs Shapeshifter"),
    "demo-glue": (glue_table, "Demo: SNLI sample, dense vs Shapeshifter encoders trained from scratch"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=sorted(DEMOS))
    parser.add_argument("--records", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    build, title = DEMOS[args.table]
    try:
        print(build(args.records, args.out, title))
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from err


if __name__ == "__main__":
    main()
