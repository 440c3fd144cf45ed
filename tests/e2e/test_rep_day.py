"""A rep's day in the browser: a qualifying lead arrives in the queue without a reload, the rep logs a call,
accepts and qualifies it, converts it to a deal and wins the deal."""

import re
import time

import pytest

from leadcrm import services as tenancy
from leadcrm.models import Role
from leads.models import Activity, Deal, Lead, QualificationSettings

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

REP_EMAIL, REP_PASSWORD = "closer@acme.test", "pw-closer-123"


def _wait_for(check, seconds=30):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.fixture
def sales_org(org):
    """An org whose VPs qualify at capture and go round robin to the one rep of its Sales team; no BANT needed."""
    from routing import services as routing
    from routing.models import RepProfile
    from tests.scoring import fit, set_rules

    set_rules(org, fit(60, {"field": "job_title", "op": "contains", "value": "VP"}), mql_score=50, mql_min_grade="F")
    QualificationSettings.objects.update_or_create(organization=org, defaults={"bant_required_for_sql": []})
    rep = tenancy.add_member(organization=org, email=REP_EMAIL, password=REP_PASSWORD, role=Role.REP).user
    team = routing.save_team(organization_id=org.pk, data={
        "name": "Sales", "members": [RepProfile.objects.get(organization=org, user=rep)]})
    routing.save_rule(organization_id=org.pk, data={"name": "All", "strategy": "round_robin", "team": team,
                                                    "sla_minutes": 15})
    return rep


def test_a_rep_works_a_new_lead_from_queue_to_won_deal(sales_org, api, e2e_worker, smtp_server, site, page, login,
                                                       shot):
    rep = sales_org
    login(REP_EMAIL, REP_PASSWORD)
    page.goto("/queue/")
    expect(page.get_by_text("Your queue is empty.")).to_be_visible()
    badge = page.locator("li.queue-nav .queue-count")
    expect(badge).to_have_text("0")
    shot("empty-queue")

    response = api.post("/api/v1/leads/", {
        "email": "vera@example.com", "first_name": "Vera", "last_name": "Vance", "job_title": "VP Sales",
        "company": "Vance <Labs> & Co"}, format="json")
    assert response.status_code == 201, response.content
    lead_id = response.json()["id"]

    # Nobody reloads: the badge polls every 5 s and counts the lead once the worker has scored and routed it.
    expect(badge).to_have_text("1", timeout=30_000)
    assert page.get_by_text("Your queue is empty.").is_visible()  # the table itself is not refreshed
    shot("badge-counts-the-new-lead")
    page.locator("li.queue-nav a", has_text="Queue").first.click()
    row = page.locator(f"#q-{lead_id}")
    expect(row).to_contain_text("Vera Vance")
    expect(row).to_contain_text("Vance <Labs> & Co")  # shown as text, not markup
    expect(row).to_contain_text("Marketing qualified")
    shot("lead-in-queue")
    assert Lead.objects.get(pk=lead_id).owner_id == rep.pk
    _wait_for(lambda: smtp_server.messages)
    assert smtp_server.messages[0]["To"] == REP_EMAIL
    assert f"{site}/leads/{lead_id}/" in smtp_server.messages[0].get_content()

    row.locator("select[name=type]").select_option("call")
    row.locator("input[name=note]").fill("Intro call: wants a demo")
    row.get_by_role("button", name="Log").click()
    expect(row).to_contain_text("Call logged for")
    shot("call-logged")
    assert Activity.objects.filter(lead_id=lead_id, type="call").count() == 1

    row.get_by_role("button", name=re.compile(r"^Accept")).click()
    expect(row).to_contain_text("moved to Sales accepted")
    shot("accepted")

    row.get_by_role("button", name=re.compile(r"^Qualify")).click()
    expect(row).to_contain_text("moved to Sales qualified")
    shot("qualified")
    assert Lead.objects.get(pk=lead_id).lifecycle_stage == "sql"

    row.get_by_role("button", name="Convert…").click()
    page.wait_for_url(re.compile(rf"/leads/{lead_id}/convert/$"))
    expect(page.locator("#id_account_name")).to_have_value("Vance <Labs> & Co")
    page.fill("#id_deal_name", "Vance pilot")
    page.fill("#id_amount", "12000")
    page.select_option("#id_currency", "EUR")
    shot("convert-form")
    page.get_by_role("button", name="Convert", exact=True).click()
    page.wait_for_url(re.compile(rf"/leads/{lead_id}/$"))
    card = page.locator(".deal-card", has_text="Vance pilot")
    expect(card).to_contain_text("Open")
    shot("converted-to-deal")
    assert Lead.objects.get(pk=lead_id).lifecycle_stage == "opportunity"

    card.get_by_text("Won…").click()
    card.get_by_role("button", name="Mark “Vance pilot” won").click()
    card = page.locator(".deal-card", has_text="Vance pilot")
    expect(card).to_contain_text("Won")
    expect(page.get_by_text("The lead is now a customer.")).to_be_visible()
    shot("deal-won")

    deal = Deal.objects.get(lead_id=lead_id)
    assert (deal.status, deal.amount, deal.currency) == ("won", 12000, "EUR")
    assert deal.closed_at is not None
    assert Lead.objects.get(pk=lead_id).lifecycle_stage == "customer"
