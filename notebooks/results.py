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
# Everything here is read from run records; nothing is trained. Build the records with
# `make reproduce-table-N SCALE=smoke|full` (README: "Reproducing the paper's tables"). Smoke-scale numbers test
# the pipeline only. The records and tables folders default to `results/records` and `results/tables`; set
# `SHAPESHIFTER_RECORDS` / `SHAPESHIFTER_TABLES` to read others (CI runs this notebook on fresh smoke records with
# `pipelines/run_notebook.py`). Runs as a plain script too: `.venv/bin/python notebooks/results.py`.

# %%
import os
from pathlib import Path

from shapeshifter.experiment.records import load_records
from shapeshifter.reports.glue import glue_rows
from shapeshifter.reports.paper import (
    PAPER_PARAM_REDUCTION,
    PAPER_PREDICT_OVERHEAD,
    PAPER_TRAIN_OVERHEAD,
    TRANSLATION_TABLES,
    table1_rows,
)
from shapeshifter.reports.registry import SCALES, TABLE_IDS, build_table, group_name, tables_dir
from shapeshifter.reports.translation import translation_rows

ROOT = Path.cwd() if (Path.cwd() / "conf").is_dir() else Path.cwd().parent
RECORDS = Path(os.environ.get("SHAPESHIFTER_RECORDS", ROOT / "results" / "records"))
TABLES = Path(os.environ.get("SHAPESHIFTER_TABLES", ROOT / "results" / "tables"))
print(f"records under {RECORDS}, tables to {TABLES}")
built = []

# %% [markdown]
# ## All tables (Markdown, as written to the tables folder)

# %%
for scale in SCALES:
    for table in TABLE_IDS:
        try:
            print(f"### scale: {scale}\n\n" + build_table(table, scale, RECORDS, TABLES))
            built.append(f"{scale}/{table}")
        except FileNotFoundError:
            print(f"{scale}/{table}: no finished records yet\n")
print("built:", ", ".join(built) or "nothing")

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
# ## Size and quality: does each configuration reach the paper's ">10× fewer parameters"?
#
# The paper quotes >10× fewer total parameters with little BLEU loss; each row gives our reduction and the
# relative BLEU (or GLUE score) change against the dense model of the same table.

# %%
for scale in SCALES:
    for table in TRANSLATION_TABLES:
        recs = [r for r in load_records(RECORDS / group_name(table, scale)) if r.get("kind") == "translation"]
        for row in translation_rows(recs) if recs else []:
            drop = "–" if row["bleu_drop_pct"] is None else f"{-row['bleu_drop_pct']:+.1f}%"
            verdict = ">10×" if row["reduction"] > 10 else "≤10×"
            print(f"{scale:>5} {table:>15} {row['config']:>26}: {row['reduction']:6.1f}× fewer ({verdict}), "
                  f"BLEU {row['bleu']:.2f} ({drop} vs dense)")
    recs = [r for r in load_records(RECORDS / group_name("glue_table", scale)) if r.get("kind") == "glue"]
    for row in glue_rows(recs) if recs else []:
        print(f"{scale:>5} {'glue_table':>15} {row['task']}/{row['setting']}/{row['config']}: "
              f"{row['reduction']:.1f}× fewer, {row['metric']} {row['score']:.1f}")

# %% [markdown]
# ## Quality study: does Shapeshifter keep BLEU at ≥10× fewer parameters?
#
# Converged models at matched parameter budgets (`make reproduce-table-quality`), the investigation of why the
# quality drops (`experiment=quality/why`, one change at a time, chosen on the validation split), and how well
# each structure can fit the embeddings and the other matrices of the trained dense model, next to Gaussian
# matrices of the same shape and std (`pipelines/analyze_embeddings.py`, `pipelines/analyze_weights.py`).
# Distilled rows (`-distilled-<recipe>`, `experiment=quality/grid_distill*`) learned from the dense run of their own
# seed; the verdict answers for them apart, and the last line says how far distillation moved each configuration.

# %%
from shapeshifter.analysis.embedding_fit import fit_markdown  # noqa: E402
from shapeshifter.analysis.weight_fit import weight_fit_markdown  # noqa: E402
from shapeshifter.reports.quality import VERDICT_BUDGETS, distillation_moves, quality_rows, verdict  # noqa: E402

quality = [r for r in load_records(RECORDS / "quality") if r.get("kind") == "translation"]
if quality:
    rows = quality_rows(quality)
    for budget in VERDICT_BUDGETS:
        print(verdict(rows, budget))
    print(distillation_moves(rows).strip() or "no distilled row has a plain twin yet")
else:
    print("quality: no finished records yet")
fit_tables = {"embedding_fit": fit_markdown, "weight_fit": weight_fit_markdown}
for fit in (r for r in load_records(RECORDS / "quality_why") if r.get("kind") in fit_tables):
    print(f"{fit['kind']} of {fit['checkpoint']}\n" + fit_tables[fit["kind"]](fit))

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
