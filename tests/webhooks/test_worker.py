"""Through a real Celery worker and Redis to a real HTTP receiver: a captured lead arrives signed (checked with the
README's code); a retry follows a failure; a delivery whose task was lost is sent by the sweeper."""

import json
import time

import pytest
from django.utils import timezone

from webhooks import services, tasks
from webhooks.models import Delivery

from .readme_example import verify_webhook_from_readme

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def local_worker(monkeypatch, settings, start_worker):
    """A worker that may deliver to this machine over http, retrying after 1 s."""
    for name, value in {"WEBHOOKS_ALLOW_PRIVATE": "1", "WEBHOOKS_ALLOW_HTTP": "1",
                        "WEBHOOKS_RETRY_SCHEDULE": "1,1"}.items():
        monkeypatch.setenv(name, value)
    settings.WEBHOOKS_ALLOW_PRIVATE = settings.WEBHOOKS_ALLOW_HTTP = True
    settings.WEBHOOKS_RETRY_SCHEDULE = "1,1"
    return start_worker()


def _wait_for(check, seconds=60):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_captured_lead_is_delivered_signed_by_a_real_worker(api, org, receiver, local_worker):
    endpoint = services.create_endpoint(organization_id=org.pk, data={"url": receiver.url("/crm?token=1"),
                                                                      "events": ["lead.created"]})
    started = time.monotonic()
    lead_id = api.post("/api/v1/leads/", {"email": "grace@example.com", "first_name": "Grace"},
                       format="json").json()["id"]

    request = receiver.wait_for(1)[0]
    latency = time.monotonic() - started
    assert verify_webhook_from_readme()(endpoint.secret, request["headers"], request["body"])
    body = json.loads(request["body"])
    assert body["type"] == "lead.created" and body["data"]["lead"]["id"] == lead_id
    assert request["path"] == "/crm?token=1"
    _wait_for(lambda: Delivery.objects.get().status == "delivered")
    assert latency < 10  # sent by its own task on commit, not by a sweep


def test_a_failure_is_retried_by_the_worker(api, org, receiver, local_worker):
    answers = iter([500, 200])
    receiver.respond = lambda path: (next(answers, 200), b"", {})
    services.create_endpoint(organization_id=org.pk, data={"url": receiver.url(), "events": ["lead.created"]})
    api.post("/api/v1/leads/", {"email": "retry@example.com"}, format="json")

    requests = receiver.wait_for(2)
    assert len(requests) == 2 and requests[0]["headers"]["webhook-id"] == requests[1]["headers"]["webhook-id"]
    _wait_for(lambda: Delivery.objects.get().status == "delivered")
    assert Delivery.objects.get().attempt_count == 2


def test_the_sweeper_sends_a_delivery_whose_task_was_lost(org, receiver, local_worker):
    endpoint = services.create_endpoint(organization_id=org.pk, data={"url": receiver.url(),
                                                                      "events": ["lead.created"]})
    # Written without its task, as if the broker had been down at commit.
    delivery = Delivery.objects.create(organization=org, endpoint=endpoint, message_id=services.new_message_id(),
                                       event_type="webhook.test", payload={"type": "webhook.test", "data": {}},
                                       next_attempt_at=timezone.now())
    time.sleep(1)
    assert receiver.requests == []
    tasks.sweep.delay()  # what beat sends every WEBHOOKS_SWEEP_SECONDS
    assert receiver.wait_for(1)[0]["headers"]["webhook-id"] == delivery.message_id
    _wait_for(lambda: Delivery.objects.get().status == "delivered")
