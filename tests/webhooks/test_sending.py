"""Sending: a signed POST per attempt, 2xx delivered, everything else retried on the backoff schedule for about a
day and then failed; leases keep two workers off one delivery; replays; the sweeper finds what no task sends."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from leads import services as lead_services
from webhooks import handlers, services
from webhooks.models import Attempt, Delivery, Endpoint

from .readme_example import verify_webhook_from_readme

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(org, local_receivers, receiver):
    return services.create_endpoint(organization_id=org.pk, data={
        "url": receiver.url(), "events": ["lead.created", "lead.updated"]})


@pytest.fixture
def lead(org):
    return lead_services.capture_lead(organization_id=org.pk, data={"email": "ada@example.com",
                                                                    "first_name": "Ada"}).lead


def _delivery(org, lead, event="lead.created"):
    ids = services.deliveries_for_lead(organization_id=org.pk, event_type=event, lead_id=lead.pk)
    assert len(ids) == 1
    return Delivery.objects.get(pk=ids[0])


def _due_now(delivery):
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_a_2xx_answer_delivers_a_signed_body(org, endpoint, lead, receiver):
    delivery = _delivery(org, lead)
    attempt = services.send_delivery(delivery_id=delivery.pk)

    assert attempt.status_code == 200 and attempt.response_body == "ok"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_count, delivery.next_attempt_at) == ("delivered", 1, None)
    request = receiver.requests[0]
    assert request["headers"]["webhook-id"] == delivery.message_id and delivery.message_id.startswith("msg_")
    assert request["headers"]["content-type"] == "application/json"
    assert verify_webhook_from_readme()(endpoint.secret, request["headers"], request["body"])
    body = json.loads(request["body"])
    assert body["type"] == "lead.created" and body["data"]["lead"]["email"] == "ada@example.com"
    assert body["data"]["lead"]["id"] == str(lead.pk) and "timestamp" in body
    # Sending again does nothing: it is no longer due.
    assert services.send_delivery(delivery_id=delivery.pk) is None
    assert len(receiver.requests) == 1


def test_failures_back_off_5s_5min_30min_2h_5h_10h_then_fail(org, endpoint, lead, receiver):
    receiver.status, receiver.body = 503, b"x" * 5000
    delivery = _delivery(org, lead)
    waits = []
    for _ in range(7):
        _due_now(delivery)
        before = timezone.now()
        attempt = services.send_delivery(delivery_id=delivery.pk)
        after = timezone.now()
        assert attempt.status_code == 503
        assert len(attempt.response_body) == 2048  # an excerpt, never the whole answer
        delivery.refresh_from_db()
        if delivery.next_attempt_at:  # the wait counts from a moment of the call, however slow the machine
            waits.append(((delivery.next_attempt_at - after).total_seconds(),
                          (delivery.next_attempt_at - before).total_seconds()))
    expected = [5, 300, 1800, 7200, 18000, 36000]
    assert len(waits) == len(expected)
    assert all(low - 0.01 <= wait <= high + 0.01 for wait, (low, high) in zip(expected, waits, strict=True)), waits
    assert delivery.status == "failed" and delivery.attempt_count == 7 and delivery.last_status_code == 503
    assert delivery.last_error == "HTTP 503"
    assert len(receiver.requests) == 7
    # The message id stays the same on every retry, so a receiver can dedupe.
    assert {r["headers"]["webhook-id"] for r in receiver.requests} == {delivery.message_id}
    assert services.send_delivery(delivery_id=delivery.pk) is None


def test_the_schedule_comes_from_settings(org, endpoint, lead, receiver, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = "1,2"
    receiver.status = 500
    delivery = _delivery(org, lead)
    for _ in range(3):
        _due_now(delivery)
        services.send_delivery(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempt_count == 3


def test_a_slow_or_absent_receiver_is_an_error_within_the_timeouts(org, endpoint, lead, receiver, settings):
    settings.WEBHOOKS_READ_TIMEOUT = 0.3
    receiver.delay = 1.0
    delivery = _delivery(org, lead)
    attempt = services.send_delivery(delivery_id=delivery.pk)
    assert attempt.status_code is None and "timed out" in attempt.error
    assert attempt.duration_ms < 1000
    Endpoint.objects.filter(pk=endpoint.pk).update(url="http://127.0.0.1:9/closed")
    _due_now(delivery)
    attempt = services.send_delivery(delivery_id=delivery.pk)
    assert "ConnectionRefused" in attempt.error
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempt_count == 2


def test_a_claimed_delivery_is_not_taken_by_another_worker_until_its_lease_ends(org, endpoint, lead, settings):
    delivery = _delivery(org, lead)
    claimed = services._claim(limit=10)
    assert [d.pk for d in claimed] == [delivery.pk]
    assert services._claim(limit=10) == []  # a second worker finds nothing due
    assert services.send_delivery(delivery_id=delivery.pk) is None
    delivery.refresh_from_db()
    assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=settings.WEBHOOKS_LEASE_SECONDS - 5)
    # The worker died before sending: once the lease ends the delivery is due again.
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert [d.pk for d in services._claim(limit=10)] == [delivery.pk]


def test_the_sweeper_sends_what_no_task_sent_and_skips_disabled_endpoints(org, endpoint, lead, receiver):
    # In a test transaction nothing is enqueued on commit: these deliveries are like ones whose task was lost.
    first, second = _delivery(org, lead), _delivery(org, lead, "lead.updated")
    later = _delivery(org, lead)
    Delivery.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5))
    services.set_active(endpoint=endpoint, active=False)
    assert services.send_due(budget_seconds=5) == 0
    services.set_active(endpoint=endpoint, active=True)

    assert services.send_due(budget_seconds=5) == 2
    assert {r["headers"]["webhook-id"] for r in receiver.requests} == {first.message_id, second.message_id}
    assert Delivery.objects.get(pk=later.pk).status == "pending"


def test_replay_is_a_new_delivery_of_the_same_body(org, endpoint, lead, receiver):
    delivery = _delivery(org, lead)
    services.send_delivery(delivery_id=delivery.pk)
    copy = services.replay(delivery=delivery)
    assert copy.pk != delivery.pk and copy.message_id != delivery.message_id and copy.replay_of_id == delivery.pk
    services.send_delivery(delivery_id=copy.pk)
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]
    assert receiver.requests[1]["headers"]["webhook-id"] == copy.message_id
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts.count() == 1


def test_a_rotated_secret_signs_the_next_attempt(org, endpoint, lead, receiver):
    delivery = _delivery(org, lead)
    services.rotate_secret(endpoint=endpoint)
    services.send_delivery(delivery_id=delivery.pk)
    verify = verify_webhook_from_readme()
    request = receiver.requests[0]
    assert verify(Endpoint.objects.get(pk=endpoint.pk).secret, request["headers"], request["body"])


def test_an_event_delivered_twice_with_its_event_id_creates_its_deliveries_once(org, endpoint, lead):
    for _ in range(2):
        handlers.lead_updated(organization_id=org.pk, lead_id=lead.pk, fields=["city"], event_id="evt-1")
        handlers.lead_mql(organization_id=org.pk, lead_ids=[lead.pk], event_id="evt-2")
    handlers.lead_updated(organization_id=org.pk, lead_id=lead.pk, fields=["city"])
    handlers.lead_updated(organization_id=org.pk, lead_id=lead.pk, fields=["city"])
    assert Delivery.objects.filter(event_type="lead.updated").count() == 3  # once with the id, twice without


def test_the_response_and_attempt_are_recorded(org, endpoint, lead, receiver):
    receiver.status, receiver.body = 410, "gone ✓ \x00".encode()
    delivery = _delivery(org, lead)
    services.send_delivery(delivery_id=delivery.pk)
    attempt = Attempt.objects.get(delivery=delivery)
    assert attempt.status_code == 410 and attempt.response_body == "gone ✓ " and attempt.url == endpoint.url
    assert attempt.organization_id == org.pk
