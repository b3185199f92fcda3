# `make demo` and `make test` work on a fresh machine with Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint ui bench clean

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

# The web UI (ui/, npm): built into the package, where `modelcycle server` serves it; not committed.
UI_BUILT := src/modelcycle/server/ui/index.html
UI_SOURCES := $(wildcard ui/src/* ui/public/*) ui/index.html ui/vite.config.js ui/package.json ui/package-lock.json

ui/node_modules/.installed: ui/package.json ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(UI_BUILT): ui/node_modules/.installed $(UI_SOURCES)
	cd ui && npm run --silent build -- --logLevel warn

ui: $(UI_BUILT)

test: lint ui
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
	rm -rf $(VENV) .venv-bench .pytest_cache .ruff_cache .modelcycle ui/node_modules src/modelcycle/server/ui
