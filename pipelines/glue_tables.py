"""Regenerate the GLUE demo table and plot from run records only (no training).

    python pipelines/glue_tables.py demo --records results/demo_glue/records --out results/demo_glue

Writes ``table.md``, ``table.tex`` (booktabs), ``table.csv`` and ``accuracy_vs_params.png`` and prints the
Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shapeshifter.app.glue_tables import GLUE_COLUMNS, glue_rows  # noqa: E402
from shapeshifter.app.records import load_records  # noqa: E402
from shapeshifter.app.tables import plot_quality_vs_params, stamp, to_markdown, write_table_files  # noqa: E402


def glue_table(records_dir: Path, out_dir: Path, title: str) -> str:
    records = [r for r in load_records(records_dir) if r.get("kind") == "glue"]
    if not records:
        raise SystemExit(f"no finished GLUE run records under {records_dir}")
    rows = glue_rows(records)
    md = f"## {title}\n\n" + to_markdown(rows, GLUE_COLUMNS)
    md += "\nScores are the task's main metric on the test split (validation when the test labels are hidden), " \
          "evaluated at the best validation checkpoint. Time ratios against the dense model: training wall time " \
          "per step (per-epoch validation included) and the whole test pass.\n"
    md += f"\n{stamp(records)}\n"
    write_table_files(out_dir, md, rows, GLUE_COLUMNS, f"{title}. {stamp(records)}")
    majority = rows[0].get("majority")
    metric = rows[0]["metric"]
    plot_quality_vs_params(rows, out_dir / "accuracy_vs_params.png", metric="score",
                           ylabel=f"test {metric} (%)", baseline=majority, baseline_label="majority class",
                           source=stamp(records))
    return md


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=["demo"])
    parser.add_argument("--records", type=Path, default=Path("results/demo_glue/records"))
    parser.add_argument("--out", type=Path, default=Path("results/demo_glue"))
    args = parser.parse_args()
    print(glue_table(args.records, args.out, "Demo: SNLI sample, dense vs Shapeshifter encoders trained from scratch"))


if __name__ == "__main__":
    main()
