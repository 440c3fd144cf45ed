"""Connections of their own straight to PostgreSQL, past the pooler, for what needs a session that outlives a
transaction: the outbox relay's LISTEN (leadcrm/relay.py) and the advisory locks of long work (leadcrm/locks.py).

PgBouncer in transaction pooling gives each transaction whichever server connection is free, so a LISTEN or a
session lock taken through it would stay behind on a server connection another client gets next. DATABASE_DIRECT_URL
names the server itself; empty, the default database's own settings are used (right when nothing is in between)."""

import dj_database_url
import psycopg
from django.conf import settings
from django.db import connection


def parameters() -> dict:
    """psycopg.connect() keywords for a direct session."""
    url = getattr(settings, "DATABASE_DIRECT_URL", "")
    db = dj_database_url.parse(url) if url else connection.settings_dict
    found = {
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        "dbname": db["NAME"],
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "application_name": "leadcrm-direct",
    }
    return {key: value for key, value in found.items() if value is not None}


def connect(*, autocommit: bool = True) -> psycopg.Connection:
    # No prepared statements and no startup options: the same connection works whether a pooler is in between or not.
    return psycopg.connect(**parameters(), autocommit=autocommit, prepare_threshold=None)
