"""The short soak (bench/soak.py, 2 minutes) as part of the test run: gunicorn, two Celery workers and a beat on
RabbitMQ (quorum queues, publisher confirms) with a streaming read replica, every process going through PgBouncer in
transaction pooling to the primary and the replica, captures and form submissions at a
steady rate, a worker SIGKILLed twice and the broker restarted once. It passes only when the soak says every
accepted capture was stored, scored and routed once and no rep was emailed twice about one lead (its exit status
and its summary), and the faults it was asked for did happen.

It runs on a database of its own (created here, dropped afterwards), so its org and its migrations touch neither the
test database nor the developer's. Marked serial (tests/conftest.py): it loads every core of the machine.
Skipped on a developer machine without RabbitMQ, PgBouncer or the PostgreSQL server binaries; in CI (CI=true) any
missing fails. SOAK_BROKER=redis runs it on a redis-server of its own instead."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests import pgbouncer
from tests.standby import binaries

ROOT = Path(__file__).resolve().parent.parent
MINUTES = 2
KILL_EVERY = 40  # seconds: two kills in two minutes (at 40 s and 80 s), the broker restart between them (65 s)
BROKER = os.environ.get("SOAK_BROKER", "rabbitmq")


def _missing(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the soak cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _rabbitmq_up() -> str:
    if not shutil.which("rabbitmqctl"):
        return "no rabbitmqctl on PATH"
    try:
        subprocess.run(["rabbitmqctl", "-q", "await_startup", "--timeout", "10"], check=True, capture_output=True,
                       timeout=60)
    except (subprocess.SubprocessError, OSError) as error:
        return f"RabbitMQ is not running: {error}"
    return ""


@pytest.fixture
def soak_database():
    """A database of the soak's own on the test server, as a URL for DATABASE_URL; dropped afterwards."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    owner = os.environ.get("DATABASE_OWNER_URL") or os.environ.get("DATABASE_URL")
    base = db["NAME"]  # the test database's name once another test set it up (pytest-django renames it)
    name = f"{base}_soak" if base.startswith("test_") else f"test_{base}_soak"
    if owner:
        url = urlunsplit(urlsplit(owner)._replace(path=f"/{name}"))
    else:
        url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"
    admin = dict(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], password=db["PASSWORD"],
                 dbname="postgres", autocommit=True)
    with psycopg.connect(**admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def summary(output: str) -> dict:
    """The soak's figures, read from the summary it prints."""

    def number(pattern):
        found = re.search(pattern, output, re.MULTILINE)
        return int(found.group(1)) if found else None

    return {
        "kills": number(r"workers SIGKILLed (\d+) times"),
        "pooled_primary": number(r"^PgBouncer .*primary (\d+) transactions"),
        "pooled_replica": number(r"^PgBouncer .*replica (\d+) transactions"),
        "restarts": number(r"broker restarted (\d+) time"),
        "accepted": number(r"^captures accepted \(2xx\)\s+(\d+)"),
        "stored": number(r"^stored\s+(\d+)"),
        "scored": number(r"^scored \(MQL\)\s+(\d+)"),
        "routed": number(r"^routed \(owner\)\s+(\d+)"),
        "routed_twice": number(r"routed more than once: (\d+)"),
        "emailed_twice": number(r"emailed more than once: (\d+)"),
        "verdict": bool(re.search(r"^nothing lost, nothing twice: yes$", output, re.MULTILINE)),
    }


def test_short_soak_loses_nothing_and_does_nothing_twice(soak_database, capsys):
    if binaries() is None:
        _missing("no pg_basebackup/postgres binaries of the server (the soak's read replica)")
    if not pgbouncer.binary():
        _missing("no pgbouncer binary (apt-get install pgbouncer; CI installs it: .ci/run)")
    if BROKER == "rabbitmq" and (reason := _rabbitmq_up()):
        _missing(reason)
    env = {**os.environ, "DATABASE_URL": soak_database}
    for name in ("DATABASE_OWNER_URL", "DATABASE_REPLICA_URL", "CELERY_BROKER_URL", "DATABASE_POOLED",
                 "DATABASE_DIRECT_URL"):
        env.pop(name, None)  # the soak's processes get its own database, broker and replica
    command = [sys.executable, "bench/soak.py", "--minutes", str(MINUTES), "--broker", BROKER,
               "--kill-every", str(KILL_EVERY)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=20 * 60)
    report = done.stdout[done.stdout.find("Soak —"):] if "Soak —" in done.stdout else done.stdout[-4000:]
    with capsys.disabled():  # the figures belong in the CI log even when the test passes
        print(f"\n{report.rstrip()}")
    figures = summary(done.stdout)
    assert done.returncode == 0, f"the soak failed (exit {done.returncode}):\n{report}\n{done.stderr[-6000:]}"
    assert figures["verdict"], report
    assert figures["pooled_primary"] and figures["pooled_replica"], f"not through PgBouncer: {figures}"
    assert figures["kills"] == 2 and figures["restarts"] == 1, f"the faults did not all happen: {figures}"
    assert figures["accepted"] and figures["accepted"] >= 100, f"too little load to prove anything: {figures}"
    assert figures["accepted"] == figures["stored"] == figures["scored"] == figures["routed"], figures
    assert figures["routed_twice"] == 0 and figures["emailed_twice"] == 0, figures
