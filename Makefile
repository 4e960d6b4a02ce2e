# Every target installs what it needs (into .venv) before it runs.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/pip install -c constraints.txt
STAMP   := $(VENV)/.setup-stamp
SCALE   ?= full

.PHONY: setup test lint format bench-layers bench-peers device-check params demo demo-glue clean

$(STAMP): pyproject.toml constraints.txt Makefile
	# pip, not python: a venv whose creation was interrupted has python without pip; it is made again
	test -x $(BIN)/pip || $(PY) -m venv --clear $(VENV)
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
	$(BIN)/ruff check src tests pipelines notebooks

format: $(STAMP)
	$(BIN)/ruff format src tests pipelines

bench-layers: $(STAMP)
	$(BIN)/python pipelines/bench_layers.py --out results/bench/layers.json

# On a CUDA machine: bench_layers, Table 1 (fp32 + bf16, eager and compiled), bench_peers, step profiles (eager
# and compiled) and a 1-minute throughput check, failing loudly on CUDA errors; without CUDA it says so and exits 0.
device-check: $(STAMP)
	$(BIN)/python pipelines/device_check.py

# Kronecker o2/o3 vs low rank, PHM, tensorly-torch TT/CP/Tucker and dense at ~10x fewer parameters:
# results/bench/peers-<device>.json, .md, .png
bench-peers: $(STAMP)
	nice -n 10 $(BIN)/python pipelines/bench_peers.py --out results/bench

# The embedded default: dense + the ~10x Shapeshifter Transformer of the quality study on the bundled De->En
# sample, then the table.
demo: $(STAMP)
	@start=$$(date +%s); \
	$(BIN)/python pipelines/train.py -m experiment=demo shapeshift=dense,study/o2_r8_emb29,study/o2_r8_emb29_proj && \
	$(BIN)/python pipelines/tables.py demo --records results/demo/records/demo --out results/demo && \
	echo "make demo: $$(( $$(date +%s) - start )) s wall"

demo-glue: $(STAMP)
	bash pipelines/demo_glue.sh

params: $(STAMP)
	$(BIN)/python pipelines/params.py --arch transformer_iwslt_de_en --src-vocab 8848 --tgt-vocab 6632 \
		--policy embedding.rank=16 attention.rank=1 ffn.rank=2

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The paper's tables and the quality study (README). N = a table id or alias of the registry
# (src/shapeshifter/reports/registry.py; `python pipelines/reproduce.py list`): 1 | 1_bf16 | 2 | 2_wmt | embedding | ablation | glue | quality | quality_width | quality_why | quality_distill | quality_glue | quality_snli.
# Launches the runs a table still lacks (finished ones are skipped, failed ones retried), then rebuilds it.
.PHONY: tables bench-model
# The jobs go through Hydra's multirun (pipelines/train.py -m): one after another by default, launcher=local
# (two 1-thread jobs at a time) or launcher=slurm (a SLURM job each).
reproduce-table-%: $(STAMP)
	nice -n 10 $(BIN)/python pipelines/reproduce.py $* --scale $(SCALE) $(if $(launcher),launcher=$(launcher)) $(REPRO_ARGS)

# Every table and plot from existing records only (no training); byte-identical when rerun. The
# <!-- table: FILE --> blocks of the README and docs/ are copied from the rebuilt tables.
tables: $(STAMP)
	$(BIN)/python pipelines/reproduce.py tables $(foreach page,README.md $(wildcard docs/*.md),--page $(page))

# Every table of the registry at SCALE=smoke from scratch, into SMOKE_DIR (the committed results/ are not touched), then:
# rebuild them all from the records alone and require the same bytes, and execute the results notebook on them
# (its tables must match too). CI runs this after `make test`; a few minutes on 2 CPU cores.
SMOKE_DIR    ?= build/smoke
.PHONY: smoke
smoke: $(STAMP)
	rm -rf $(SMOKE_DIR)
	@start=$$(date +%s); set -e; tables=$$($(BIN)/python pipelines/reproduce.py list --scale smoke); \
	for t in $$tables; do \
		$(MAKE) --no-print-directory reproduce-table-$$t SCALE=smoke \
			REPRO_ARGS="--records $(SMOKE_DIR)/records --tables $(SMOKE_DIR)/tables --outputs $(SMOKE_DIR)/outputs"; \
	done; \
	$(BIN)/python pipelines/reproduce.py tables --records $(SMOKE_DIR)/records --tables $(SMOKE_DIR)/rebuilt; \
	diff -r $(SMOKE_DIR)/tables $(SMOKE_DIR)/rebuilt; \
	for t in $$tables; do test -f $(SMOKE_DIR)/tables/smoke/$$t.md || { echo "make smoke: no table $$t.md"; exit 1; }; done; \
	$(BIN)/python pipelines/run_notebook.py notebooks/results.py --out $(SMOKE_DIR)/results.ipynb \
		--env SHAPESHIFTER_RECORDS=$(abspath $(SMOKE_DIR))/records --env SHAPESHIFTER_TABLES=$(abspath $(SMOKE_DIR))/notebook; \
	diff -r $(SMOKE_DIR)/tables $(SMOKE_DIR)/notebook; \
	echo "make smoke: $$(echo $$tables | wc -w) tables, rebuilt byte-identical, notebook executed, $$(( $$(date +%s) - start )) s wall"

bench-model: $(STAMP)
	nice -n 10 $(BIN)/python pipelines/bench_model.py --scale $(SCALE)
