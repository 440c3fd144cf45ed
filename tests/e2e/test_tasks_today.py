"""A rep plans a follow-up from the lead page by clicking, finds it on /today/, completes it (the call lands on the
timeline and stops the first-touch clock) and schedules the next one — at desktop and phone width, by keyboard for
the last step."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from agenda.models import Task
from leadcrm import services as tenancy
from leadcrm.models import Role
from leads.models import Activity
from routing.models import LeadRouting

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REP_EMAIL, REP_PASSWORD = "tess@acme.test", "pw-tess-1234"
ZONE = "Europe/Berlin"


@pytest.fixture
def routed_lead(org):
    from routing import services as routing
    from routing.models import RepProfile
    from tests.routing import make_lead

    rep = tenancy.add_member(organization=org, email=REP_EMAIL, password=REP_PASSWORD, role=Role.REP).user
    profile = RepProfile.objects.get(organization=org, user=rep)
    routing.update_rep(
        profile=profile,
        data={"working_hours": {"timezone": ZONE, "days": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "23:59"}},
    )
    routing.save_rule(
        organization_id=org.pk, data={"name": "Tess", "strategy": "rep", "rep": profile, "sla_minutes": 60}
    )
    lead = make_lead(org, first_name="Grace", last_name="Hopper", company="<Cobol> & Sons")
    routing.route_lead(organization_id=org.pk, lead_id=lead.pk)
    return rep, lead


def _no_sideways_scroll(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_a_rep_plans_finds_completes_and_reschedules_a_call(routed_lead, page, login, shot):
    rep, lead = routed_lead
    login(REP_EMAIL, REP_PASSWORD)
    page.get_by_role("link", name="Today", exact=True).first.click()
    page.wait_for_url(re.compile(r"/today/$"))
    item = page.locator("li.task-item", has_text="Grace Hopper")
    expect(item).to_contain_text("left for the first touch")
    shot("today-new-lead")

    item.get_by_role("link", name="Grace Hopper").click()
    page.wait_for_url(re.compile(rf"/leads/{lead.pk}/$"))
    expect(page.locator("#tasks")).to_contain_text("No tasks yet")
    page.locator("#add-task").click()
    page.wait_for_url(re.compile(r"/tasks/new/"))
    expect(page.get_by_text(f"In {ZONE} time")).to_be_visible()
    page.get_by_label("Call").check()
    # half an hour ago, on the rep's clock: logging late is allowed, and shows as overdue
    due = timezone.now() - timedelta(minutes=30)
    local = due.astimezone(ZoneInfo(ZONE))
    page.get_by_label("Due").fill(local.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Note").fill("Ask about the <budget> & timing")
    shot("new-task-form")
    page.get_by_role("button", name="Plan task").click()
    page.wait_for_url(re.compile(rf"/leads/{lead.pk}/$"))
    card = page.locator("#tasks")
    expect(card).to_contain_text("Ask about the <budget> & timing")
    expect(card).to_contain_text("overdue")
    shot("lead-page-with-task")
    task = Task.objects.get()
    assert task.owner == rep and abs((task.due_at - due).total_seconds()) < 60

    page.get_by_role("link", name="Today", exact=True).first.click()
    row = page.locator(f"#task-{task.pk}")
    expect(row).to_contain_text("overdue")
    expect(page.locator(".today-counts")).to_contain_text("1 overdue")
    shot("today-with-overdue-task")
    page.set_viewport_size({"width": 390, "height": 844})
    expect(row.get_by_role("button", name=re.compile("^Done"))).to_be_visible()
    assert _no_sideways_scroll(page)
    shot("today-phone-with-overdue-task")
    page.set_viewport_size({"width": 1280, "height": 900})
    row.locator("select[name=outcome]").select_option(label="Connected")
    row.get_by_role("button", name=re.compile("^Done")).click()
    page.wait_for_url(re.compile(r"/tasks/new/\?lead="))
    expect(page.get_by_role("heading", name="Schedule the next one?")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Connected")).to_be_visible()
    shot("schedule-the-next-one")
    assert Activity.objects.filter(lead=lead, type="call", properties__outcome="connected").exists()
    assert LeadRouting.objects.get(lead=lead).first_touch_at is not None

    # by keyboard: the form is filled in (a call, a day later); focus the button and press Enter
    page.get_by_label("Note").fill("Second call: the proposal")
    page.get_by_role("button", name="Schedule it").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/today/$"))
    expect(page.get_by_role("status").first).to_contain_text("Call planned for Grace Hopper")
    assert Task.objects.filter(done_at__isnull=True, note="Second call: the proposal").count() == 1

    page.goto(f"/leads/{lead.pk}/")
    expect(page.locator("#timeline")).to_contain_text("Connected")
    expect(page.locator("#tasks")).to_contain_text("Second call: the proposal")
    shot("timeline-has-the-call")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/today/")
    assert _no_sideways_scroll(page)
    shot("today-phone")
    page.goto(f"/leads/{lead.pk}/")
    expect(page.locator("#tasks")).to_contain_text("Second call")
    assert _no_sideways_scroll(page)
    shot("lead-tasks-phone")
