# The two set-up commands of the README: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
EMULATOR_PORT ?= 8765
# The settings' DEBUG is off unless asked for (a debug page shows cookies and settings).
# `make run` (local development, on 127.0.0.1) and the test and type-check runs ask for it;
# `DEBUG=0 SECRET_KEY=... make run` runs as production does.
export DEBUG ?= 1

# Tests run against real Postgres and Redis (see .ci/run for starting them).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/realtime
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

# The benchmark's own database (created, or dropped and created again, by bench/sideband.py
# --fresh-db) and Redis db; BENCH_WORKERS sideband worker processes (2 for a 2-core machine).
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/realtime_bench
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/14
BENCH_WORKERS ?= 2

.PHONY: run test lint typecheck pytest bench install

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '.[dev]'
	touch $@

install: $(VENV)/.installed

## make run: the whole app (web, worker, beat, emulator) on http://127.0.0.1:$(PORT)
run: install
	PORT=$(PORT) EMULATOR_PORT=$(EMULATOR_PORT) $(PY) -m config.devserver

## make test: lint, types and the whole test suite
test: install lint typecheck pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# bench/ holds scripts, not a package: checked apart, as bench/sideband.py would clash with sideband/.
typecheck: install
	$(PY) -m mypy . --exclude '^bench/'
	$(PY) -m mypy bench

pytest: install
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) bench/emulator.py
	DATABASE_URL=$(BENCH_DATABASE_URL) REDIS_URL=$(BENCH_REDIS_URL) \
	  $(PY) bench/sideband.py --calls 1000 --workers $(BENCH_WORKERS) --fresh-db
