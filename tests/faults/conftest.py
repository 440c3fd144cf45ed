"""Fault fixtures: a broker of the test's own — a Redis server, or a virtual host of the machine's RabbitMQ — (stopped,
restarted at will), workers on it with an embedded beat and short sweep intervals, and polling with deadlines."""

import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager

import pytest
import redis

from leadcrm import brokers

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


class RabbitMQ:
    """The machine's RabbitMQ (CELERY_TEST_AMQP_URL, default guest on 127.0.0.1:5672) with a virtual host of this
    test run's own. stop()/start() stop and start the broker application itself (every connection drops; durable
    quorum queues keep their messages), as an operator's restart does."""

    def __init__(self, base_url: str, vhost: str):
        self.base_url = base_url.rstrip("/")
        self.vhost = vhost

    @property
    def url(self) -> str:
        return f"{self.base_url}/{self.vhost}"

    @staticmethod
    def ctl(*args) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)

    def reachable(self, url: str | None = None) -> bool:
        import kombu

        try:  # a generous timeout: on a loaded machine the AMQP handshake alone can take a second
            with kombu.Connection(url or self.url, connect_timeout=5) as connection:
                connection.ensure_connection(max_retries=1, interval_start=0, timeout=10)
            return True
        except Exception:  # noqa: BLE001 - any failure to connect means "not up"
            return False

    def running(self) -> bool:
        """Whether the broker itself is up (its default virtual host answers; ours may be deleted already)."""
        return self.reachable(f"{self.base_url}/")

    def stop(self) -> None:
        self.ctl("stop_app")

    def start(self) -> None:
        self.ctl("start_app")
        self.ctl("await_startup")
        wait_for(self.reachable, timeout=60, message="RabbitMQ accepting connections")
        drop_broker_connections()  # this process's pooled connections were closed by the stop


@pytest.fixture(scope="session")
def rabbitmq():
    """A virtual host of this run's own on the machine's RabbitMQ; skipped without one, except in CI."""
    base = os.environ.get("CELERY_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    if not shutil.which("rabbitmqctl"):
        _missing_broker("no rabbitmqctl on PATH")
    vhost = f"leadcrm-test-{os.getpid()}"
    try:
        RabbitMQ.ctl("add_vhost", vhost)
        RabbitMQ.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    except subprocess.SubprocessError as error:
        _missing_broker(f"RabbitMQ is not running or not ours to configure: {error}")
    broker = RabbitMQ(base.split("://", 1)[0] + "://" + base.split("://", 1)[1].split("/", 1)[0], vhost)
    try:
        yield broker
    finally:
        if not broker.running():
            broker.start()  # a failed test left it stopped
        try:
            RabbitMQ.ctl("delete_vhost", vhost)
        except subprocess.CalledProcessError:  # already gone with a restart: nothing is left to tidy
            pass


def _missing_broker(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the RabbitMQ fault tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def drop_broker_connections() -> None:
    """Close every pooled broker connection of this process and forget the pools. kombu keeps its connection and
    producer pools in a registry of its own keyed by the broker's address, so a pool outlives the app's reference to
    it: without this, the next test on the same RabbitMQ virtual host would take back connections the broker closed
    when an earlier test restarted it, and its first purge or ping would fail with "connection reset by peer"."""
    from kombu import pools

    pools.reset()


@contextmanager
def celery_broker(url: str):
    """This process's Celery app (what web requests enqueue with, and pings) talks to `url` meanwhile."""
    from leadcrm.celery import app

    def reset():
        drop_broker_connections()
        app._pool = None
        app.amqp._producer_pool = None

    previous = app.conf.broker_url, app.conf.broker_transport_options
    app.conf.broker_url = url
    app.conf.broker_transport_options = brokers.transport_options(
        url, visibility_timeout=int(FAST_RECOVERY["CELERY_VISIBILITY_TIMEOUT"]))
    reset()
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_transport_options = previous
        reset()


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request, tmp_path):
    """The broker of a fault test, each test run on both: a Redis server of the test's own, or a virtual host of
    the machine's RabbitMQ. Either has `url`, `stop()` and `start()`; this process's Celery app uses it meanwhile."""
    if request.param == "redis":
        if not shutil.which("redis-server"):
            pytest.skip("no redis-server binary on PATH")
        server = RedisServer(tmp_path)
        server.start()
    else:
        server = request.getfixturevalue("rabbitmq")
    try:
        with celery_broker(server.url):
            yield server
    finally:
        if request.param == "redis":
            server.kill()
        elif not server.running():
            server.start()  # a failed test left it stopped: the next test needs it


@pytest.fixture
def fault_worker(transactional_db, broker, start_worker):
    """fault_worker() -> name: a worker with an embedded beat on the test's broker, recovering fast."""

    def start(**env):
        # Only the test's first worker empties the queues (of earlier tests' tasks). One started after a kill must
        # not: on RabbitMQ the killed worker's task is back in its queue at once, not after a visibility timeout.
        return start_worker(env={"CELERY_BROKER_URL": broker.url, **FAST_RECOVERY, **env}, beat=True,
                            purge=not start_worker.processes)

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
