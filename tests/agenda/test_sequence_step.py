"""A sequence step "create a task": saved through the API and the builder, run by the nurture tick once per lead,
for the lead's owner, due the step's hours later."""

from datetime import timedelta

import pytest
from django.utils import timezone

from agenda.models import Task
from nurturing import services
from nurturing.models import Enrollment
from tests.nurturing.test_sequences import make_lead, make_sequence, run

pytestmark = pytest.mark.django_db

STEP = {"type": "create_task", "task_type": "call", "due_hours": 4, "note": "Call the lead"}


def test_the_tick_plans_one_call_for_the_owner_due_hours_later(org, member):
    owner = member("rep", email="rep@acme.test")
    sequence = make_sequence(org, [STEP, {"type": "wait", "days": 1}])
    lead, orphan = make_lead(org, owner=owner), make_lead(org, email="orphan@example.com")
    services.enroll(sequence=sequence, leads=[lead.pk, orphan.pk])
    now = timezone.now()
    run(now=now)
    run(now=now + timedelta(minutes=5))  # a second tick plans nothing more
    task = Task.objects.get()
    assert (task.lead, task.owner, task.type, task.note) == (lead, owner, "call", "Call the lead")
    assert task.due_at == now + timedelta(hours=4) and task.remind_at == task.due_at
    assert Enrollment.objects.get(lead=lead).position == 2  # went on to the wait


def test_the_api_saves_and_shows_the_step_and_refuses_bad_ones(org, api):
    body = {"name": "Follow up", "steps": [STEP]}
    response = api.post("/api/v1/sequences/", body, format="json")
    assert response.status_code == 201, response.json()
    shown = response.json()["steps"][0]
    assert (shown["type"], shown["task_type"], shown["due_hours"], shown["note"]) == (
        "create_task",
        "call",
        4,
        "Call the lead",
    )
    bad = api.post(
        "/api/v1/sequences/",
        {"name": "Bad", "steps": [{"type": "create_task", "task_type": "fax", "due_hours": -1}]},
        format="json",
    )
    assert bad.status_code == 400
    assert {"steps.0.task_type", "steps.0.due_hours"} <= set(bad.json()["errors"])


def test_the_builder_adds_a_task_step_by_clicks(org, browser):
    page = browser.post("/emails/sequences/new/", {"name": "Builder", "step_count": "0", "action": "add-create_task"})
    assert page.status_code == 200
    content = page.content.decode()
    assert 'name="s0-task_type"' in content and "Plan a call for the lead&#x27;s owner, due at once" in content
    saved = browser.post(
        "/emails/sequences/new/",
        {
            "name": "Builder",
            "entry_type": "manual",
            "step_count": "1",
            "s0-type": "create_task",
            "s0-task_type": "meeting",
            "s0-due_hours": "24",
            "s0-task_note": "Book a demo",
            "action": "save",
        },
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    from nurturing.models import SequenceStep

    step = SequenceStep.objects.get()
    assert step.config == {"task_type": "meeting", "due_hours": 24, "note": "Book a demo"}
