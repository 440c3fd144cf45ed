PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install run test lint bench-capture bench-import clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,local]"
	touch $@

install: $(VENV)/.installed

## Run web + Celery worker + beat (embedded PostgreSQL/Redis when DATABASE_URL/REDIS_URL are unset).
run: install
	$(PY) -m leadcrm.devstack run

## Run the whole test suite (same embedded fallback).
test: install
	$(PY) -m leadcrm.devstack test $(ARGS)

lint: install
	$(VENV)/bin/ruff check .

bench-capture: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/capture.py

bench-import: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/import_csv.py

clean:
	rm -rf $(VENV) .data
