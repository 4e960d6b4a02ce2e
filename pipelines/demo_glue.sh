#!/usr/bin/env bash
# make demo-glue: dense vs Shapeshifter from-scratch encoders on the committed SNLI sample, then the table.
#   bash pipelines/demo_glue.sh            (about 10 minutes on 2 quiet CPU cores)
# Records go to results/demo_glue/records (a re-run resumes each run from its last checkpoint: it only evaluates
# again), tables to results/demo_glue.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
# One intra-op thread: these small models gain little from a second thread, and on a shared machine an
# oversubscribed OpenMP pool makes each step an order of magnitude slower. Override with OMP_NUM_THREADS=2.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export HF_DATASETS_OFFLINE="${HF_DATASETS_OFFLINE:-1}" HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"

"$PYTHON" pipelines/train.py -m experiment=glue/snli_demo shapeshift=dense,glue_r4_emb32,glue_r1_emb16 "$@"
"$PYTHON" pipelines/tables.py demo-glue --records results/demo_glue/records --out results/demo_glue
