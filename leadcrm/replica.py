"""Reads that may go to a streaming read replica (DATABASE_REPLICA_URL): reports, CSV exports, list counts and the
segment preview. One helper decides, `reading()`; everything else reads and writes the primary.

    with replica.reading():
        rows = selectors.funnel(...)          # ORM reads go where the block reads (the router below)
        with replica.connection().cursor() as cursor: ...   # and so do raw ones

The block reads from the replica only when all of these hold, else from the primary:

- a `replica` database is configured (settings.DATABASES, from DATABASE_REPLICA_URL);
- the request wrote nothing that it, or this browser within REPLICA_READ_YOUR_WRITES_SECONDS, must now see: a POST
  (any unsafe method) pins the rest of its request to the primary and leaves a short-lived cookie that pins the
  browser's next requests too (ReadYourWritesMiddleware);
- the replica answers and has replayed what it received within REPLICA_MAX_LAG_SECONDS. The lag is measured on the
  replica and reused for REPLICA_LAG_CHECK_SECONDS. A replica that has replayed all it received is not behind, however
  long ago the primary's last transaction was (an idle primary sends nothing).

Row-level security holds on the replica as on the primary: the block enters the primary connection's current
tenant scope (leadcrm/rls.py) on the replica's connection for its duration.
"""

import contextvars
import logging
import time
from contextlib import contextmanager

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from . import rls

logger = logging.getLogger(__name__)

ALIAS = "replica"
COOKIE = "leadcrm_wrote"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")

# The database the current reading() block reads from (None outside any block: Django's default).
_reading: contextvars.ContextVar = contextvars.ContextVar("leadcrm_replica_reading", default=None)
# True while a request may have written (an unsafe method), and while the browser's own recent write must be seen:
# every read goes to the primary.
_writing: contextvars.ContextVar = contextvars.ContextVar("leadcrm_replica_writing", default=False)
_recent_write: contextvars.ContextVar = contextvars.ContextVar("leadcrm_replica_recent_write", default=False)

# (monotonic time of the measurement, lag in seconds or None when the replica did not answer)
_measured: tuple[float, float | None] | None = None

# Seconds the replica is behind: 0 when it has replayed everything it received (idle primary), else the age of the
# last transaction it replayed; NULL (unknown: nothing replayed since it started) is treated as too far behind.
LAG_SQL = """
SELECT CASE
  WHEN NOT pg_is_in_recovery() THEN 0
  WHEN pg_last_wal_receive_lsn() IS NOT NULL AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
  ELSE COALESCE(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 'Infinity'::float8)
END::float8
"""


def configured() -> bool:
    return ALIAS in connections.settings


def lag() -> float | None:
    """The replica's lag in seconds (cached for REPLICA_LAG_CHECK_SECONDS); None when it cannot be asked."""
    global _measured
    now = time.monotonic()
    if _measured is not None and now - _measured[0] < settings.REPLICA_LAG_CHECK_SECONDS:
        return _measured[1]
    connection = connections[ALIAS]
    try:
        with connection.cursor() as cursor:
            cursor.execute(LAG_SQL)
            value = float(cursor.fetchone()[0])
    except DatabaseError as exc:
        logger.warning("read replica unavailable, reading from the primary: %s", exc)
        connection.close()
        value = None
    _measured = (now, value)
    return value


def forget_lag() -> None:
    """Measure the lag afresh on the next read (tests; a deployment that just failed over)."""
    global _measured
    _measured = None


def choose(*, writes_nothing: bool = False) -> str:
    """The alias a read block uses now: the replica when it may, else the primary."""
    if not configured() or _recent_write.get() or (_writing.get() and not writes_nothing):
        return DEFAULT_DB_ALIAS
    behind = lag()
    if behind is None or behind > settings.REPLICA_MAX_LAG_SECONDS:
        return DEFAULT_DB_ALIAS
    return ALIAS


@contextmanager
def reading(*, writes_nothing: bool = False):
    """Run the block's reads on the replica when it may serve them (see the module's docstring); yields the alias.
    `writes_nothing`: the request is a POST that only asks (the segment preview), so only the browser's earlier
    writes keep it on the primary."""
    alias = choose(writes_nothing=writes_nothing)
    token = _reading.set(alias)
    try:
        if alias == DEFAULT_DB_ALIAS:
            yield alias
        else:
            with rls.scope(rls.current(), using=alias):
                yield alias
    finally:
        _reading.reset(token)


def connection():
    """The connection the current reading() block reads from (the primary outside one): for raw SQL."""
    return connections[_reading.get() or DEFAULT_DB_ALIAS]


def streamed(rows):
    """Rows a streamed response reads after its view returned (CSV exports), read as reading() decides now, in the
    view: a request pinned to the primary stays there for its whole body."""
    state = (_writing.get(), _recent_write.get())

    def read():
        tokens = (_writing.set(state[0]), _recent_write.set(state[1]))
        try:
            with reading():
                yield from rows
        finally:
            _recent_write.reset(tokens[1])
            _writing.reset(tokens[0])

    return read()


@contextmanager
def pinned():
    """Every read of the block goes to the primary (the caller must see what it just wrote)."""
    token = _recent_write.set(True)
    try:
        yield
    finally:
        _recent_write.reset(token)


def _wrote_recently(request) -> bool:
    try:
        wrote_at = float(request.COOKIES.get(COOKIE, ""))
    except ValueError:
        return False
    return 0 <= time.time() - wrote_at < settings.REPLICA_READ_YOUR_WRITES_SECONDS


class ReadYourWritesMiddleware:
    """A request that writes (any unsafe method) reads the primary for the rest of it, and marks the browser with a
    cookie, so its next requests within REPLICA_READ_YOUR_WRITES_SECONDS (the redirect after a form, the list the
    user goes back to) read the primary too. Only the timing of the user's own reads depends on it: a forged cookie
    sends them to the primary, nothing else."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not configured():
            return self.get_response(request)
        writes = request.method not in SAFE_METHODS
        tokens = (_writing.set(writes), _recent_write.set(_wrote_recently(request)))
        try:
            response = self.get_response(request)
        finally:
            _recent_write.reset(tokens[1])
            _writing.reset(tokens[0])
        if writes and response.status_code < 400:
            response.set_cookie(
                COOKIE,
                f"{time.time():.3f}",
                max_age=settings.REPLICA_READ_YOUR_WRITES_SECONDS,
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        return response


class Router:
    """Reads inside reading() go where it chose; everything else (every write, every other read) to the primary.
    Only the primary is migrated: the replica replays it."""

    def db_for_read(self, model, **hints):
        return _reading.get()

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS
