"""A real PgBouncer (the distribution's binary) for the tests: transaction pooling in front of the test server.

start(pool_size=...) writes a configuration and a user list into a temporary directory, runs pgbouncer on a free
port as a child process and returns a handle; stop() ends it. Without the binary a test is skipped, but in CI
(CI=true) it fails: the tenancy tests must run through the pooler there."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

CANDIDATES = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")


def binary() -> str:
    found = shutil.which("pgbouncer")
    return found or next((path for path in CANDIDATES if os.access(path, os.X_OK)), "")


def require() -> str:
    found = binary()
    if not found:
        reason = "pgbouncer is not installed: apt-get install pgbouncer (CI installs it: .ci/run)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the pooler tests cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def _unprivileged_user(directory: Path) -> str:
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        for path in (directory, *directory.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)
        return name
    raise RuntimeError("no unprivileged user to run pgbouncer as")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgBouncer:
    def __init__(self, process: subprocess.Popen, port: int, directory: Path, admin: str):
        self.process, self.port, self.directory, self.admin = process, port, directory, admin
        self.host = "127.0.0.1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: immediate shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def transactions(self) -> dict[str, int]:
        """The transactions it has passed to the server, per database (SHOW STATS on its admin console, which
        speaks only the simple query protocol: hence the client-side cursor)."""
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(host=self.host, port=self.port, dbname="pgbouncer", user=self.admin, autocommit=True,
                             cursor_factory=psycopg.ClientCursor, row_factory=dict_row) as console:
            rows = console.execute("SHOW STATS").fetchall()
        return {row["database"]: int(row["total_xact_count"]) for row in rows}

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text() if path.exists() else ""


def start(*, server_host: str, server_port: int, users: list[str], pool_size: int = 20) -> PgBouncer:
    """PgBouncer in transaction pooling for every database of the server, `pool_size` server connections per
    database and user. The server trusts local logins; so does the pooler, for the listed users."""
    executable = require()
    directory = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    port = _free_port()
    (directory / "userlist.txt").write_text("".join(f'"{user}" ""\n' for user in users))
    (directory / "pgbouncer.ini").write_text(f"""\
[databases]
* = host={server_host} port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory / "userlist.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
server_reset_query =
admin_users = {users[0]}
logfile = {directory / "pgbouncer.log"}
pidfile = {directory / "pgbouncer.pid"}
""")
    command = [executable, "-q", str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root: it drops to another user, who owns its files
        command[1:1] = ["-u", _unprivileged_user(directory)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    bouncer = PgBouncer(process, port, directory, users[0])
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") + bouncer.log()
            bouncer.stop()
            raise RuntimeError(f"pgbouncer exited while starting: {error}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return bouncer
        except OSError:
            if time.monotonic() > deadline:
                bouncer.stop()
                raise RuntimeError("pgbouncer did not listen within 15 s") from None
            time.sleep(0.05)
