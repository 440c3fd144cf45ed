"""The tasks API: create, read, change, complete, delete; filters and pages; who sees what; bad input."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from agenda.models import Task
from leadcrm.models import Role
from leads.models import Account, Activity, Deal
from routing.models import LeadRouting
from tests.routing import make_lead, make_rep, make_rule, make_team, route

pytestmark = pytest.mark.django_db


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def owned(org):
    """A lead routed to the rep Ann, her first-touch clock running."""
    ann = make_rep(org, "ann")
    make_rule(org, "Ann", strategy="rep", rep=ann, sla_minutes=30)
    lead = make_lead(org, first_name="Ada", last_name="Lovelace")
    route(lead)
    assert LeadRouting.objects.get(lead=lead).sla_due_at is not None
    return lead, ann.user


def _due(hours=2):
    return (timezone.now() + timedelta(hours=hours)).isoformat()


def test_a_rep_plans_a_call_on_her_lead_and_it_is_hers_by_default(owned):
    lead, ann = owned
    response = session(ann).post(
        "/api/v1/tasks/",
        {"lead": str(lead.pk), "type": "call", "due_at": _due(), "note": "Ask about the budget"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["lead"], body["owner"], body["type"], body["done"], body["overdue"]) == (
        str(lead.pk),
        ann.pk,
        "call",
        False,
        False,
    )
    assert body["target"] == "Ada Lovelace"
    assert session(ann).get(f"/api/v1/tasks/{body['id']}/").json()["note"] == "Ask about the budget"


def test_a_due_time_without_offset_is_read_in_the_owners_time_zone(owned, org):
    lead, ann = owned
    from routing.models import RepProfile

    RepProfile.objects.filter(organization=org, user=ann).update(
        working_hours={"timezone": "America/New_York", "days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}
    )
    response = session(ann).post(
        "/api/v1/tasks/", {"lead": str(lead.pk), "due_at": "2030-01-15T09:00:00"}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert Task.objects.get().due_at.isoformat() == "2030-01-15T14:00:00+00:00"


def test_a_past_due_time_is_allowed_and_flagged_overdue(owned):
    lead, ann = owned
    response = session(ann).post("/api/v1/tasks/", {"lead": str(lead.pk), "due_at": _due(-3)}, format="json")
    assert response.status_code == 201 and response.json()["overdue"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "fax", "due_at": "2030-01-01T09:00:00Z"}, "type"),
        ({"due_at": "tomorrow-ish"}, "due_at"),
        ({}, "due_at"),
        ({"due_at": "2030-01-01T09:00:00Z", "note": "x" * 10_001}, "note"),
        ({"due_at": "2030-01-01T09:00:00Z", "owner": 999999}, "owner"),
        ({"due_at": "2030-01-01T09:00:00Z", "colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(owned, api, body, field):
    lead, _ = owned
    response = api.post("/api/v1/tasks/", {"lead": str(lead.pk), **body}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not Task.objects.exists()


def test_a_task_names_exactly_one_target(owned, api, org):
    lead, _ = owned
    account = Account.objects.create(organization=org, name="Analytical Engines")
    none = api.post("/api/v1/tasks/", {"due_at": _due()}, format="json")
    both = api.post(
        "/api/v1/tasks/", {"lead": str(lead.pk), "account": str(account.pk), "due_at": _due()}, format="json"
    )
    assert none.status_code == both.status_code == 400
    assert not Task.objects.exists()


def test_another_orgs_lead_is_a_400_and_a_reps_view_of_anothers_lead_too(owned, other_org, org):
    lead, ann = owned
    rival = make_lead(other_org)
    bob = make_rep(org, "bob").user
    for client, target in ((session(ann), rival), (session(bob), lead)):
        response = client.post("/api/v1/tasks/", {"lead": str(target.pk), "due_at": _due()}, format="json")
        assert response.status_code == 400 and "lead" in response.json()["errors"]
    assert not Task.objects.exists()


def test_idempotency_key_creates_once(owned, api):
    lead, _ = owned
    body = {"lead": str(lead.pk), "due_at": _due()}
    first = api.post("/api/v1/tasks/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = api.post("/api/v1/tasks/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    assert again["Idempotent-Replayed"] == "true" and Task.objects.count() == 1


def test_completing_a_call_logs_it_with_its_outcome_and_stops_the_sla_clock(owned, django_capture_on_commit_callbacks):
    lead, ann = owned
    task_id = session(ann).post("/api/v1/tasks/", {"lead": str(lead.pk), "due_at": _due()}, format="json").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = session(ann).patch(
            f"/api/v1/tasks/{task_id}/", {"done": True, "outcome": "left_voicemail"}, format="json"
        )
    assert response.status_code == 200, response.json()
    assert response.json()["done"] is True and response.json()["outcome"] == "left_voicemail"
    activity = Activity.objects.get(lead=lead, type="call")
    assert activity.properties["outcome"] == "left_voicemail" and activity.actor == ann
    routing = LeadRouting.objects.get(lead=lead)
    assert routing.sla_due_at is None and routing.first_touch_at is not None
    again = session(ann).patch(f"/api/v1/tasks/{task_id}/", {"done": True}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "task_done"
    assert Activity.objects.filter(lead=lead, type="call").count() == 1


def test_a_wrong_outcome_is_refused_and_the_task_stays_open(owned):
    lead, ann = owned
    task_id = (
        session(ann)
        .post("/api/v1/tasks/", {"lead": str(lead.pk), "type": "meeting", "due_at": _due()}, format="json")
        .json()["id"]
    )
    response = session(ann).patch(
        f"/api/v1/tasks/{task_id}/", {"done": True, "outcome": "left_voicemail"}, format="json"
    )
    assert response.status_code == 400 and "outcome" in response.json()["errors"]
    assert Task.objects.get().done_at is None and not Activity.objects.filter(type="meeting").exists()


def test_a_todo_completes_without_an_activity(owned):
    lead, ann = owned
    task_id = (
        session(ann)
        .post("/api/v1/tasks/", {"lead": str(lead.pk), "type": "todo", "due_at": _due()}, format="json")
        .json()["id"]
    )
    assert session(ann).patch(f"/api/v1/tasks/{task_id}/", {"done": True}, format="json").json()["done"] is True
    assert not Activity.objects.filter(lead=lead, type__in=["call", "email_logged", "meeting"]).exists()


def test_patch_reschedules_and_rearms_the_reminder_then_delete(owned):
    lead, ann = owned
    client = session(ann)
    task_id = client.post("/api/v1/tasks/", {"lead": str(lead.pk), "due_at": _due()}, format="json").json()["id"]
    Task.objects.filter(pk=task_id).update(remind_at=None, reminded_at=timezone.now())
    later = "2031-03-01T10:00:00+00:00"
    response = client.patch(f"/api/v1/tasks/{task_id}/", {"due_at": later, "note": "moved"}, format="json")
    assert response.status_code == 200 and response.json()["due_at"].startswith("2031-03-01T10:00:00")
    task = Task.objects.get()
    assert task.remind_at == task.due_at and task.reminded_at is None and task.note == "moved"
    assert client.delete(f"/api/v1/tasks/{task_id}/").status_code == 204
    assert not Task.objects.exists()


def test_filters_owner_due_before_and_status(owned, org, api):
    lead, ann = owned
    bob = make_rep(org, "bob").user
    now = timezone.now()
    past = Task.objects.create(organization=org, lead=lead, owner=ann, due_at=now - timedelta(hours=1))
    future = Task.objects.create(organization=org, lead=lead, owner=ann, due_at=now + timedelta(days=2))
    done = Task.objects.create(organization=org, lead=lead, owner=bob, due_at=now - timedelta(days=1), done_at=now)

    def ids(query):
        response = api.get(f"/api/v1/tasks/?{query}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids("") == [str(done.pk), str(past.pk), str(future.pk)]  # by due time
    assert ids(f"owner={ann.pk}") == [str(past.pk), str(future.pk)]
    assert ids("status=overdue") == [str(past.pk)]
    assert ids("status=done") == [str(done.pk)]
    assert ids("status=open") == [str(past.pk), str(future.pk)]
    before = (now + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"due_before={before}&status=open") == [str(past.pk)]
    assert api.get("/api/v1/tasks/?status=someday").status_code == 400


def test_keyset_pages_reach_every_task_once_in_few_queries(owned, org, api, django_assert_max_num_queries):
    lead, ann = owned
    now = timezone.now()
    Task.objects.bulk_create(
        [Task(organization=org, lead=lead, owner=ann, due_at=now + timedelta(minutes=i % 7)) for i in range(25)]
    )
    seen, url = [], "/api/v1/tasks/?page_size=10"
    while url:
        with django_assert_max_num_queries(8):
            body = api.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
    assert len(seen) == len(set(seen)) == 25


def test_who_sees_which_tasks(org, member):
    ann, bob, cy = make_rep(org, "ann"), make_rep(org, "bob"), make_rep(org, "cy")
    manager = member(Role.MANAGER)
    make_team(org, "East", [ann, bob], manager=manager)
    marketer = member(Role.MARKETER)
    lead = make_lead(org, owner=ann.user)
    due = timezone.now() + timedelta(hours=1)
    tasks = {
        name: Task.objects.create(
            organization=org, lead=lead if name == "ann" else make_lead(org, owner=rep.user), owner=rep.user, due_at=due
        )
        for name, rep in (("ann", ann), ("bob", bob), ("cy", cy))
    }
    # Cy was given a task on Ann's lead: Ann sees it too (it is on her lead)
    on_anns_lead = Task.objects.create(organization=org, lead=lead, owner=cy.user, due_at=due)

    def visible(user):
        return {row["id"] for row in session(user).get("/api/v1/tasks/").json()["results"]}

    assert visible(ann.user) == {str(tasks["ann"].pk), str(on_anns_lead.pk)}
    assert visible(cy.user) == {str(tasks["cy"].pk), str(on_anns_lead.pk)}
    assert visible(manager) == {str(tasks["ann"].pk), str(tasks["bob"].pk)}
    assert len(visible(marketer)) == 4
    # a rep cannot read, change or delete another rep's task: 404
    assert session(bob.user).get(f"/api/v1/tasks/{tasks['cy'].pk}/").status_code == 404
    assert session(bob.user).patch(f"/api/v1/tasks/{tasks['cy'].pk}/", {"note": "x"}, format="json").status_code == 404
    assert session(bob.user).delete(f"/api/v1/tasks/{tasks['cy'].pk}/").status_code == 404
    # a rep gives tasks only to herself; a manager to his team's reps, not to others
    lead_of_bob = tasks["bob"].lead
    refused = session(bob.user).post(
        "/api/v1/tasks/", {"lead": str(lead_of_bob.pk), "due_at": due.isoformat(), "owner": ann.user.pk}, format="json"
    )
    assert refused.status_code == 400 and "owner" in refused.json()["errors"]
    given = session(manager).post(
        "/api/v1/tasks/", {"lead": str(lead_of_bob.pk), "due_at": due.isoformat(), "owner": ann.user.pk}, format="json"
    )
    assert given.status_code == 201
    outside = session(manager).post(
        "/api/v1/tasks/", {"lead": str(lead_of_bob.pk), "due_at": due.isoformat(), "owner": cy.user.pk}, format="json"
    )
    assert outside.status_code == 400


def test_bulk_creates_one_task_per_lead_for_each_leads_owner(org, api, other_org):
    ann, bob = make_rep(org, "ann"), make_rep(org, "bob")
    leads = [make_lead(org, owner=ann.user), make_lead(org, owner=bob.user), make_lead(org, owner=ann.user)]
    due = (timezone.now() + timedelta(days=1)).isoformat()
    response = api.post(
        "/api/v1/tasks/bulk/",
        {"leads": [str(lead.pk) for lead in leads], "type": "email", "due_at": due, "note": "Send the case study"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="bulk-1",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["created"] == 3
    assert sorted(Task.objects.values_list("owner_id", flat=True)) == sorted([ann.user.pk, ann.user.pk, bob.user.pk])
    rival = make_lead(other_org)
    refused = api.post(
        "/api/v1/tasks/bulk/", {"leads": [str(leads[0].pk), str(rival.pk)], "due_at": due}, format="json"
    )
    assert refused.status_code == 400 and refused.json()["code"] == "unknown_leads"
    assert Task.objects.count() == 3


def test_a_task_on_a_deal_defaults_to_the_deal_owner_and_completion_logs_on_its_lead(org, api, member):
    ann = make_rep(org, "ann").user
    lead = make_lead(org, owner=ann)
    account = Account.objects.create(organization=org, name="Analytical Engines")
    deal = Deal.objects.create(organization=org, account=account, lead=lead, name="Engine", amount=10, owner=ann)
    response = api.post("/api/v1/tasks/", {"deal": str(deal.pk), "type": "meeting", "due_at": _due()}, format="json")
    assert (
        response.status_code == 201 and response.json()["owner"] == ann.pk and response.json()["deal"] == str(deal.pk)
    )
    done = api.patch(f"/api/v1/tasks/{response.json()['id']}/", {"done": True, "outcome": "held"}, format="json")
    assert done.status_code == 200
    assert Activity.objects.filter(lead=lead, type="meeting", properties__outcome="held").exists()


def test_a_change_with_a_refused_completion_changes_nothing(owned):
    lead, ann = owned
    task_id = (
        session(ann)
        .post("/api/v1/tasks/", {"lead": str(lead.pk), "due_at": _due(), "note": "first"}, format="json")
        .json()["id"]
    )
    response = session(ann).patch(
        f"/api/v1/tasks/{task_id}/", {"note": "changed", "done": True, "outcome": "held"}, format="json"
    )
    assert response.status_code == 400 and "outcome" in response.json()["errors"]
    task = Task.objects.get()
    assert task.note == "first" and task.done_at is None
