"""End to end through a real Celery worker process, on each broker: Redis and RabbitMQ (tests/faults/conftest.py)."""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from leadcrm import services as tenancy
from leads.models import ImportJob, Lead
from tests.faults.conftest import broker, rabbitmq  # noqa: F401 - the fixtures: each test runs on both brokers

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(broker, start_worker):  # noqa: F811 - `broker` is the imported fixture
    """A worker consuming every queue of the test's broker."""
    return start_worker(env={"CELERY_BROKER_URL": broker.url})


def test_csv_import_runs_on_a_real_worker(api, org, worker):
    rows = ["Email,First Name,Company"] + [f"person{i}@example.com,Person {i},Firm {i % 7}" for i in range(300)]
    rows.append("not-an-email,Broken,Row")
    upload = SimpleUploadedFile("people.csv", "\n".join(rows).encode(), content_type="text/csv")

    response = api.post("/api/v1/imports/", {"file": upload}, format="multipart")
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]

    deadline = time.monotonic() + 90
    while True:
        status = api.get(f"/api/v1/imports/{job_id}/").json()
        if status["status"] in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    assert status["status"] == "done", status
    assert status["created_count"] == 300
    assert status["failed_count"] == 1
    assert Lead.objects.for_org(org).count() == 300
    assert Lead.objects.for_org(org).get(email="person7@example.com").company == "Firm 0"
    assert ImportJob.objects.get(pk=job_id).progress_percent == 100

    health = api.get("/readyz")
    assert health.status_code == 200
    assert health.json()["celery"].startswith("ok")


def _wait_for(check, seconds=60):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_an_activity_rescores_its_lead_on_a_real_worker(api, org, worker):
    """Instant scoring: the activity's commit enqueues a scoring task, which the worker runs."""
    lead_id = api.post("/api/v1/leads/", {"email": "pat@example.com", "industry": "Software"},
                       format="json").json()["id"]
    _wait_for(lambda: Lead.objects.get(pk=lead_id).score == 20 - 10)  # target industry, no company

    response = api.post("/api/v1/activities/", {"lead": lead_id, "type": "page_view",
                                                "properties": {"url": "https://acme.test/pricing"}}, format="json")
    assert response.status_code == 201
    _wait_for(lambda: Lead.objects.get(pk=lead_id).score == 20)
    explained = api.get(f"/api/v1/leads/{lead_id}/score/").json()
    assert {(row["name"], row["points"], row["count"]) for row in explained["contributions"]} >= {
        ("Visited the pricing page", 10, 1), ("Target industry", 20, 1)}


def test_a_new_rule_rescores_the_org_on_a_real_worker(api, org, worker):
    leads = [api.post("/api/v1/leads/", {"email": f"p{i}@example.com", "country": "DE" if i % 2 else "US"},
                      format="json").json()["id"] for i in range(6)]
    response = api.post("/api/v1/scoring-rules/", {"name": "Germany", "kind": "fit", "points": 40,
                                                   "condition": {"field": "country", "op": "eq", "value": "de"}},
                        format="json")
    assert response.status_code == 201, response.content

    _wait_for(lambda: api.get("/api/v1/scoring-settings/").json()["recalculation"]["status"] == "idle")
    scores = {str(lead.pk): lead.fit_score for lead in Lead.objects.filter(pk__in=leads)}
    assert sorted(scores.values()) == [-10, -10, -10, 30, 30, 30]


def test_a_lead_that_qualifies_at_capture_reaches_a_rep_with_an_email(api, org, smtp_server, worker):
    """Speed to lead end to end: capture -> scoring task -> lead.mql -> routing task -> rep's queue and inbox.
    (smtp_server comes before worker: the worker process reads the mail server's port from its environment.)"""
    from routing import services as routing
    from routing.models import RepProfile
    from tests.scoring import fit, set_rules

    set_rules(org, fit(60, {"field": "job_title", "op": "contains", "value": "VP"}), mql_score=50, mql_min_grade="F")
    rep = tenancy.add_member(organization=org, email="closer@acme.test", password=None, role="rep")
    team = routing.save_team(organization_id=org.pk, data={
        "name": "Sales", "members": [RepProfile.objects.get(organization=org, user=rep.user)]})
    routing.save_rule(organization_id=org.pk, data={"name": "All", "strategy": "round_robin", "team": team,
                                                    "sla_minutes": 15})

    lead_id = api.post("/api/v1/leads/", {"email": "vp@example.com", "job_title": "VP Sales", "first_name": "Vera"},
                       format="json").json()["id"]

    _wait_for(lambda: Lead.objects.get(pk=lead_id).owner_id == rep.user_id)
    queue = api.get(f"/api/v1/queue/?rep={rep.user_id}").json()
    assert [item["id"] for item in queue["results"]] == [lead_id]
    _wait_for(lambda: smtp_server.messages)
    message = smtp_server.messages[0]
    assert message["To"] == "closer@acme.test" and "Vera" in message["Subject"]
    assert f"/leads/{lead_id}/" in message.get_content()


def test_a_due_sequence_email_is_sent_by_the_tick_on_a_real_worker(api, org, smtp_server, worker):
    """Enrol over the API, let the nurturing tick run on the worker, and find the email at the SMTP server."""
    from nurturing import services as nurturing
    from nurturing.tasks import tick

    template = nurturing.create_template(organization_id=org.pk, name="Hello", subject="Hi {{ lead.first_name }}",
                                         html='<p><a href="https://acme.test/guide">Guide</a></p>',
                                         text="Guide: https://acme.test/guide")
    response = api.post("/api/v1/sequences/", {
        "name": "Welcome", "active": True, "steps": [{"type": "email", "template": str(template.pk)}],
        "entry": {"manual": True}, "exit": {"stages": ["sql"]}}, format="json")
    assert response.status_code == 201, response.content
    lead = api.post("/api/v1/leads/", {"email": "sam@example.com", "first_name": "Sam", "consent_opt_in": True},
                    format="json").json()
    enrolled = api.post(f"/api/v1/sequences/{response.json()['id']}/enroll/", {"leads": [lead["id"]]},
                        format="json")
    assert enrolled.status_code == 200, enrolled.content

    tick.delay()

    _wait_for(lambda: smtp_server.messages)
    message = smtp_server.messages[0]
    assert message["To"] == "sam@example.com" and message["Subject"] == "Hi Sam"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    _wait_for(lambda: api.get(f"/api/v1/leads/{lead['id']}/messages/").json()["results"][0]["status"] == "sent")


def test_bulk_tagging_rescores_the_tagged_leads_on_a_real_worker(api, org, worker):
    response = api.post("/api/v1/scoring-rules/", {"name": "VIP", "kind": "fit", "points": 30,
                                                   "condition": {"field": "tags", "op": "contains", "value": "vip"}},
                        format="json")
    assert response.status_code == 201, response.content
    _wait_for(lambda: api.get("/api/v1/scoring-settings/").json()["recalculation"]["status"] == "idle")
    leads = [api.post("/api/v1/leads/", {"email": f"t{i}@example.com", "company": "Firm"}, format="json").json()["id"]
             for i in range(3)]
    _wait_for(lambda: all(Lead.objects.get(pk=pk).score == 0 for pk in leads))

    response = api.post("/api/v1/leads/tags/", {"leads": leads[:2], "add": ["vip"]}, format="json")
    assert response.json() == {"changed": 2}
    _wait_for(lambda: [Lead.objects.get(pk=pk).score for pk in leads] == [30, 30, 0])
