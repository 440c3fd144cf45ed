"""Fault fixtures: a Redis server of the test's own (stopped, restarted, killed at will), workers on it with an
embedded beat and short sweep intervals, and polling with deadlines."""

import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager

import pytest
import redis

# Short enough to see every recovery path within seconds; the production defaults are in settings.py.
FAST_RECOVERY = {
    "CELERY_VISIBILITY_TIMEOUT": "6",  # a killed worker's task returns to the queue after this
    "SWEEP_AFTER_SECONDS": "3",
    "SWEEP_TICK_SECONDS": "2",
    "OUTBOX_TICK_SECONDS": "1",
    "NURTURE_TICK_SECONDS": "2",
    "NURTURE_QUEUED_STALE_SECONDS": "3",
    "ROUTING_SLA_TICK_SECONDS": "3600",
}
# Rep notifications kept in memory: with no mail server their retries (countdowns longer than the short visibility
# timeout above) would come back again and again.
QUIET_MAIL = {"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check, *, timeout: float, interval: float = 0.2, message: str = ""):
    """Poll `check` until it returns something truthy; fail after `timeout` seconds with its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{message or 'condition'} not reached within {timeout} s (last: {value!r})", pytrace=False)
        time.sleep(interval)


class RedisServer:
    """A redis-server process on a free port with an append-only file, as a production broker should run."""

    def __init__(self, directory):
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.directory = directory
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no",
             "--logfile", str(self.directory / "redis.log")],
            start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert self.process.poll() is None, "redis-server exited while starting"
                assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
                time.sleep(0.05)

    def stop(self) -> None:
        """A clean stop (SIGTERM), as a restart by an operator or a supervisor does."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@contextmanager
def celery_broker(url: str):
    """This process's Celery app (what web requests enqueue with, and pings) talks to `url` meanwhile."""
    from leadcrm.celery import app

    def reset():
        app._pool = None
        app.amqp._producer_pool = None

    previous = app.conf.broker_url
    app.conf.broker_url = url
    reset()
    try:
        yield
    finally:
        app.conf.broker_url = previous
        reset()


@pytest.fixture
def redis_server(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("no redis-server binary on PATH")
    server = RedisServer(tmp_path)
    server.start()
    try:
        with celery_broker(server.url):
            yield server
    finally:
        server.kill()


@pytest.fixture
def fault_worker(transactional_db, redis_server, start_worker):
    """fault_worker() -> name: a worker with an embedded beat on the test's own Redis, recovering fast."""

    def start(**env):
        return start_worker(env={"CELERY_BROKER_URL": redis_server.url, **FAST_RECOVERY, **env}, beat=True)

    start.processes = start_worker.processes
    return start


def kill_worker(start_worker, name) -> None:
    """SIGKILL the worker and every process it started (its pool, its beat): nothing is acknowledged or cleaned up."""
    process = start_worker.processes[name]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture
def qualifying_org(transactional_db):
    """An org whose leads titled "… Director …" become MQLs at once and go round robin to two reps."""
    from leadcrm import services as tenancy
    from leadcrm.models import Role
    from routing import services as routing
    from routing.models import RepProfile
    from scoring import services as scoring
    from scoring.models import RuleKind, ScoringRule

    organization = tenancy.create_organization(slug="faults", name="Faults", owner_email="owner@faults.test",
                                               owner_password=None)
    condition = scoring.clean_rule(kind=RuleKind.FIT, condition={"field": "job_title", "op": "contains",
                                                                 "value": ["director"]}, points=50)
    # Straight into the table: through the service it would queue a re-score of the empty org.
    ScoringRule.objects.create(organization=organization, name="Director", kind=RuleKind.FIT, points=50,
                               condition=condition)
    users = [tenancy.add_member(organization=organization, email=f"rep{n}@faults.test", password=None,
                                role=Role.REP).user for n in range(2)]
    profiles = list(RepProfile.objects.for_org(organization).filter(user__in=users))
    for profile in profiles:
        routing.update_rep(profile=profile, data={"capacity": 100_000})
    team = routing.save_team(organization_id=organization.pk, data={"name": "Inbound", "members": profiles})
    routing.save_rule(organization_id=organization.pk, data={"name": "All", "strategy": "round_robin", "team": team,
                                                             "sla_minutes": None})
    _, key = tenancy.create_api_key(organization=organization, name="faults")
    organization.api_key = key
    return organization


@contextmanager
def row_locked(table: str, pk):
    """Hold a row lock from another connection: a task that needs the row waits, mid-task, until the block ends."""
    import psycopg
    from django.db import connection

    settings = connection.settings_dict
    with psycopg.connect(host=settings["HOST"] or "127.0.0.1", port=settings["PORT"] or 5432,
                         user=settings["USER"], dbname=settings["NAME"], autocommit=False) as conn:
        conn.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE", [pk])
        try:
            yield conn
        finally:
            conn.rollback()


def waiting_on_lock() -> int:
    """Backends of the test database waiting for a row lock right now."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0]
