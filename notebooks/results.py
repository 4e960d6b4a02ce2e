# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Shapeshifter: our tables next to the paper's quoted figures
#
# Everything here is read from run records (`results/records/`); nothing is trained. Build the records with
# `make reproduce-table-N SCALE=smoke|full` (README: "Reproducing the paper's tables"). Smoke-scale numbers test
# the pipeline only. Runs as a plain script too: `.venv/bin/python notebooks/results.py`.

# %%
from pathlib import Path

from shapeshifter.app.paper_tables import (
    PAPER_PARAM_REDUCTION,
    PAPER_PREDICT_OVERHEAD,
    PAPER_TRAIN_OVERHEAD,
    SCALES,
    TABLE_IDS,
    build_table,
    group_name,
    table1_rows,
    tables_dir,
)
from shapeshifter.app.records import load_records

ROOT = Path.cwd() if (Path.cwd() / "conf").is_dir() else Path.cwd().parent
RECORDS, TABLES = ROOT / "results" / "records", ROOT / "results" / "tables"
print(f"records under {RECORDS}")

# %% [markdown]
# ## All tables (Markdown, as written to `results/tables/`)

# %%
for scale in SCALES:
    for table in TABLE_IDS:
        try:
            print(f"### scale: {scale}\n\n" + build_table(table, scale, RECORDS, TABLES))
        except FileNotFoundError:
            print(f"{scale}/{table}: no finished records yet\n")

# %% [markdown]
# ## Table 1 against the paper: training +17%, prediction +13% (quoted)

# %%
for scale in SCALES:
    bench = [r for r in load_records(RECORDS / group_name("table1", scale)) if r.get("kind") == "bench_model"]
    for row in table1_rows(bench) if bench else []:
        if row["config"] == "dense":
            continue
        print(f"{scale:>5} {row['config']:>10} on {row['device']}: train {row['train_ratio'] - 1:+.0%} "
              f"(paper {PAPER_TRAIN_OVERHEAD:+.0%}), beam search {row['beam_ratio'] - 1:+.0%} "
              f"(paper prediction {PAPER_PREDICT_OVERHEAD:+.0%}), {row['reduction']:.1f}× fewer parameters "
              f"(paper {PAPER_PARAM_REDUCTION})")

# %% [markdown]
# ## Plots

# %%
try:
    from IPython.display import Image, display
except ImportError:  # plain-script run
    display = None
for scale in SCALES:
    for png in sorted(tables_dir(TABLES, scale).glob("*.png")):
        print(png)
        if display is not None:
            display(Image(filename=str(png)))
