"""The outbox relay: events emitted by a request are handled by a worker's relay thread once the request commits,
and events that arrive together reach a batch handler in one call."""

import threading
import time

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from leadcrm import events
from leadcrm.models import OutboxEvent
from leadcrm.relay import Relay

EVENT = "test.relayed"


@pytest.fixture
def relayed(settings):
    """A batch handler of EVENT recording each call's payloads; the relay mode on."""
    settings.OUTBOX_RELAY = True
    calls, arrived = [], threading.Event()

    def handler(*, organization_id, payloads):
        calls.append([payload["n"] for payload in payloads])
        arrived.set()

    events.subscribe(EVENT, handler, batch=True)
    try:
        yield calls, arrived
    finally:
        events._handlers.pop(EVENT, None)
        events._batch_handlers.discard(handler)


@pytest.mark.django_db(transaction=True)
def test_the_emitting_transaction_only_writes_the_event(relayed):
    calls, _ = relayed
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        events.emit(EVENT, n=1)
    assert len(queries) == 3  # BEGIN, the insert that also notifies the relay, COMMIT: no handler ran here
    assert calls == []
    assert OutboxEvent.objects.get().event == EVENT


@pytest.mark.django_db(transaction=True)
def test_events_committed_together_reach_a_batch_handler_in_one_call(relayed):
    calls, _ = relayed
    with transaction.atomic():
        for n in range(5):
            events.emit(EVENT, n=n)
    assert events.deliver_due() == {"delivered": 5, "failed": 0}
    assert calls == [[0, 1, 2, 3, 4]]
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_relay_thread_is_woken_by_the_commit(relayed, settings):
    calls, arrived = relayed
    settings.OUTBOX_RELAY_IDLE_SECONDS = 60
    relay = Relay().start()
    try:
        time.sleep(1)  # the relay found nothing due and sleeps on LISTEN, for a minute unless woken
        with transaction.atomic():
            events.emit(EVENT, n=7)
        assert arrived.wait(5), "the relay was not woken by the commit"
    finally:
        relay.close()
    assert calls == [[7]]
    assert not OutboxEvent.objects.exists()
