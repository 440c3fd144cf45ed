"""A real streaming standby of the test cluster: `pg_basebackup -R` into a temporary directory, then a `postgres`
process on a free port replaying the primary's WAL (hot standby, read-only).

Used by the read-replica tests (tests/reports/test_replica.py) and by the soak test (bench/soak.py). The base backup
copies the whole cluster (every database on it), so its time grows with what else the cluster holds; the tests print
how long it took. Runs as the `postgres` OS user when started as root (PostgreSQL refuses to run as root).
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

# Settings a hot standby must have at least as high as its primary's, or it refuses to start.
_AT_LEAST_PRIMARY = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


def binaries() -> Path | None:
    """The directory holding pg_basebackup and postgres of the server's major version, or None."""
    found = shutil.which("pg_config")
    candidates = []
    if found:
        bindir = subprocess.run([found, "--bindir"], capture_output=True, text=True).stdout.strip()
        candidates.append(Path(bindir))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        if (directory / "postgres").exists() and (directory / "pg_basebackup").exists():
            return directory
    return None


SLOT_PREFIX = "leadcrm_standby_"


def _drop_abandoned_slots(conn) -> None:
    """Slots of standbys whose process died without stop() (the test run was killed) hold WAL on the primary for
    ever: drop the inactive ones whose creating process is gone."""
    rows = conn.execute(
        "SELECT slot_name FROM pg_replication_slots WHERE NOT active AND slot_name LIKE %s", [SLOT_PREFIX + "%"]
    ).fetchall()
    for (name,) in rows:
        pid = name[len(SLOT_PREFIX) :].split("_")[0]
        try:
            os.kill(int(pid), 0)
            continue  # its process still runs (a standby starting in another test run)
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        conn.execute("SELECT pg_drop_replication_slot(%s)", [name])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Standby:
    """A hot standby of the PostgreSQL server at host:port (logged in as `user`, who may replicate)."""

    def __init__(self, *, host="127.0.0.1", port=5432, user="postgres", bindir: Path | None = None):
        self.primary = {"host": host, "port": int(port), "user": user}
        self.bindir = bindir or binaries()
        self.port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="leadcrm-standby-"))
        self.data = self.directory / "data"
        self.process = None
        self.backup_seconds = None
        self._as_postgres = os.geteuid() == 0
        self.slot = f"{SLOT_PREFIX}{os.getpid()}_{self.port}"

    def _run_as(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if self._as_postgres else command

    def start(self, timeout: float = 60) -> "Standby":
        """Take the base backup and start the standby; on any failure nothing is left behind (slot, files)."""
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> "Standby":
        if self._as_postgres:
            shutil.chown(self.directory, "postgres")
        os.chmod(self.directory, 0o700)
        with psycopg.connect(**self.primary, dbname="postgres", autocommit=True) as conn:
            limits = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in _AT_LEAST_PRIMARY}
            _drop_abandoned_slots(conn)
        started = time.monotonic()
        # A replication slot keeps the WAL the standby has yet to receive (on a busy primary it would otherwise be
        # recycled between the backup and the standby's start); stop() drops it. A backup can fail on a cluster
        # whose other databases are created and dropped meanwhile (a file vanishes under it): it is tried again.
        command = [str(self.bindir / "pg_basebackup"), "-h", self.primary["host"], "-p", str(self.primary["port"]),
                   "-U", self.primary["user"], "-D", str(self.data), "-R", "-X", "stream", "-c", "fast", "-w",
                   "-C", "-S", self.slot]  # fmt: skip
        for attempt in range(3):
            done = subprocess.run(self._run_as(command), capture_output=True, text=True)
            if done.returncode == 0:
                break
            self._drop_slot()
            shutil.rmtree(self.data, ignore_errors=True)
            if attempt == 2:
                raise RuntimeError(f"pg_basebackup failed three times; last: {done.stderr.strip()[-2000:]}")
        self.backup_seconds = time.monotonic() - started
        # A Debian cluster keeps its configuration outside the data directory: the copy gets one of its own.
        settings = {
            "port": self.port,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.data}'",
            "hot_standby": "on",
            "hot_standby_feedback": "on",
            "wal_receiver_status_interval": "1s",
            "logging_collector": "off",
            "fsync": "off",
            "shared_buffers": "32MB",
            **{name: value for name, value in limits.items()},
        }
        (self.data / "postgresql.conf").write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        (self.data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        for path in (self.data / "postgresql.conf", self.data / "pg_hba.conf"):
            if self._as_postgres:
                shutil.chown(path, "postgres")
        log = open(self.directory / "standby.log", "wb")  # noqa: SIM115 - kept open for the server's lifetime
        self.process = subprocess.Popen(
            self._run_as([str(self.bindir / "postgres"), "-D", str(self.data)]),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.connect() as conn:
                    if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                        return self
            except psycopg.OperationalError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the standby did not start: {(self.directory / 'standby.log').read_text()[-2000:]}")
            time.sleep(0.1)

    def connect(self, dbname="postgres"):
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.primary["user"],
            dbname=dbname,
            autocommit=True,
            connect_timeout=2,
        )

    def caught_up(self) -> bool:
        """Whether the standby has replayed everything the primary has written so far."""
        with psycopg.connect(**self.primary, dbname="postgres", autocommit=True) as conn:
            written = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        with self.connect() as conn:
            return conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [written]).fetchone()[0]

    def received(self) -> bool:
        """Whether the standby has received (not necessarily replayed) everything the primary has written so far."""
        with psycopg.connect(**self.primary, dbname="postgres", autocommit=True) as conn:
            written = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        with self.connect() as conn:
            return conn.execute("SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", [written]).fetchone()[0]

    def wait(self, check, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby did not get there within {timeout} s")
            time.sleep(0.05)

    def pause_replay(self) -> None:
        with self.connect() as conn:
            conn.execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        with self.connect() as conn:
            conn.execute("SELECT pg_wal_replay_resume()")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGQUIT)  # immediate shutdown: the copy is thrown away
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._drop_slot()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _drop_slot(self) -> None:
        try:
            with psycopg.connect(**self.primary, dbname="postgres", autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND NOT active",
                    [self.slot],
                )
        except psycopg.Error:
            pass
