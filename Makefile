# Storefront ML: one entry point for people and CI. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
CONSTRAINTS := requirements/constraints.txt
START ?= 2026-01-01
END ?= 2026-04-30
.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	touch $@

install: $(VENV)/.installed ## Create .venv with the pinned dependencies (idempotent)

test: install ## Run every test (unit, data, model, dags, integration); service tests skip without the services
	$(PY) -m pytest

lint: install ## Lint with ruff
	$(VENV)/bin/ruff check .

docs: install ## Regenerate docs/data_dictionary.md from the contract
	$(VENV)/bin/storefront data-dictionary

simulate: install ## Only simulate the shop into var/lake/raw (START, END, SCALE=demo)
	$(VENV)/bin/storefront simulate --scale $(or $(SCALE),demo) --start $(START) --end $(END) --overwrite

demo: install ## The main job: simulate the demo shop, a week of nightly runs through Airflow, a summary
	$(VENV)/bin/storefront main-job --start $(START) --end $(END) --nights $(or $(NIGHTS),7)

serve: install ## Serve the champions over HTTP on 127.0.0.1:8000 (docs/serving.md; PORT=, HOST=)
	$(VENV)/bin/storefront serve $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

bench: install ## Simulator throughput and peak memory at demo and large scale
	$(PY) benchmarks/simulator_throughput.py

lock: ## Re-resolve requirements/stack.in into requirements/constraints.txt (about 2 minutes)
	rm -rf /tmp/storefront-lock && $(PYTHON) -m venv /tmp/storefront-lock
	/tmp/storefront-lock/bin/pip install --quiet --upgrade pip
	/tmp/storefront-lock/bin/pip install --quiet -r requirements/stack.in
	{ head -n 3 $(CONSTRAINTS); /tmp/storefront-lock/bin/pip freeze --exclude-editable \
	  | grep -vE '^(pip|setuptools|wheel)==' | sed -E 's/^torch==([0-9.]+)\+cpu/torch==\1/'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

clean: ## Remove the venv, caches and var/
	rm -rf $(VENV) var .pytest_cache .ruff_cache

.PHONY: help install test lint docs simulate demo serve bench lock clean
