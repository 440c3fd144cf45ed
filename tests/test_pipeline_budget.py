"""What a captured lead costs, from the POST to its rep's notification: statements of the request, tasks and
statements of the work it causes. A change that adds a statement or a task to this hot path fails here; raise a
budget only on purpose, with the speed-to-lead benchmark's figures beside it (bench/speed_to_lead.py)."""

from collections import Counter

import pytest
from celery import signals
from django.db import connection
from django.test.utils import CaptureQueriesContext

from leadcrm import events
from leadcrm.celery import app as celery_app
from leads.models import Lead
from routing.models import Notification
from tests.routing import make_rep, make_rule, make_team
from tests.scoring import fit, set_rules

LEADS = 10
REPS = 3

CAPTURE_STATEMENTS = 3  # the key's org and the key, then one statement of lead, touch, activity, outbox (+ NOTIFY)
# Everything the leads cause (deliveries, scoring, routing, notifications), for LEADS leads captured together:
TASKS = {"scoring.tasks.score_leads": 1, "routing.tasks.route_leads": 1, "routing.tasks.email_notifications": 1}
WORK_STATEMENTS_PER_LEAD = 5  # 43 for ten leads delivered together, when this was written (67 before the relay's
# claim returned the rows it leased, and before one transaction covered the messages to every rep)
# The tenant scope, set per transaction (leadcrm/rls.py) and pipelined with the statement it scopes: one more
# statement each, no more round trips (a transaction's BEGIN rides in the same pipeline). Not in the counts above:
# the connection counts them apart (rls_statements). The test process logs in as the owner, so its unscoped
# statements take the app role too (SET LOCAL ROLE); a web process logs in as the app role, where they cost nothing:
# 2 per capture there (the key, read in autocommit under its org, and the capture's transaction).
SCOPE_STATEMENTS_PER_CAPTURE = 3  # + the key's org, looked up unscoped; measured: 3 (4 for the key's first request)
SCOPE_STATEMENTS_PER_LEAD = 2  # 15 for ten leads delivered together, when this was written


@pytest.fixture
def published():
    """The tasks enqueued meanwhile, as (name, args, kwargs), in order."""
    tasks = []

    def record(sender=None, body=None, **_):
        args, kwargs, _embed = body
        tasks.append((sender, args, kwargs))

    signals.before_task_publish.connect(record, weak=False)
    try:
        yield tasks
    finally:
        signals.before_task_publish.disconnect(record)
        celery_app.control.purge()  # they were run here


def run_everything(published) -> Counter:
    """As the workers would: the relay delivers due events, the tasks they enqueue run, until nothing is left."""
    ran = Counter()
    while True:
        events.deliver_due()
        if not published:
            return ran
        while published:
            name, args, kwargs = published.pop(0)
            celery_app.tasks[name].apply(args=args, kwargs=kwargs).get()
            ran[name] += 1


@pytest.mark.django_db(transaction=True)
def test_a_captured_lead_stays_within_its_budget_of_statements_and_tasks(org, api, settings, published):
    settings.OUTBOX_RELAY = True
    set_rules(org, fit(60, {"field": "job_title", "op": "contains", "value": "director"}), mql_score=50,
              mql_min_grade="F")
    reps = [make_rep(org) for _ in range(REPS)]
    make_rule(org, team=make_team(org, "Inbound", reps))

    per_capture, scope_per_capture = [], []
    for n in range(LEADS):
        scoped_before = scope_statements()
        with CaptureQueriesContext(connection) as queries:
            response = api.post("/api/v1/leads/", {"email": f"lead{n}@example.com", "job_title": "Sales Director"},
                                format="json")
        assert response.status_code == 201
        per_capture.append(len(queries))
        scope_per_capture.append(scope_statements() - scoped_before)
    assert published == []  # the request hands its events to the relay, and nothing to the broker
    # (The key's first request also stamps when it was last used, at most once a minute.)
    assert max(per_capture[1:]) <= CAPTURE_STATEMENTS, per_capture
    assert max(scope_per_capture[1:]) <= SCOPE_STATEMENTS_PER_CAPTURE, scope_per_capture

    scoped_before = scope_statements()
    with CaptureQueriesContext(connection) as queries:
        ran = run_everything(published)
    scoped_work = scope_statements() - scoped_before
    leads = Lead.objects.for_org(org)
    assert leads.filter(owner__isnull=False, lifecycle_stage="mql").count() == LEADS
    assert Notification.objects.filter(organization=org, lead__in=leads).count() == LEADS
    assert ran == Counter(TASKS)
    assert len(queries) <= WORK_STATEMENTS_PER_LEAD * LEADS, len(queries)
    assert scoped_work <= SCOPE_STATEMENTS_PER_LEAD * LEADS, scoped_work


def scope_statements() -> int:
    return getattr(connection, "rls_statements", 0)
