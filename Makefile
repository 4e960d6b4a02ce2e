# Every target installs what it needs (into .venv) before it runs.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/pip install -c constraints.txt
STAMP   := $(VENV)/.setup-stamp
SCALE   ?= full

.PHONY: setup test lint format bench-layers params demo demo-glue tables clean

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

params: $(STAMP)
	$(BIN)/python -m shapeshifter.params --preset iwslt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
