# Every target installs what it needs (into .venv) before it runs.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/pip install -c constraints.txt
STAMP   := $(VENV)/.setup-stamp
SCALE   ?= full

.PHONY: setup test lint format bench-layers params demo demo-glue clean

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(PIP) -q torch==2.13.0
	$(PIP) -q -e '.[pipeline,dev]'
	# fairseq: community build for Python 3.11; --no-deps keeps torchaudio (unused, does not load) out.
	$(PIP) -q --no-deps ve-fairseq==0.12.3
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests pipelines

format: $(STAMP)
	$(BIN)/ruff format src tests pipelines

bench-layers: $(STAMP)
	$(BIN)/python pipelines/bench_layers.py --out results/bench/layers.json

# The embedded default: dense + two Shapeshifter Transformers on the bundled De->En sample, then the table.
demo: $(STAMP)
	@start=$$(date +%s); \
	$(BIN)/python pipelines/train.py -m experiment=demo shapeshift=dense,r8_emb64,paper && \
	$(BIN)/python pipelines/tables.py demo --records results/demo/records/demo --out results/demo && \
	echo "make demo: $$(( $$(date +%s) - start )) s wall"

demo-glue: $(STAMP)
	bash pipelines/demo_glue.sh

params: $(STAMP)
	$(BIN)/python -m shapeshifter.params --arch transformer_iwslt_de_en --src-vocab 8848 --tgt-vocab 6632 \
		--policy embedding.rank=16 attention.rank=1 ffn.rank=2

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The paper's tables (README: "Reproducing the paper's tables"). N = 1 | 2 | 2_wmt | embedding | ablation.
# Launches the runs a table still lacks (finished ones are skipped, failed ones retried), then rebuilds it.
.PHONY: tables bench-model
reproduce-table-%: $(STAMP)
	nice -n 10 $(BIN)/python pipelines/reproduce.py $* --scale $(SCALE)

# Every table and plot from existing records only (no training); byte-identical when rerun.
tables: $(STAMP)
	$(BIN)/python pipelines/reproduce.py tables

bench-model: $(STAMP)
	nice -n 10 $(BIN)/python pipelines/bench_model.py --scale $(SCALE)
