"""The broker (Redis, or RabbitMQ: each test runs on both) restarted while leads are captured over HTTP: every
capture answered 2xx is in the database, and once the broker is back every one of them is scored and routed — once."""

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from leadcrm.models import OutboxEvent
from leads.models import Lead
from routing.models import Assignment
from tests.faults.conftest import QUIET_MAIL, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def post(url: str, key: str, body: dict) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Api-Key {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_captures_while_the_broker_restarts_are_all_scored_and_routed(qualifying_org, broker, fault_worker,
                                                                 live_server):
    fault_worker(**QUIET_MAIL)
    url = f"{live_server.url}/api/v1/leads/"
    accepted, refused = [], []
    stop = threading.Event()

    def capture(client: int):
        n = 0
        while not stop.is_set():
            email = f"client{client}-{n}@example.com"
            n += 1
            status = post(url, qualifying_org.api_key, {"email": email, "job_title": "Sales Director",
                                                        "company": "Acme"})
            (accepted if 200 <= status < 300 else refused).append((email, status))
            time.sleep(0.01)

    clients = [threading.Thread(target=capture, args=(n,)) for n in range(3)]
    for thread in clients:
        thread.start()
    try:
        wait_for(lambda: len(accepted) >= 15, timeout=60, message="captures before the stop")
        broker.stop()
        while_down = len(accepted)
        wait_for(lambda: len(accepted) >= while_down + 15, timeout=60, message="captures while the broker is down")
        broker.start()
        back = len(accepted)
        wait_for(lambda: len(accepted) >= back + 15, timeout=60, message="captures after the restart")
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)

    assert refused == []
    emails = [email for email, _ in accepted]
    assert Lead.objects.for_org(qualifying_org).filter(email__in=emails).count() == len(emails)
    leads = Lead.objects.for_org(qualifying_org)
    wait_for(lambda: leads.filter(lifecycle_stage="mql", owner__isnull=False).count() == len(emails), timeout=120,
             interval=0.5, message=f"all {len(emails)} captures scored and routed")
    assert Assignment.objects.for_org(qualifying_org).count() == len(emails)  # each routed once
    wait_for(lambda: not OutboxEvent.objects.exists(), timeout=30, message="the outbox drained")
