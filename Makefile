# `make demo` and `make test` work on a fresh machine with Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[demo]'
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.demo

demo: $(VENV)/.demo
	$(BIN)/modelcycle demo

lint: $(VENV)/.dev
	$(BIN)/ruff check --output-format concise src tests bench
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest

# The benchmark compares with MLflow, installed in its own environment (.venv-bench).
.venv-bench/.installed: pyproject.toml
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install -q --upgrade pip
	.venv-bench/bin/python -m pip install -q -e '.[bench]'
	touch $@

bench: .venv-bench/.installed
	.venv-bench/bin/python bench/tracking.py
	.venv-bench/bin/python bench/models.py
	.venv-bench/bin/python bench/pipelines.py
	.venv-bench/bin/python bench/monitoring.py
	.venv-bench/bin/python bench/agent_idle.py
	.venv-bench/bin/python bench/team.py

clean:
	rm -rf $(VENV) .venv-bench .pytest_cache .ruff_cache .modelcycle
