# Klyntos — the two commands users need: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp

# `make test` talks to the real PostgreSQL and Redis; override these to point elsewhere.
TEST_DATABASE_URL ?= postgres://root@127.0.0.1:5432/klyntos
TEST_DATA_DATABASE_URL ?= postgres://root@127.0.0.1:5432/klyntos_data
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: setup run cluster test bench lint frontend frontend-test

setup: $(STAMP) frontend

# The editor bundle is rebuilt when it is missing or older than any frontend source.
FRONTEND_SOURCES := $(shell find frontend/src -type f 2>/dev/null) frontend/package.json frontend/vite.config.ts frontend/tsconfig.json
BUNDLE := static/dist/assets/main.js

frontend: $(BUNDLE)

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(BUNDLE): frontend/node_modules/.package-lock.json $(FRONTEND_SOURCES)
	cd frontend && npm run build --silent

frontend-test: frontend/node_modules/.package-lock.json
	cd frontend && npm test --silent

$(STAMP): requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $(STAMP)

run: setup
	KLYNTOS_SANDBOX=$${KLYNTOS_SANDBOX:-1} $(PY) manage.py run_local

# The web process and two workers on PostgreSQL and Redis (DATABASE_URL, DATA_DATABASE_URL,
# REDIS_URL; the defaults are this machine's local servers). Ctrl-C stops all three.
CLUSTER_DB ?= postgres://root@127.0.0.1:5432/klyntos
cluster: setup
	@export DATABASE_URL=$${DATABASE_URL:-$(CLUSTER_DB)} DATA_DATABASE_URL=$${DATA_DATABASE_URL:-$(CLUSTER_DB)_data} \
	  REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} KLYNTOS_EXECUTOR=workers KLYNTOS_SANDBOX=$${KLYNTOS_SANDBOX:-1}; \
	$(PY) manage.py ensure_databases && \
	trap 'kill 0' INT TERM EXIT; \
	$(PY) manage.py run_local & sleep 3; \
	$(PY) manage.py worker --name worker-1 & $(PY) manage.py worker --name worker-2 & \
	wait

test: setup lint
	cd frontend && npm test --silent
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	DATA_DATABASE_URL=$${DATA_DATABASE_URL:-$(TEST_DATA_DATABASE_URL)} \
	REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	$(PY) -m pytest --create-db -p no:cacheprovider -m "not browser" $(PYTEST_ARGS)
	# Real Chromium against the app in a subprocess; a run of its own, because Playwright's
	# sync API leaves an event loop behind that breaks later asyncio tests.
	$(PY) -m pytest -p no:cacheprovider -m browser tests/e2e

bench: setup
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	DATA_DATABASE_URL=$${DATA_DATABASE_URL:-$(TEST_DATA_DATABASE_URL)} \
	REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	$(PY) -m bench

# The gate `make test` (and so CI) passes first: ruff (with the security and async rules),
# mypy (strict for engine/core and engine/blocks), and the editor's tsc + oxlint.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd frontend && npm run lint --silent
