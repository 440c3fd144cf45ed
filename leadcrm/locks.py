"""Session-level PostgreSQL advisory locks: "someone is doing this now", freed by the server when the holder's
connection ends — so a worker killed mid-task frees its lock, and a sweeper can tell abandoned work from work
in progress."""

from contextlib import contextmanager

from django.db import connection

IMPORT = 7302  # namespaces (the first key): one running import per job
RECALCULATION = 7301  # one bulk re-scoring per org
TRAINING = 7304  # one worker per predictive training run


@contextmanager
def try_lock(namespace: int, key):
    """Yields True when this connection took the lock (held until the block ends), False when another holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [namespace, str(key)])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [namespace, str(key)])


def is_held(namespace: int, key) -> bool:
    """Whether some session holds the lock now (a moment later it may not)."""
    with try_lock(namespace, key) as acquired:
        return not acquired
