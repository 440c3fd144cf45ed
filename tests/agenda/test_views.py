"""The browser side of tasks: plan from the lead page, the queue, a deal and the leads list; complete and schedule
the next; snooze; the today view; the team page's overdue counts."""

from datetime import timedelta

import pytest
from django.utils import timezone

from agenda.models import Task
from leadcrm.models import Role
from leads.models import Account, Activity, Deal, Temperature
from routing.models import LeadRouting, RepProfile
from tests.routing import make_lead, make_rep, make_rule, make_team, route

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann(org):
    return make_rep(
        org,
        "ann",
        working_hours={"timezone": "Europe/Berlin", "days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"},
    )


@pytest.fixture
def signed_in(client, ann):
    client.force_login(ann.user)
    return client


def test_planning_a_task_from_the_lead_page_reads_the_time_in_the_owners_zone(org, signed_in, ann):
    lead = make_lead(org, owner=ann.user, first_name="Ada")
    page = signed_in.get(f"/tasks/new/?lead={lead.pk}")
    assert page.status_code == 200 and "In Europe/Berlin time" in page.content.decode()
    response = signed_in.post(
        "/tasks/new/",
        {
            "lead": str(lead.pk),
            "type": "call",
            "due_at": "2030-06-03T09:30",
            "note": "<script>alert(1)</script>",
            "owner": ann.user.pk,
        },
    )
    assert response.status_code == 302 and response["Location"] == f"/leads/{lead.pk}/"
    task = Task.objects.get()
    assert task.due_at.isoformat() == "2030-06-03T07:30:00+00:00" and task.owner == ann.user
    card = signed_in.get(f"/leads/{lead.pk}/tasks/", HTTP_HX_REQUEST="true").content.decode()
    assert "Mon 3 Jun 09:30" in card and "&lt;script&gt;" in card and "<script>alert" not in card


def test_bad_input_shows_form_errors_and_plans_nothing(org, signed_in, ann):
    lead = make_lead(org, owner=ann.user)
    response = signed_in.post("/tasks/new/", {"lead": str(lead.pk), "type": "fax", "due_at": "soon"})
    assert response.status_code == 400
    content = response.content.decode()
    assert "Not planned" in content and "Enter a valid date/time." in content
    assert not Task.objects.exists()


def test_a_rep_cannot_plan_on_another_reps_lead(org, signed_in):
    bob = make_rep(org, "bob")
    lead = make_lead(org, owner=bob.user)
    assert signed_in.get(f"/tasks/new/?lead={lead.pk}").status_code == 404
    assert (
        signed_in.post("/tasks/new/", {"lead": str(lead.pk), "type": "call", "due_at": "2030-06-03T09:30"}).status_code
        == 404
    )


def test_completing_logs_the_call_and_offers_to_schedule_the_next(
    org, signed_in, ann, django_capture_on_commit_callbacks
):
    make_rule(org, "Ann", strategy="rep", rep=ann, sla_minutes=30)
    lead = make_lead(org, first_name="Ada")
    route(lead)
    task = Task.objects.create(
        organization=org, lead=lead, owner=ann.user, due_at=timezone.now(), remind_at=timezone.now()
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(f"/tasks/{task.pk}/done/", {"outcome": "connected", "next": "/today/"})
    assert response.status_code == 302
    assert response["Location"].startswith(f"/tasks/new/?lead={lead.pk}&type=call&after={task.pk}")
    assert Activity.objects.filter(lead=lead, type="call", properties__outcome="connected").exists()
    assert LeadRouting.objects.get(lead=lead).first_touch_at is not None
    offer = signed_in.get(response["Location"]).content.decode()
    assert "Schedule the next one?" in offer and "(Connected)" in offer
    timeline = signed_in.get(f"/leads/{lead.pk}/").content.decode()
    assert "Connected" in timeline


def test_a_wrong_outcome_is_a_form_error(org, signed_in, ann):
    lead = make_lead(org, owner=ann.user)
    task = Task.objects.create(organization=org, lead=lead, owner=ann.user, due_at=timezone.now(), type="meeting")
    response = signed_in.post(f"/tasks/{task.pk}/done/", {"outcome": "busy"})
    assert response.status_code == 400 and "Not done" in response.content.decode()
    assert Task.objects.get().done_at is None


def test_snooze_and_move(org, signed_in, ann):
    lead = make_lead(org, owner=ann.user)
    task = Task.objects.create(organization=org, lead=lead, owner=ann.user, due_at=timezone.now() - timedelta(hours=2))
    assert signed_in.post(f"/tasks/{task.pk}/snooze/", {"snooze": "1d"}).status_code == 302
    task.refresh_from_db()
    assert task.due_at > timezone.now() + timedelta(hours=23) and task.remind_at == task.due_at
    assert signed_in.post(f"/tasks/{task.pk}/snooze/", {"due_at": "2030-01-02T08:00"}).status_code == 302
    task.refresh_from_db()
    assert task.due_at.isoformat() == "2030-01-02T07:00:00+00:00"
    assert signed_in.post(f"/tasks/{task.pk}/snooze/", {"snooze": "forever"}).status_code == 400


def test_today_lists_overdue_then_new_leads_then_due_today_then_hot(org, signed_in, ann, django_assert_max_num_queries):
    now = timezone.now()
    RepProfile.objects.filter(user=ann.user).update(working_hours={})  # the viewer's zone: UTC here
    make_rule(org, "Ann", strategy="rep", rep=ann, sla_minutes=30)
    fresh = make_lead(org, first_name="Fresh")
    route(fresh)
    mine = make_lead(org, owner=ann.user, first_name="Planned")
    hot = make_lead(org, owner=ann.user, first_name="Blazing")
    hot.temperature, hot.last_activity_at = Temperature.HOT, now - timedelta(hours=1)
    hot.save(update_fields=["temperature", "last_activity_at"])
    overdue = Task.objects.create(
        organization=org, lead=mine, owner=ann.user, due_at=now - timedelta(hours=1), note="Overdue call"
    )
    end_of_day = now.replace(hour=23, minute=59, second=0)
    later = Task.objects.create(
        organization=org, lead=mine, owner=ann.user, due_at=max(end_of_day, now), type="email", note="Later email"
    )
    Task.objects.create(organization=org, lead=mine, owner=ann.user, due_at=now + timedelta(days=3), note="Next week")
    with django_assert_max_num_queries(12):
        page = signed_in.get("/today/").content.decode()
    order = [page.index(marker) for marker in ("Overdue call", "Fresh", "Later email", "Blazing")]
    assert order == sorted(order), order
    assert "Next week" not in page and "1 overdue" in page
    assert later.pk and overdue.pk


def test_today_flags_the_reps_deals_rotting_in_their_stage(org, signed_in, ann):
    from leads.models import Stage
    from tests.leads.deals import make_deal

    Stage.objects.for_org(org).filter(name="Proposal").update(rotting_days=7)
    make_deal(org, stage_name="Proposal", owner=ann.user, days_in_stage=9, name="Stalled <b>renewal</b>")
    make_deal(org, stage_name="Proposal", owner=ann.user, days_in_stage=2, name="Moving along")
    page = signed_in.get("/today/").content.decode()
    assert "1 deal rotting" in page and "Stalled &lt;b&gt;renewal&lt;/b&gt;" in page
    assert "Moving along" not in page and "over its 7 days" in page


def test_bulk_from_the_leads_list_asks_then_plans_one_per_lead(org, client, member):
    manager = member(Role.MANAGER)
    ann, bob = make_rep(org, "ann"), make_rep(org, "bob")
    make_team(org, "East", [ann, bob], manager=manager)
    leads = [make_lead(org, owner=ann.user), make_lead(org, owner=bob.user)]
    client.force_login(manager)
    listing = client.get("/leads/").content.decode()
    assert "Add task…" in listing
    ask = client.post("/tasks/bulk/", {"lead": [str(lead.pk) for lead in leads], "next": "/leads/"})
    assert ask.status_code == 200 and "Plan a task for 2 leads" in ask.content.decode()
    done = client.post(
        "/tasks/bulk/",
        {
            "lead": [str(lead.pk) for lead in leads],
            "type": "email",
            "due_at": "2030-01-02T10:00",
            "owner": "",
            "next": "/leads/",
        },
    )
    assert done.status_code == 302
    assert sorted(Task.objects.values_list("owner_id", flat=True)) == sorted([ann.user.pk, bob.user.pk])


def test_the_deal_card_and_queue_row_link_to_a_new_task(org, signed_in, ann):
    lead = make_lead(org, owner=ann.user, lifecycle_stage="sql")
    account = Account.objects.create(organization=org, name="Engines")
    deal = Deal.objects.create(organization=org, account=account, lead=lead, name="Engine", amount=5, owner=ann.user)
    page = signed_in.get(f"/leads/{lead.pk}/").content.decode()
    assert f"/tasks/new/?deal={deal.pk}" in page and f'hx-get="/leads/{lead.pk}/tasks/"' in page
    assert f"/tasks/new/?lead={lead.pk}" in signed_in.get("/queue/").content.decode()
    response = signed_in.post("/tasks/new/", {"deal": str(deal.pk), "type": "meeting", "due_at": "2030-01-02T10:00"})
    assert response.status_code == 302 and Task.objects.get().deal == deal


def test_the_account_page_links_to_a_task_on_the_account(org, signed_in, ann):
    account = Account.objects.create(organization=org, name="Engines", owner=ann.user)
    page = signed_in.get(f"/accounts/{account.pk}/").content.decode()
    assert f"/tasks/new/?account={account.pk}&amp;next=/accounts/{account.pk}/" in page
    assert signed_in.get(f"/tasks/new/?account={account.pk}").status_code == 200
    response = signed_in.post(
        "/tasks/new/", {"account": str(account.pk), "type": "call", "due_at": "2030-01-02T10:00", "owner": ""}
    )
    assert response.status_code == 302 and Task.objects.get().account == account


def test_the_team_page_shows_each_reps_overdue_tasks(org, client, member):
    manager = member(Role.MANAGER)
    ann, bob = make_rep(org, "ann"), make_rep(org, "bob")
    make_team(org, "East", [ann, bob], manager=manager)
    lead = make_lead(org, owner=ann.user)
    past = timezone.now() - timedelta(hours=1)
    Task.objects.bulk_create([Task(organization=org, lead=lead, owner=ann.user, due_at=past) for _ in range(3)])
    client.force_login(manager)
    page = client.get("/team/").content.decode()
    assert "Overdue tasks" in page
    row = page[page.index("ann@acme.test") : page.index("bob@acme.test")]
    assert '<strong class="sla-overdue">3</strong>' in row
