# Quick start (fresh machine, Python >= 3.11):  make demo   |   make test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck bench proto clean

# pip's output goes to $(VENV)/pip.log and is shown only when an install fails.
PIP := $(BIN)/python -m pip install --disable-pip-version-check --no-input
QUIET = > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "homolr needs Python >= 3.11, found " + sys.version.split()[0])'
	@echo "setting up $(VENV) (first run only; pip's log: $(VENV)/pip.log)"
	@$(PYTHON) -m venv $(VENV)
	@$(PIP) --upgrade pip $(QUIET)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	@$(PIP) -e . $(QUIET)
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	@$(PIP) -e '.[dev]' $(QUIET)
	@touch $@

demo: $(VENV)/.installed
	$(BIN)/homolr demo

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy

# Every benchmark, ~10 minutes on 2 cores; take figures only on a quiet machine (see uptime).
bench: $(VENV)/.dev-installed
	$(BIN)/python benchmarks/bench_crypto.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_aggregate.py
	$(BIN)/python benchmarks/bench_parity.py

proto: $(VENV)/.dev-installed
	$(BIN)/python scripts/gen_proto.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
