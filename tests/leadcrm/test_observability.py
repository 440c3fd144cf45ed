"""Operations: /metrics behind a token or an allowed network, with request latency by route, task latency by
task, queue depth read from the real broker, backlogs read with SQL, speed to lead and nurture send lag; JSON logs
carrying request, org and task ids; liveness (/healthz) apart from readiness (/readyz)."""

import io
import json
import logging
import socket
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from pythonjsonlogger.json import JsonFormatter

from leadcrm import logs
from leadcrm.celery import app as celery_app
from leadcrm.models import OutboxEvent
from leads.tasks import run_import
from nurturing import services as nurturing_services
from nurturing.models import Enrollment
from tests.nurturing.test_sequences import make_lead as nurture_lead
from tests.nurturing.test_sequences import make_sequence, make_template, run
from tests.routing import make_lead, make_rep, make_rule, make_team, route
from webhooks.models import Delivery, Endpoint

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-for-tests"


@pytest.fixture
def scrape(client, settings):
    settings.METRICS_TOKEN = TOKEN

    def read() -> dict:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200
        samples = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    return read


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# ----------------------------------------------------------------------------------------------- /metrics access


def test_metrics_need_the_token(client, settings):
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert b"leadcrm_http_request_duration_seconds" in response.content


def test_without_a_token_setting_nobody_reads_them_unless_their_network_is_allowed(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 401  # the test client is 127.0.0.1
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "127.0.0.0/8"]
    assert client.get("/metrics").status_code == 200


def test_a_member_or_api_key_is_no_way_in(api, browser, settings):
    settings.METRICS_TOKEN = TOKEN
    assert api.get("/metrics").status_code == 401
    assert browser.get("/metrics").status_code == 401


# ----------------------------------------------------------------------------------------------- histograms


def test_request_latency_is_recorded_by_route_name_not_path(api, org, scrape):
    lead = make_lead(org)
    before = scrape()
    for _ in range(2):
        assert api.get(f"/api/v1/leads/{lead.pk}/").status_code == 200
    assert api.get(f"/api/v1/leads/{uuid.uuid4()}/").status_code == 404
    after = scrape()

    name = "leadcrm_http_request_duration_seconds_count"
    ok = {"route": "lead-detail", "method": "GET", "status": "2xx"}
    missing = {"route": "lead-detail", "method": "GET", "status": "4xx"}
    assert value(after, name, **ok) - value(before, name, **ok) == 2
    assert value(after, name, **missing) - value(before, name, **missing) == 1
    assert value(after, "leadcrm_http_request_duration_seconds_sum", **ok) > 0
    assert not [key for key in after if str(lead.pk) in str(key)]  # no series per lead


def test_task_latency_is_recorded_by_task_name(scrape):
    name, labels = "leadcrm_celery_task_duration_seconds_count", {"task": "leads.tasks.run_import", "state": "SUCCESS"}
    before = value(scrape(), name, **labels)
    run_import.apply(kwargs={"import_id": str(uuid.uuid4())})  # nothing to import: it ends at once
    assert value(scrape(), name, **labels) == before + 1


def test_speed_to_lead_is_observed_at_the_first_assignment_only(org, scrape, django_capture_on_commit_callbacks):
    rep = make_rep(org, "ann")
    make_rule(org, "Everyone", team=make_team(org, "Desk", [rep]))
    lead = make_lead(org)
    lead.created_at = timezone.now() - timedelta(seconds=90)
    lead.save(update_fields=["created_at"])
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        route(lead)
    after = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        route(lead)  # routed again: whatever it does, it is not the lead's first assignment
    count = "leadcrm_speed_to_lead_seconds_count"
    assert value(after, count) - value(before, count) == 1
    assert value(scrape(), count) == value(after, count)
    # 90 s after capture: in the 120 s bucket, not in the 60 s one.
    assert (
        value(after, "leadcrm_speed_to_lead_seconds_bucket", le="120.0")
        - value(before, "leadcrm_speed_to_lead_seconds_bucket", le="120.0")
        == 1
    )
    assert value(after, "leadcrm_speed_to_lead_seconds_bucket", le="60.0") == value(
        before, "leadcrm_speed_to_lead_seconds_bucket", le="60.0"
    )


def test_nurture_send_lag_is_observed_per_email_sent(org, mailoutbox, scrape, django_capture_on_commit_callbacks):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}])
    nurturing_services.enroll(sequence=sequence, leads=[nurture_lead(org).pk])
    Enrollment.objects.filter(sequence=sequence).update(next_run_at=timezone.now() - timedelta(minutes=3))
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        assert run()["sent"] == 1
    after = scrape()
    count, lag = "leadcrm_nurture_send_lag_seconds_count", "leadcrm_nurture_send_lag_seconds_sum"
    assert value(after, count) - value(before, count) == 1
    assert 180 <= value(after, lag) - value(before, lag) < 240  # due three minutes before the tick sent it


# ----------------------------------------------------------------------------------------------- scrape-time gauges


@pytest.fixture
def empty_queue():
    def purge():
        with celery_app.connection_for_write() as broker:
            broker.default_channel.queue_purge("imports")

    purge()
    yield
    purge()


def test_queue_depth_is_read_from_the_broker(scrape, empty_queue):
    assert value(scrape(), "leadcrm_celery_queue_length", queue="imports") == 0
    for _ in range(3):
        celery_app.send_task("leads.tasks.run_import", kwargs={"import_id": str(uuid.uuid4())}, queue="imports")
    samples = scrape()
    assert value(samples, "leadcrm_celery_queue_length", queue="imports") == 3
    assert {labels for name, labels in samples if name == "leadcrm_celery_queue_length"} >= {
        (("queue", queue),) for queue in ("capture", "scoring", "routing", "nurturing", "webhooks", "default")
    }


def test_outbox_and_webhook_retry_backlogs_are_counted(org, scrape):
    before = scrape()
    now = timezone.now()
    OutboxEvent.objects.bulk_create(
        [OutboxEvent(event="lead.captured", payload={}, created_at=now, next_attempt_at=now) for _ in range(2)]
    )
    endpoint = Endpoint.objects.create(
        organization=org, url="https://hooks.example.com/", events=["lead.created"], secret="s"
    )
    for attempts in (0, 1, 3):  # a first attempt still to come is not a retry
        Delivery.objects.create(
            organization=org,
            endpoint=endpoint,
            message_id=uuid.uuid4().hex,
            event_type="x",
            payload={},
            attempt_count=attempts,
            next_attempt_at=now,
        )
    after = scrape()
    assert value(after, "leadcrm_outbox_backlog") - value(before, "leadcrm_outbox_backlog") == 2
    assert value(after, "leadcrm_webhook_retry_backlog") - value(before, "leadcrm_webhook_retry_backlog") == 2


# ----------------------------------------------------------------------------------------------- logs


@pytest.fixture
def json_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    from django.conf import settings

    options = {k: v for k, v in settings.LOGGING["formatters"]["json"].items() if k != "()"}
    handler.setFormatter(JsonFormatter(**options))
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_a_request_logs_json_with_its_request_id_and_org(api, org, json_log):
    response = api.get(f"/api/v1/leads/{uuid.uuid4()}/", HTTP_X_REQUEST_ID="trace-123.abc")
    assert response.status_code == 404 and response["X-Request-ID"] == "trace-123.abc"
    [line] = json_log()
    assert set(line) >= {"time", "level", "logger", "message", "request_id", "org_id", "task_id"}
    assert (line["level"], line["logger"], line["request_id"], line["org_id"], line["task_id"]) == (
        "WARNING",
        "django.request",
        "trace-123.abc",
        str(org.pk),
        "",
    )
    assert line["message"].startswith("Not Found: /api/v1/leads/")


def test_a_request_id_that_is_not_an_id_is_replaced(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID='bad id"\n{"level": "forged"}')
    assert response["X-Request-ID"] != 'bad id"\n{"level": "forged"}'
    assert len(response["X-Request-ID"]) == 32
    assert client.get("/healthz")["X-Request-ID"] != response["X-Request-ID"]


def test_a_task_logs_with_its_task_id_and_org(org):
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep()
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("celery.app.trace")  # logs each task's outcome, from inside the task's context
    logger.addHandler(handler)
    try:
        run_import.apply(kwargs={"import_id": str(uuid.uuid4()), "organization_id": str(org.pk)}, task_id="task-42")
    finally:
        logger.removeHandler(handler)
    assert records and (records[0].task_id, records[0].org_id) == ("task-42", str(org.pk))
    assert (logs.task_id.get(), logs.org_id.get()) == ("", "")  # cleared after the task


# ----------------------------------------------------------------------------------------------- health


def test_healthz_is_liveness_only(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_the_database_migrations_and_broker(client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert (body["status"], body["database"], body["broker"]) == ("ok", "ok", "ok")


def test_readyz_is_503_when_the_broker_is_unreachable(client, settings):
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/readyz")
    finally:
        celery_app.conf.broker_url = settings.CELERY_BROKER_URL
    assert response.status_code == 503
    assert response.json()["broker"].startswith("error") and response.json()["status"] == "unavailable"
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_when_the_database_is_unreachable_and_healthz_stays_200(client):
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = 1
    try:
        response = client.get("/readyz")
        alive = client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port
    assert response.status_code == 503 and response.json()["database"].startswith("error")
    assert alive.status_code == 200


# ----------------------------------------------------------------------------------------------- a real worker


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_serves_its_task_latency_behind_the_token(start_worker, tmp_path):
    """The worker's processes record into PROMETHEUS_MULTIPROC_DIR; its main process serves them on
    WORKER_METRICS_PORT, to the token only."""
    port = _free_port()
    start_worker(
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "WORKER_METRICS_PORT": str(port), "METRICS_TOKEN": TOKEN}
    )
    url = f"http://127.0.0.1:{port}/metrics"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=5)
    assert refused.value.code == 401
    for _ in range(3):
        run_import.apply_async(kwargs={"import_id": str(uuid.uuid4())})
    wanted = 'leadcrm_celery_task_duration_seconds_count{state="SUCCESS",task="leads.tasks.run_import"} 3.0'
    deadline = time.monotonic() + 60
    while True:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
        text = urllib.request.urlopen(request, timeout=5).read().decode()
        if wanted in text:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.5)
