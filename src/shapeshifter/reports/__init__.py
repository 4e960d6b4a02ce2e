"""Tables and plots built from run records only (never from live runs).

- `frame`: records -> DataFrame -> one row per configuration (mean, std over seeds) -> Markdown, LaTeX, CSV;
  the replica check and the stamp naming the records.
- `translation`, `glue`: the rows of translation and GLUE runs.
- `paper`: the paper's tables (Table 1, Table 2, embedding, ablation, GLUE); `quality`: the quality study's.
- `plots`: matplotlib helpers shared by them.
- `registry`: every table, what runs fill it and how it is built (``make reproduce-table-<id>``).
"""
