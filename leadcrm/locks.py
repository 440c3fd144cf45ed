"""PostgreSQL advisory locks for long work: "someone is doing this now", freed by the server when the holder's
session ends — so a worker killed mid-task frees its lock, and a sweeper can tell abandoned work from work in
progress.

The work spans many transactions, and behind PgBouncer in transaction pooling no session state may outlive one
(a session lock would stay on a server connection another client gets next). So the lock is a transaction-level
one (pg_try_advisory_xact_lock) held by a transaction of its own, on a direct connection of its own
(leadcrm/direct.py) that stays open while the work runs: ending the block ends that transaction, and a dead
worker's connection takes it along."""

from contextlib import contextmanager

import psycopg
from django.db import connection

from . import direct

IMPORT = 7302  # namespaces (the first key): one running import per job
RECALCULATION = 7301  # one bulk re-scoring per org
TRAINING = 7304  # one worker per predictive training run


@contextmanager
def try_lock(namespace: int, key):
    """Yields True when this process took the lock (held until the block ends), False when another holds it."""
    holder = direct.connect(autocommit=False)
    try:
        acquired = holder.execute(
            "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", [namespace, str(key)]
        ).fetchone()[0]
        yield acquired
    finally:
        try:
            holder.rollback()  # ends the transaction and frees the lock before this returns
        except psycopg.Error:  # the session is gone already, and the lock with it
            pass
        holder.close()


def is_held(namespace: int, key) -> bool:
    """Whether some session holds the lock now (a moment later it may not). Read from pg_locks, so asking takes
    nothing, even inside a transaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = %s::oid AND objid = hashtext(%s)::oid AND objsubid = 2)",
            [namespace, str(key)],
        )
        return cursor.fetchone()[0]
