import os

import pytest
from rest_framework.test import APIClient

from leadcrm import services
from leadcrm.models import Role

# ----------------------------------------------------------------------------------------------- serial tests

# Tests that cannot share the machine with another test at once: browsers and live servers, fault tests that stop
# the broker or kill workers, and every test that starts a Celery worker (the workers of two tests would take each
# other's tasks from the one broker, and each start purges the queues). `make test` runs them one at a time, after
# the rest ran on every core (leadcrm/devstack.py).
SERIAL_PATHS = ("tests/e2e/", "tests/faults/", "tests/test_worker_e2e.py", "tests/webhooks/test_worker.py",
                "tests/test_soak.py")
WORKER_FIXTURES = {"start_worker", "worker"}


def pytest_collection_modifyitems(config, items):
    root = str(config.rootpath) + os.sep
    for item in items:
        path = str(item.path).removeprefix(root)
        if path.startswith(SERIAL_PATHS) or WORKER_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.serial)


# ----------------------------------------------------------------------------------------------- PgBouncer


def pytest_addoption(parser):
    parser.addoption("--through-pgbouncer", action="store_true", default=False,
                     help="run the tests (and the workers they start) through a real PgBouncer in transaction "
                          "pooling in front of the test database (tests/pgbouncer.py)")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, request):
    """With --through-pgbouncer the test database is `test_<name>_pooled`: `make test` runs that pass beside the
    serial pass (leadcrm/devstack.py), whose test database is `test_<name>`."""
    if not request.config.getoption("--through-pgbouncer"):
        return
    from django.conf import settings

    for db in settings.DATABASES.values():
        test = db.setdefault("TEST", {})
        if not test.get("MIRROR"):
            test["NAME"] = f"{test.get('NAME') or 'test_' + db['NAME']}_pooled"


def _pooler_users() -> list[str]:
    from django.conf import settings
    from django.db import connection

    return sorted({connection.settings_dict["USER"] or "postgres", settings.DATABASE_APP_ROLE})


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker, request):
    """With --through-pgbouncer: once the test database exists, every connection of this process and of the workers
    it starts goes through a PgBouncer in transaction pooling, configured as production runs behind one
    (DATABASE_POOLED); the relay's LISTEN and the locks go to the server itself (DATABASE_DIRECT_URL)."""
    if not request.config.getoption("--through-pgbouncer"):
        yield
        return
    from django.conf import settings
    from django.db import connections

    from tests import pgbouncer

    db = connections["default"].settings_dict
    server = (db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    bouncer = pgbouncer.start(server_host=server[0], server_port=server[1], users=_pooler_users())
    saved = {"HOST": db["HOST"], "PORT": db["PORT"], "OPTIONS": dict(db["OPTIONS"])}
    saved_settings = {name: getattr(settings, name) for name in ("DATABASE_POOLED", "DATABASE_DIRECT_URL")}
    saved_environ = {name: os.environ.get(name) for name in ("DATABASE_POOLED", "DATABASE_DIRECT_URL")}
    direct = _test_database_url()  # the app role's login straight to the server, for the workers
    settings.DATABASE_DIRECT_URL = _database_url(db["USER"], db["PASSWORD"], *server, db["NAME"])
    settings.DATABASE_POOLED = True
    os.environ.update(DATABASE_POOLED="1", DATABASE_DIRECT_URL=direct)
    connections.close_all()
    options = {key: value for key, value in db["OPTIONS"].items() if key != "options"}  # PgBouncer refuses it
    db.update(HOST=bouncer.host, PORT=str(bouncer.port), OPTIONS={**options, "prepare_threshold": None})
    try:
        yield
    finally:
        connections.close_all()
        db.update(saved)
        for name, value in saved_settings.items():
            setattr(settings, name, value)
        for name, value in saved_environ.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
        bouncer.stop()


@pytest.fixture
def pgbouncer():
    """pgbouncer(pool_size=1) -> a PgBouncer of this test's own in transaction pooling in front of the test server
    (skipped without the binary, failed in CI); stopped after the test."""
    from tests import pgbouncer as pooler

    started = []

    def start(pool_size=20):
        host, port = _server_address()
        started.append(pooler.start(server_host=host, server_port=port, users=_pooler_users(),
                                    pool_size=pool_size))
        return started[-1]

    pooler.require()
    try:
        yield start
    finally:
        for bouncer in started:
            bouncer.stop()


def _server_address() -> tuple[str, int]:
    """The PostgreSQL server itself, even while this run goes through a pooler."""
    import dj_database_url
    from django.conf import settings
    from django.db import connection

    if getattr(settings, "DATABASE_POOLED", False) and settings.DATABASE_DIRECT_URL:
        direct = dj_database_url.parse(settings.DATABASE_DIRECT_URL)
        return direct["HOST"] or "127.0.0.1", int(direct["PORT"] or 5432)
    return connection.settings_dict["HOST"] or "127.0.0.1", int(connection.settings_dict["PORT"] or 5432)

@pytest.fixture
def org(db):
    return services.create_organization(slug="acme", name="Acme", owner_email="owner@acme.test",
                                        owner_password="pw-acme-123")


@pytest.fixture
def other_org(db):
    return services.create_organization(slug="rival", name="Rival", owner_email="owner@rival.test",
                                        owner_password="pw-rival-123")


@pytest.fixture
def api_key(org):
    _, plain = services.create_api_key(organization=org, name="test")
    return plain


@pytest.fixture
def api(api_key):
    """An API client authenticated with an API key of `org`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    return client


@pytest.fixture
def other_api(other_org):
    _, plain = services.create_api_key(organization=other_org, name="other")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    return client


@pytest.fixture
def member(org):
    """Make a user of `org` with a role: member("rep") -> user."""

    def make(role=Role.MARKETER, email=None):
        membership = services.add_member(organization=org, email=email or f"{role}@acme.test",
                                         password="pw-member-123", role=role)
        return membership.user

    return make


@pytest.fixture
def browser(client, member):
    """A Django test client signed in as a marketer of `org`."""
    client.force_login(member(Role.MARKETER))
    return client


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """Every org fixture hashes an owner password; a cheap hasher keeps the many small tests fast."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _events_delivered_in_process(settings):
    """Without a worker there is no outbox relay: a test's events are handled in its own process after each commit.
    A test that starts a worker (start_worker) hands them to the worker's relay, as in production."""
    settings.OUTBOX_RELAY = False


@pytest.fixture(autouse=True)
def _isolated_cache(settings):
    """Each test gets its own cache namespace in the real Redis (rate limits, counters)."""
    import uuid

    settings.CACHES = {
        "default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"},
    }


@pytest.fixture
def smtp_server(settings, monkeypatch):
    """A real SMTP server on a free local port, for this process and for worker processes it starts;
    `smtp_server.messages` holds what it received (email.message.EmailMessage objects)."""
    import email
    import socket
    from email import policy

    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
            return "250 Message accepted"

    with socket.socket() as probe:  # a port nobody uses right now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    monkeypatch.setenv("EMAIL_HOST", "127.0.0.1")
    monkeypatch.setenv("EMAIL_PORT", str(port))
    try:
        yield inbox
    finally:
        controller.stop()


def _test_database_url() -> str:
    """The test database as web and worker processes log in to it: as the app role (leadcrm/rls.py), which migrate
    made a LOGIN role with DATABASE_APP_PASSWORD (none: local trust)."""
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    return _database_url(settings.DATABASE_APP_ROLE, settings.DATABASE_APP_PASSWORD, db["HOST"], db["PORT"], db["NAME"])


def _database_url(user, password, host, port, name) -> str:
    from urllib.parse import quote

    host = quote(host or "127.0.0.1", safe="")
    port = f":{port}" if port else ""
    password = f":{quote(password, safe='')}" if password else ""
    return f"postgres://{quote(user, safe='')}{password}@{host}{port}/{name}"


@pytest.fixture
def start_worker(settings):
    """start_worker(purge=True) -> name: a worker process on the test database, consuming every queue, with this
    process's environment as it is at the call (mail server, SITE_URL); stopped after the test. purge=False keeps
    tasks already queued by this test. `env` adds variables (a broker of its own: CELERY_BROKER_URL, which this
    process's Celery app must use too, to ping it); `beat=True` embeds the beat; `include` names extra task modules
    (test probes). `start_worker.processes[name]` is the process (its own process group, so a test can kill it and
    its children at once)."""
    import os
    import subprocess
    import sys
    import tempfile
    import time
    import uuid
    from pathlib import Path

    from leadcrm.celery import app as celery_app

    processes = {}

    def start(purge=True, include=(), *, env=None, beat=False):
        name = f"e2e-{uuid.uuid4().hex[:8]}@localhost"
        if purge:
            celery_app.control.purge()  # tasks left by earlier tests name rows their rolled-back transactions removed
        env = {**os.environ, "DATABASE_URL": _test_database_url(), "OUTBOX_RELAY": "1", **(env or {})}
        settings.OUTBOX_RELAY = True  # this process's events go to the worker's relay from now on
        for owner_only in ("DATABASE_OWNER_URL", "DATABASE_LOGIN"):  # a worker has the app role's login alone
            env.pop(owner_only, None)
        command = [sys.executable, "-m", "celery", "-A", "leadcrm", "worker", "--pool", "solo", "-l", "warning",
                   "--without-gossip", "--without-mingle",
                   "-n", name, "-Q", "capture,scoring,routing,nurturing,webhooks,imports,default"]
        if include:
            command += ["-I", ",".join(include)]
        if beat:
            command += ["-B", "-s", os.path.join(tempfile.mkdtemp(prefix="beat-"), "schedule")]
        process = subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent, env=env,
                                   start_new_session=True)
        processes[name] = process
        deadline = time.monotonic() + 60
        while not celery_app.control.ping(destination=[name], timeout=1.0):
            assert process.poll() is None, "the worker exited while starting"
            assert time.monotonic() < deadline, "the worker did not answer a ping within 60 s"
        return name

    start.processes = processes
    try:
        yield start
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()


@pytest.fixture
def worker(start_worker):
    """A worker process on the test database, consuming every queue; stopped after the test."""
    return start_worker()


# ----------------------------------------------------------------------------------------------- the browser

CHROMIUM = "/usr/bin/chromium"  # the distribution's package; Playwright only drives it (no browser download)


def _missing() -> str:
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM}: install the distribution's package (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed: pip install -e '.[dev]'"
    return ""


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the whole run (Playwright's sync API allows one per thread). Skipped without
    it on a developer machine; in CI (CI=true) a missing browser fails."""
    reason = _missing()
    if reason:
        _unavailable(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the tests' own ORM calls are still synchronous.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
