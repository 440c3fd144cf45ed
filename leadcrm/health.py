"""What /readyz checks: this process can serve — its database answers and is fully migrated, and its broker
answers. Liveness (/healthz) checks nothing outside the process, so a database outage never gets every web process
restarted at once."""

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

_migrated: set[str] = set()  # databases found fully migrated once (a deploy migrates before it starts processes)


def database(using=DEFAULT_DB_ALIAS) -> str:
    try:
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        if using not in _migrated:
            executor = MigrationExecutor(connection)
            waiting = executor.migration_plan(executor.loader.graph.leaf_nodes())
            if waiting:
                return f"error: {len(waiting)} migrations not applied"
            _migrated.add(using)
        return "ok"
    except Exception as exc:  # noqa: BLE001 — reported, never raised: this is what load balancers read
        return f"error: {exc.__class__.__name__}"


def broker() -> str:
    from .celery import app

    try:
        # A fresh connection with a short timeout: Celery's own would retry for seconds before failing.
        with app.connection_for_write(connect_timeout=1) as connection:
            connection.ensure_connection(max_retries=1, timeout=1)
        return "ok"
    except Exception as exc:  # noqa: BLE001
        return f"error: {exc.__class__.__name__}"


def workers() -> str:
    """How many workers answer a ping (information: a web process serves without them, capture keeps to the outbox)."""
    from .celery import app

    try:
        replies = app.control.ping(timeout=1.0)
    except Exception as exc:  # noqa: BLE001
        return f"error: {exc.__class__.__name__}"
    return f"ok ({len(replies)} workers)" if replies else "no workers"


def readiness() -> tuple[bool, dict]:
    checks = {"database": database(), "broker": broker()}
    checks["celery"] = workers() if checks["broker"] == "ok" else "unknown: broker unreachable"
    ready = checks["database"] == "ok" and checks["broker"] == "ok"
    return ready, checks
