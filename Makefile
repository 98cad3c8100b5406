# Quick start on a fresh machine (CPU): `make experiment` then `make test`.
# Each target creates .venv and installs seqlab first if needed.
# CONSTRAINTS: a pip constraints file for the install. Unset: the newest versions pyproject.toml allows (or whatever
# $(VENV) already holds); `make experiment` installs the versions its committed results were made with
# (constraints/tested.txt); CI also runs `make test VENV=.venv-min CONSTRAINTS=constraints/minimum.txt`.
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?=
PY := $(VENV)/bin/python
SEQLAB_DATA_DIR ?= $(abspath ../shared/data)
export SEQLAB_DATA_DIR
# one thread per process: two threads beside a busy process made 2-core runs 7-70x slower
RUN_ENV := OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false

.PHONY: install test lint experiment demo

# $(VENV)/.installed holds the constraints file it was installed with. (Re)install when there is none, when
# pyproject.toml or that file changed since, or when CONSTRAINTS names another file.
install:
	@if [ ! -f $(VENV)/.installed ] || [ pyproject.toml -nt $(VENV)/.installed ] \
	   || { [ -n "$(CONSTRAINTS)" ] && { [ "$$(cat $(VENV)/.installed)" != "$(CONSTRAINTS)" ] \
	        || [ $(CONSTRAINTS) -nt $(VENV)/.installed ]; }; }; then \
	  set -e; \
	  [ -x $(PY) ] || $(PYTHON) -m venv $(VENV); \
	  $(PY) -m pip install --quiet --upgrade pip; \
	  echo "pip install torch==2.13.0 $(if $(CONSTRAINTS),-c $(CONSTRAINTS) )-e .[dev,demo]  ($(VENV))"; \
	  $(PY) -m pip install --quiet torch==2.13.0 $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[dev,demo]"; \
	  echo "$(CONSTRAINTS)" > $(VENV)/.installed; \
	fi
	@# torch is pinned to the CPU build on disk; pyproject keeps a range
	@$(PY) -c "import torch, transformers, tokenizers, datasets, accelerate; print('$(VENV):', *(f'{m.__name__} {m.__version__}' for m in (torch, transformers, tokenizers, datasets, accelerate)))"

test: install
	$(RUN_ENV) $(PY) -m pytest -q

# ruff's lint rules and formatter, configured in pyproject.toml (`ruff format .` applies the formatting)
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# the demo on the main job's output (make experiment first): http://127.0.0.1:7860
demo: install
	$(RUN_ENV) $(PY) scripts/demo.py --run_dir runs/transfer_gap_tiny --host 127.0.0.1 --port 7860

experiment: CONSTRAINTS = constraints/tested.txt
experiment: install
	$(RUN_ENV) $(PY) scripts/transfer_gap.py --config configs/experiments/tiny.yaml --output_dir runs/transfer_gap_tiny
