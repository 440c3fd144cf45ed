PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install run test lint bench-capture bench-import bench-scoring bench-scoring-instant bench-segments bench-search bench-speed-to-lead bench-drip bench-reports bench-webhooks bench-claims bench-capture-restart bench-sync bench-routing-burst bench-tasks bench-predictive soak clean

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

## Bulk re-scoring of a 1,000,000-lead org (builds it first, a few minutes); ARGS="--leads 20000" runs small.
bench-scoring: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/scoring_bulk.py $(ARGS)

## p50/p95 from POST /api/v1/activities/ to the lead's new score being readable, one Celery worker.
bench-scoring-instant: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/scoring_instant.py $(ARGS)

## Count and first page of a 5-condition segment over a 1,000,000-lead org (builds it first); ARGS="--leads 20000".
bench-segments: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/segments.py $(ARGS)

bench-search: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/search.py $(ARGS)

## p50/p95 from POST /api/v1/leads/ to scored, routed and in the rep's queue at 20 captures/s, one Celery worker.
bench-speed-to-lead: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/speed_to_lead.py $(ARGS)

## Emails rendered and handed to a local SMTP sink per second by one worker process, 50,000 due steps.
bench-drip: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/drip.py $(ARGS)

## Every report over a 1,000,000-lead / 10,000,000-activity org beside count(*) of the same rows; ARGS="--leads 20000".
bench-reports: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/reports.py $(ARGS)

## Webhook deliveries per second by one worker process to a local receiver, beside plain sequential POSTs.
bench-webhooks: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/webhooks.py $(ARGS)

bench-claims: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/claims.py $(ARGS)

## Every lead of a 1,000,000-lead org through the change feed (page size 500) beside COPY of the same rows; ARGS="--leads 200000".
bench-sync: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/sync.py $(ARGS)

## 10,000 leads become MQLs at once: time until ONE worker has routed them all, beside one UPDATE + INSERT; ARGS="--runs 3".
bench-routing-burst: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/routing_burst.py $(ARGS)

## Captures over HTTP while Redis is stopped and restarted: accepted = stored = scored = routed.
bench-capture-restart: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/capture_redis_restart.py $(ARGS)

## Reminder pass over 10,000 due of 1,000,000 open tasks (1,000 reps) beside one UPDATE, and a rep's /today/; ARGS="--tasks 100000 --reps 100".
bench-tasks: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/tasks.py $(ARGS)

## Training a 1,000,000-lead org's conversion model (time, memory), writing every probability beside one
## UPDATE … FROM (VALUES …), holdout AUC beside scikit-learn's own models; ARGS="--leads 100000".
bench-predictive: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/predictive.py $(ARGS)

## Soak: gunicorn, 2 workers, beat, the broker and a read replica for 10 minutes at 20 captures/s, workers killed and
## the broker restarted: nothing lost, nothing twice; p95 speed to lead per minute. ARGS="--minutes 2 --broker rabbitmq"
soak: install
	$(PY) -m leadcrm.devstack exec $(PY) bench/soak.py $(ARGS)

clean:
	rm -rf $(VENV) .data
