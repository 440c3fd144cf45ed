"""The transactional outbox: an event is written with the transaction that caused it, and a handler that fails
(the broker was down, say) runs again from the beat until it succeeds — the others are not run twice."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from leadcrm import events
from leadcrm.models import OutboxEvent

EVENT = "test.happened"


@pytest.fixture
def handlers():
    """Two handlers of EVENT: `steady` always works, `flaky` fails while `flaky.broken` is set."""
    calls = {"steady": [], "flaky": []}

    def steady(**payload):
        calls["steady"].append(payload)

    def flaky(**payload):
        if flaky.broken:
            raise ConnectionError("broker unavailable")
        calls["flaky"].append(payload)

    flaky.broken = False
    events.subscribe(EVENT, steady)
    events.subscribe(EVENT, flaky)
    try:
        yield calls, flaky
    finally:
        events._handlers.pop(EVENT, None)


def make_due():
    OutboxEvent.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))


@pytest.mark.django_db(transaction=True)
def test_delivered_event_leaves_nothing_behind(handlers):
    calls, _ = handlers
    with transaction.atomic():
        events.emit(EVENT, lead_id="L1")
        assert OutboxEvent.objects.filter(event=EVENT).count() == 1  # written with the transaction
        assert calls["steady"] == []  # and delivered only once it commits
    assert [call["lead_id"] for call in calls["steady"]] == ["L1"]
    assert isinstance(calls["steady"][0]["event_id"], int)
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_rolled_back_event_is_never_delivered(handlers):
    calls, _ = handlers
    with pytest.raises(RuntimeError), transaction.atomic():
        events.emit(EVENT, lead_id="L1")
        raise RuntimeError("the capture failed")
    assert calls == {"steady": [], "flaky": []}
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_failed_handler_is_retried_until_it_succeeds_and_the_others_run_once(handlers):
    calls, flaky = handlers
    flaky.broken = True
    with transaction.atomic():
        events.emit(EVENT, lead_id="L1")
    row = OutboxEvent.objects.get()
    assert row.pending == [events.handler_name(flaky)] and row.attempts == 1
    assert "broker unavailable" in row.last_error
    assert row.next_attempt_at > timezone.now()  # backoff: not before it is due
    assert events.deliver_due() == {"delivered": 0, "failed": 0}

    make_due()
    assert events.deliver_due() == {"delivered": 0, "failed": 1}  # still broken: later again, backing off
    row.refresh_from_db()
    assert row.attempts == 2 and row.next_attempt_at - timezone.now() > timedelta(seconds=5)

    flaky.broken = False
    make_due()
    assert events.deliver_due() == {"delivered": 1, "failed": 0}
    assert not OutboxEvent.objects.exists()
    assert len(calls["steady"]) == 1  # never repeated
    assert [call["lead_id"] for call in calls["flaky"]] == ["L1"]
    assert calls["flaky"][0]["event_id"] == row.pk  # the same id as the first time, for consumers that dedupe


@pytest.mark.django_db(transaction=True)
def test_event_whose_process_died_before_delivery_is_delivered_by_the_beat(handlers):
    calls, _ = handlers
    # What a process killed between its commit and the handlers leaves: the row, nothing delivered.
    OutboxEvent.objects.create(event=EVENT, payload={"lead_id": "L2"}, created_at=timezone.now(),
                               next_attempt_at=timezone.now() + events.OUTBOX_GRACE)
    assert events.deliver_due() == {"delivered": 0, "failed": 0}  # the committing process may still deliver it
    make_due()
    assert events.deliver_due() == {"delivered": 1, "failed": 0}
    assert [call["lead_id"] for call in calls["steady"]] == ["L2"] == [call["lead_id"] for call in calls["flaky"]]
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_capture_with_the_broker_down_answers_201_fast_and_scores_once_it_is_back(org, api, settings):
    """Redis refusing connections: the capture still succeeds quickly; the scoring handler waits in the outbox."""
    import time

    from leadcrm.celery import app
    from tests.faults.conftest import celery_broker, free_port

    with celery_broker(f"redis://127.0.0.1:{free_port()}/0"):  # nothing listens there
        started = time.monotonic()
        response = api.post("/api/v1/leads/", {"email": "down@example.com"}, format="json")
        elapsed = time.monotonic() - started
    assert response.status_code == 201
    assert elapsed < 2, f"the capture took {elapsed:.1f} s with the broker down"
    pending = [name for row in OutboxEvent.objects.all() for name in row.pending or []]
    assert "scoring.handlers.score_after_activities" in pending
    assert app.conf.broker_url == settings.CELERY_BROKER_URL
