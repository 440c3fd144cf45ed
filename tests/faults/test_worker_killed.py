"""A worker killed with SIGKILL in the middle of a task: once a worker is back, the work completes exactly once.
The task's message returns after the visibility timeout, and the beat's sweepers re-enqueue rows whose task was
lost; each task finds what is already done."""

import asyncio
import threading

import pytest
from django.utils import timezone

from leads import services as lead_services
from leads.models import Activity, ImportJob, Lead
from nurturing import services as nurturing
from nurturing.models import Message
from routing.models import Assignment
from scoring import tasks as scoring_tasks
from scoring.models import ScoreSnapshot
from tests.faults.conftest import QUIET_MAIL, kill_worker, row_locked, wait_for, waiting_on_lock
from tests.leads.test_imports import csv_bytes, upload
from tests.nurturing.test_sequences import make_lead, make_sequence, make_template
from tests.webhooks.conftest import Receiver
from webhooks import services as webhooks
from webhooks.models import Attempt, Delivery

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def director(org, email):
    """A lead that qualifies once scored, written without events (the test enqueues its task by hand)."""
    now = timezone.now().isoformat()
    return Lead.objects.create(organization=org, email=email, job_title="Sales Director", company="Acme",
                               stage_entered_at={"lead": now})


def test_killed_mid_scoring_the_lead_is_scored_and_routed_once(qualifying_org, fault_worker, start_worker):
    name = fault_worker(**QUIET_MAIL)
    lead = director(qualifying_org, "mid-scoring@example.com")
    with row_locked("leads_lead", lead.pk):
        scoring_tasks.score_lead.delay(str(qualifying_org.pk), str(lead.pk))
        wait_for(waiting_on_lock, timeout=60, message="the scoring task waiting on the lead")
        kill_worker(start_worker, name)
    lead.refresh_from_db()
    assert lead.score == 0 and lead.owner_id is None  # nothing of the killed task was kept
    fault_worker(**QUIET_MAIL)
    wait_for(lambda: Lead.objects.filter(pk=lead.pk, owner__isnull=False).exists(), timeout=90,
             message="the lead scored and routed by the new worker")
    lead.refresh_from_db()
    assert (lead.score, lead.lifecycle_stage) == (65, "mql")  # 50 + the default decision-maker rule
    assert ScoreSnapshot.objects.filter(lead=lead).count() == 1
    assert Activity.objects.filter(lead=lead, type="stage_change").count() == 1
    assert Assignment.objects.filter(lead=lead).count() == 1


def test_killed_mid_routing_the_mql_is_routed_once(qualifying_org, fault_worker, start_worker):
    from routing import tasks as routing_tasks

    name = fault_worker(**QUIET_MAIL)
    lead = director(qualifying_org, "mid-routing@example.com")
    Lead.objects.filter(pk=lead.pk).update(lifecycle_stage="mql", score=50,
                                           stage_entered_at={"mql": timezone.now().isoformat()})
    with row_locked("leads_lead", lead.pk):
        routing_tasks.route_leads.delay(str(qualifying_org.pk), [str(lead.pk)])
        wait_for(waiting_on_lock, timeout=60, message="the routing task waiting on the lead")
        kill_worker(start_worker, name)
    fault_worker(**QUIET_MAIL)
    wait_for(lambda: Lead.objects.filter(pk=lead.pk, owner__isnull=False).exists(), timeout=90,
             message="the lead routed by the new worker")
    assert Assignment.objects.filter(lead=lead).count() == 1


def test_mql_whose_routing_task_was_lost_is_routed_by_the_sweeper(qualifying_org, fault_worker):
    """No task at all (lost with a broker that restarted empty, say): the sweeper finds the unrouted MQL."""
    fault_worker(**QUIET_MAIL)
    lead = director(qualifying_org, "lost-task@example.com")
    Lead.objects.filter(pk=lead.pk).update(lifecycle_stage="mql", score=50,
                                           stage_entered_at={"mql": timezone.now().isoformat()})
    wait_for(lambda: Lead.objects.filter(pk=lead.pk, owner__isnull=False).exists(), timeout=60,
             message="the sweeper routing the MQL")
    assert Assignment.objects.filter(lead=lead).count() == 1


def test_killed_mid_import_the_import_resumes_and_loads_each_row_once(org, api, fault_worker, start_worker):
    name = fault_worker()
    existing = Lead.objects.create(organization=org, email="row5500@example.com", stage_entered_at={})
    rows = [["Email", "Company"]] + [[f"row{n}@example.com", "Acme"] for n in range(1, 6001)]
    with row_locked("leads_lead", existing.pk):  # the second chunk (rows 5,001 on) merges into it and waits
        job_id = upload(api, csv_bytes(rows), mapping={"Email": "email", "Company": "company"}).json()["id"]
        wait_for(lambda: waiting_on_lock() and ImportJob.objects.get(pk=job_id).processed_rows == 5000, timeout=120,
                 message="the import's second chunk waiting")
        kill_worker(start_worker, name)
    assert ImportJob.objects.get(pk=job_id).status == "running"
    fault_worker()
    wait_for(lambda: ImportJob.objects.get(pk=job_id).status == "done", timeout=120,
             message="the import finished by the new worker")
    job = ImportJob.objects.get(pk=job_id)
    assert (job.processed_rows, job.created_count, job.merged_count, job.failed_count) == (6000, 5999, 1, 0)
    assert Lead.objects.for_org(org).count() == 6000
    assert Activity.objects.for_org(org).filter(type="imported").count() == 6000  # none twice
    existing.refresh_from_db()
    assert existing.company == "Acme"


def test_killed_mid_send_no_email_goes_twice_and_those_not_begun_are_sent(org, smtp_server, fault_worker,
                                                                          start_worker):
    """The worker hands the third of five emails to the mail server and is killed there: the first three are
    never sent again (at most once), the last two, never begun, are sent by the next worker.

    The worker starts before the enrolment: a solo worker busy in a task answers no ping, so one whose first tick
    began before its start-up ping would keep the test waiting until the mail server timed out, not killed."""
    received, handed_over, release = [], threading.Event(), threading.Event()

    async def handle_data(server, session, envelope):
        received.append(envelope.rcpt_tos[0])
        if len(received) == 3:
            handed_over.set()
            while not release.is_set():
                await asyncio.sleep(0.05)
        return "250 Message accepted"

    smtp_server.handle_DATA = handle_data
    sequence = make_sequence(org, [{"type": "email", "template": str(make_template(org).pk)}])
    leads = [make_lead(org, f"lead{n}@example.com") for n in range(5)]
    name = fault_worker(EMAIL_TIMEOUT="120")  # the hand-over waits for the kill however slow the test is
    nurturing.enroll(sequence=sequence, leads=[lead.pk for lead in leads])
    assert handed_over.wait(timeout=60), "the tick never reached the third email"
    kill_worker(start_worker, name)
    release.set()
    fault_worker()
    wait_for(lambda: Message.objects.filter(status="sent").count() == 2 and len(received) == 5, timeout=90,
             message="the two emails never begun sent by the new worker")
    assert sorted(received) == sorted(lead.email for lead in leads)  # each lead exactly once
    statuses = sorted(Message.objects.values_list("status", flat=True))
    assert statuses == ["sending"] * 3 + ["sent"] * 2  # the three handed over become `unknown` later, never resent


def test_killed_mid_webhook_the_delivery_is_sent_again_under_its_id_and_recorded_once(org, fault_worker, start_worker,
                                                                                     settings):
    """The worker is killed while the receiver holds its POST: the delivery's lease runs out, the sweeper of the
    next worker sends it again with the same webhook-id (receivers dedupe on it), and it is recorded delivered once."""
    receiver, held = Receiver(), threading.Event()

    def respond(path):
        if len(receiver.requests) == 1:  # the first POST waits until its worker is gone
            held.wait(timeout=60)
        return 200, b"ok", {}

    receiver.respond = respond
    settings.WEBHOOKS_ALLOW_PRIVATE = settings.WEBHOOKS_ALLOW_HTTP = True  # this process checks the URL at creation
    env = {"WEBHOOKS_ALLOW_PRIVATE": "1", "WEBHOOKS_ALLOW_HTTP": "1", "WEBHOOKS_LEASE_SECONDS": "3",
           "WEBHOOKS_SWEEP_SECONDS": "2", **QUIET_MAIL}
    try:
        name = fault_worker(WEBHOOKS_READ_TIMEOUT="120", **env)  # the POST waits for the kill however slow the test
        webhooks.create_endpoint(organization_id=org.pk, data={"url": receiver.url(), "events": ["lead.created"]})
        lead_services.capture_lead(organization_id=org.pk, data={"email": "hooked@example.com"})
        assert receiver.wait_for(1, timeout=60), "the worker never posted the delivery"
        kill_worker(start_worker, name)
        held.set()
        fault_worker(**env)
        wait_for(lambda: Delivery.objects.filter(status="delivered").exists(), timeout=90,
                 message="the delivery sent by the new worker")
    finally:
        held.set()
        receiver.close()
    delivery = Delivery.objects.get()  # one delivery for the one event
    assert len(receiver.requests) == 2
    assert {request["headers"]["webhook-id"] for request in receiver.requests} == {delivery.message_id}
    assert list(Attempt.objects.filter(delivery=delivery).values_list("status_code", flat=True)) == [200]
