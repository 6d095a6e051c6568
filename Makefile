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

.PHONY: setup run test bench lint

setup: $(STAMP)

$(STAMP): requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $(STAMP)

run: setup
	KLYNTOS_SANDBOX=$${KLYNTOS_SANDBOX:-1} $(PY) manage.py run_local

test: setup
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	DATA_DATABASE_URL=$${DATA_DATABASE_URL:-$(TEST_DATA_DATABASE_URL)} \
	REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	$(PY) -m pytest --create-db -p no:cacheprovider $(PYTEST_ARGS)

bench: setup
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	DATA_DATABASE_URL=$${DATA_DATABASE_URL:-$(TEST_DATA_DATABASE_URL)} \
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check .
