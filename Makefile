# Quick start on a fresh machine (CPU): `make experiment` then `make test`.
# Each target creates .venv and installs seqlab first if needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SEQLAB_DATA_DIR ?= $(abspath ../shared/data)
export SEQLAB_DATA_DIR
# one thread per process: two threads beside a busy process made 2-core runs 7-70x slower
RUN_ENV := OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false

.PHONY: install test experiment demo

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch pinned to the CPU build on disk; pyproject keeps a range
	$(PY) -m pip install --quiet torch==2.13.0 -e ".[dev]"
	touch $@

install: $(VENV)/.installed

test: install
	$(RUN_ENV) $(PY) -m pytest -q

experiment: install
	$(RUN_ENV) $(PY) scripts/transfer_gap.py --config configs/experiments/tiny.yaml --output_dir runs/transfer_gap_tiny
