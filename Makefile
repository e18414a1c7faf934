# advtut: `make book` (the main job), `make test` (ruff, then pytest), `make lab`.
# See README.md and CONTRIBUTING.md.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# quick | full; empty: full when CUDA is available, quick otherwise
PROFILE ?=
SEED ?= 0
export PYTHONHASHSEED := 0

.PHONY: book test lab execute clean venv gpu-check

venv: $(VENV)/.installed

# Pinned for this project's machines (constraints.txt); the package itself takes ranges.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

book: venv
	$(PY) -m advtut.book build $(if $(PROFILE),--profile $(PROFILE)) --seed $(SEED) $(if $(REUSE),--reuse)

execute: venv
	$(PY) -m advtut.book execute $(if $(PROFILE),--profile $(PROFILE)) --seed $(SEED) $(CHAPTERS)

test: venv
	$(VENV)/bin/ruff check advtut tests scripts benchmarks
	$(PY) -m pytest -q $(PYTEST_ARGS)

# On a machine with CUDA: the CUDA-only tests and every chapter's quick profile on the GPU as
# plain scripts (no Jupyter), under 8 minutes; `GPU_CHECK_ARGS=--dry-run` lists what it would run.
gpu-check:
	$(if $(wildcard $(PY)),$(PY),python3) scripts/gpu_check.py $(GPU_CHECK_ARGS)

lab: venv
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf _build
