"""The outbox relay: a thread of every worker that runs event handlers as soon as the emitting transaction commits.

A capture request only inserts its events (leadcrm.events.emit) and NOTIFYs this relay, which PostgreSQL delivers
on commit; the relay then claims the due rows and hands them to their handlers, which enqueue the follow-up tasks.
When captures come faster than one per OUTBOX_RELAY_LINGER_MS, it waits that long before each turn and takes
them together, so their follow-up work is done by one task each instead of one per lead; one at a time, it
delivers at once. Several workers' relays share the rows (SKIP LOCKED). The beat's
`deliver_outbox` still retries failed handlers and covers a relay that is down or reconnecting.
"""

import logging
import threading
import time

import psycopg
from django.conf import settings
from django.db import DatabaseError, InterfaceError, connection

from . import direct, events, rls

logger = logging.getLogger(__name__)

RECONNECT_PAUSE = 1.0  # seconds between attempts while the database is unreachable
STOP_CHECK_SECONDS = 0.5  # a stopping worker waits at most this long for its relay


# The relay's LISTEN session, held here as well as by its thread: a pool process forked later (one that replaces a
# dead one) inherits the object but not the thread, and must never finalize it, which would end the relay's session
# on the shared socket. It is a direct connection (leadcrm/direct.py): a LISTEN through PgBouncer in transaction
# pooling would stay on whichever server connection ran it. Delivering goes through the usual (pooled) connection.
_session = None


def _listen() -> None:
    global _session
    _close_session()
    _session = direct.connect()
    _session.execute(f"LISTEN {events.RELAY_CHANNEL}")


def _close_session() -> None:
    global _session
    if _session is not None:
        _session.close()
        _session = None


def _wait(stop: threading.Event, timeout: float) -> None:
    """Until a NOTIFY arrives (those already queued count), `timeout` seconds pass or the relay is stopped."""
    deadline = time.monotonic() + timeout
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        for _ in _session.notifies(timeout=min(left, STOP_CHECK_SECONDS), stop_after=1):
            return


def run(stop: threading.Event) -> None:
    """Deliver due events until `stop` is set; sleep on LISTEN in between."""
    rls.enter(rls.NOBODY)  # handlers enter each event's org themselves (events.deliver_due)
    listening = False
    while not stop.is_set():
        try:
            if not listening:
                _listen()  # before delivering, so a commit in between still wakes the wait below
                listening = True
            events.deliver_due(limit=settings.OUTBOX_RELAY_BATCH)
            delivered = time.monotonic()
            _wait(stop, settings.OUTBOX_RELAY_IDLE_SECONDS)
            linger = settings.OUTBOX_RELAY_LINGER_MS / 1000
            if time.monotonic() - delivered < linger:
                # Events come faster than one a linger: let the next few arrive, so their follow-up work is done
                # by one task (one scoring statement for a dozen captures) instead of one each.
                stop.wait(linger)
        except (DatabaseError, InterfaceError, psycopg.Error):
            logger.warning("outbox relay lost its database connection; reconnecting", exc_info=True)
            listening = False
            _close_session()
            connection.close()
            stop.wait(RECONNECT_PAUSE)
        except Exception:  # a bug in one delivery must not end the relay: the rows stay for the next turn
            logger.exception("outbox relay failed to deliver; trying again")
            stop.wait(RECONNECT_PAUSE)
    _close_session()
    connection.close()


class Relay:
    """The relay thread of one process."""

    def __init__(self):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=run, args=(self.stop,), name="outbox-relay", daemon=True)

    def start(self) -> "Relay":
        self.thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        self.thread.join(timeout)
