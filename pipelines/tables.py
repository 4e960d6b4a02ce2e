"""Regenerate tables and plots from run records only (no training).

    python pipelines/tables.py demo --records results/demo/records --out results/demo

Writes ``table.md``, ``table.tex`` (booktabs), ``table.csv`` and ``bleu_vs_params.png`` and prints the
Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shapeshifter.app.records import load_records  # noqa: E402
from shapeshifter.app.tables import (  # noqa: E402
    TRANSLATION_COLUMNS,
    plot_quality_vs_params,
    stamp,
    to_markdown,
    translation_rows,
    write_table_files,
)


def translation_table(records_dir: Path, out_dir: Path, title: str) -> str:
    records = [r for r in load_records(records_dir) if r.get("kind") == "translation"]
    if not records:
        raise SystemExit(f"no finished translation run records under {records_dir}")
    rows = translation_rows(records)
    copy = rows[0].get("copy_bleu")
    md = f"## {title}\n\n" + to_markdown(rows, TRANSLATION_COLUMNS)
    if copy is not None:
        md += f"\nCopy-the-source baseline on the same test split: BLEU (tok) {copy:.2f}.\n"
    md += f"\n{stamp(records)}\n"
    write_table_files(out_dir, md, rows, TRANSLATION_COLUMNS, f"{title}. {stamp(records)}")
    plot_quality_vs_params(rows, out_dir / "bleu_vs_params.png", baseline=copy, source=stamp(records))
    return md


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=["demo"])
    parser.add_argument("--records", type=Path, default=Path("results/demo/records"))
    parser.add_argument("--out", type=Path, default=Path("results/demo"))
    args = parser.parse_args()
    print(translation_table(args.records, args.out, "Demo: German→English sample, dense vs Shapeshifter"))


if __name__ == "__main__":
    main()
