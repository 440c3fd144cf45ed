"""Settings → Routing in the browser, by clicking: an admin sets a rep's capacity and marks them away, is told
plainly when a capacity makes no sense, makes a team of two reps, builds a rule with two conditions (country is DE
and score at least 50) that shares leads in that team by round robin, moves it above an older rule, and a lead
that matches it then goes to that team. The pages are photographed at desktop and at phone width, where they
must not scroll sideways."""

import re

import pytest

from leadcrm.models import Role
from leads import services as lead_services
from leads.models import Lead, LifecycleStage
from routing import services as routing_services
from routing.models import AssignmentRule, LeadRouting, RepProfile, Team
from tests.e2e.test_phone_width import DESKTOP, PHONE, Walk

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RULE = "German leads scoring 50+"


@pytest.fixture
def sales_org(org, member):
    """Three reps; an older rule sends every German lead to the pool of Inside sales (Carl's team)."""
    anna, ben, carl = (member(Role.REP, f"{name}@acme.test") for name in ("anna", "ben", "carl"))
    inside = routing_services.save_team(organization_id=org.pk, data={
        "name": "Inside sales", "members": [RepProfile.objects.get(organization=org, user=carl)]})
    routing_services.save_rule(organization_id=org.pk, data={
        "name": "German leads to the inside sales pool", "strategy": "pool", "team": inside, "order": 10,
        "condition": {"all": [{"field": "country", "op": "eq", "value": "DE"}]}})
    return {"anna": anna, "ben": ben, "carl": carl, "inside": inside}


def _tab(page, name):
    """Open a page of the section by its tab."""
    page.get_by_role("navigation", name="Routing settings").get_by_role("link", name=name).click()


def _captured(org, email, **fields):
    """A lead captured as a form would, then made an MQL with a score (what scoring would do), then routed."""
    lead = lead_services.capture_lead(organization_id=org.pk, data={"email": email, "country": "DE"}).lead
    Lead.objects.filter(pk=lead.pk).update(lifecycle_stage=LifecycleStage.MQL, **fields)
    routing_services.route_lead(organization_id=org.pk, lead_id=lead.pk)
    return Lead.objects.select_related("owner").get(pk=lead.pk)


def test_an_admin_sets_up_routing_by_clicking(org, sales_org, page, login, shot):
    login("owner@acme.test", "pw-acme-123")
    page.locator("summary", has_text="Settings").click()
    page.get_by_role("link", name="Routing").click()
    expect(page.locator("main h1")).to_have_text("Assignment rules")
    shot("rules-before")

    # A rep's profile: a capacity below zero is refused at its field, then 30 and away until a date are saved.
    page.get_by_role("link", name="Rep profiles").click()
    expect(page.locator("main h1")).to_have_text("Rep profiles")
    page.get_by_role("link", name="Edit the profile of anna@acme.test").click()
    page.get_by_label("Capacity").fill("-1")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("#id_capacity_error")).to_contain_text("greater than or equal to 0")
    expect(page.get_by_label("Capacity")).to_have_attribute("aria-invalid", "true")
    shot("capacity-refused")
    assert RepProfile.objects.get(user=sales_org["anna"]).capacity == 50

    page.get_by_label("Capacity").fill("30")
    page.get_by_label("Away until").fill("2030-01-15T09:00")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator(".messages")).to_contain_text("Routing profile of anna@acme.test saved.")
    anna_row = page.locator(f"#rep-{sales_org['anna'].pk}")
    expect(anna_row).to_contain_text("0 / 30")
    expect(anna_row).to_contain_text("Away until 15 Jan 2030 09:00")
    shot("reps")
    anna = RepProfile.objects.get(user=sales_org["anna"])
    assert anna.capacity == 30 and anna.away_until.year == 2030

    # A team of two reps.
    _tab(page, "Teams")
    page.get_by_role("button", name="New team").click()
    page.get_by_label("Name", exact=True).fill("DACH")
    page.get_by_label("Manager", exact=True).select_option(label="owner@acme.test")
    page.get_by_label("anna@acme.test").check()
    page.get_by_label("ben@acme.test").check()
    shot("team-form")
    page.get_by_role("button", name="Save team").click()
    expect(page.locator(".messages")).to_contain_text("Team “DACH” saved.")
    dach = Team.objects.get(organization=org, name="DACH")
    row = page.locator(f"#team-{dach.pk}")
    expect(row).to_contain_text("2: anna@acme.test, ben@acme.test")
    shot("teams")

    # A rule built in the condition builder: country is DE and score at least 50, round robin in DACH.
    _tab(page, "Assignment rules")
    page.get_by_role("button", name="New rule").click()
    page.get_by_label("Name", exact=True).fill(RULE)
    first = page.locator("#segment-builder [data-row=field]").first  # a new rule starts with a blank row
    first.locator("[data-key=field]").select_option(label="Country (two-letter code)")
    first.locator("[data-key=op]").select_option(label="is")
    first.locator("[data-key=value]").fill("DE")
    page.locator("#segment-builder").get_by_role("button", name="+ Lead field").click()
    second = page.locator("#segment-builder [data-row=field]").nth(1)
    second.locator("[data-key=field]").select_option(label="Score")
    second.locator("[data-key=op]").select_option(label="is at least")
    second.locator("[data-key=value]").fill("50")
    expect(page.locator("#segment-count")).to_contain_text("0 leads match right now.")  # the live count
    page.get_by_label("Strategy", exact=True).select_option(label="Round robin in a team")
    expect(page.get_by_label("Rep", exact=True)).to_be_hidden()  # the rep picker is for "A named rep" only
    page.get_by_label("Team", exact=True).select_option(label="DACH")
    page.get_by_label("First touch within (minutes)").fill("30")
    shot("rule-form")
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator(".messages")).to_contain_text(f"Rule “{RULE}” saved.")
    rule = AssignmentRule.objects.get(organization=org, name=RULE)
    assert rule.condition == {"all": [{"field": "country", "op": "eq", "value": "DE"},
                                      {"field": "score", "op": "gte", "value": 50}]}
    row = page.locator(f"#rule-{rule.pk}")
    expect(row.locator("td").first).to_have_text("2")  # after the older rule
    expect(row).to_contain_text("Country (two-letter code) is DE")
    expect(row).to_contain_text("Score is at least 50")
    expect(row).to_contain_text("Round robin in a team: DACH")
    expect(row).to_contain_text("Within 30 min")

    # Up, by a click: the list is redrawn with the rule first, the focus still on the button pressed.
    up = page.get_by_role("button", name=f"Move “{RULE}” up")
    up.click()
    expect(page.locator("#rules-status")).to_have_text(f"“{RULE}” moved up to place 1.")
    expect(page.locator(f"#rule-{rule.pk} td").first).to_have_text("1")
    assert page.evaluate("document.activeElement.id") == f"rule-{rule.pk}-up"
    # …and by keyboard: down and up again.
    page.get_by_role("button", name=f"Move “{RULE}” down").focus()
    page.keyboard.press("Enter")
    expect(page.locator(f"#rule-{rule.pk} td").first).to_have_text("2")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == f"rule-{rule.pk}-up"
    page.keyboard.press("Enter")
    expect(page.locator(f"#rule-{rule.pk} td").first).to_have_text("1")
    shot("rules-reordered")

    # A hot German lead now goes to DACH, to Ben (Anna is away); a cold one still waits in the older rule's pool.
    hot = _captured(org, "hot@example.de", score=72)
    assert hot.owner == sales_org["ben"]
    assert LeadRouting.objects.get(lead=hot).team == dach
    cold = _captured(org, "cold@example.de", score=10)
    assert cold.owner is None
    assert LeadRouting.objects.get(lead=cold).team == sales_org["inside"]

    # Every page of the section at phone width: no sideways scroll, headings and main actions on screen.
    page.set_viewport_size(PHONE)
    walk = Walk(page, shot)
    page.reload()
    walk.check("phone-rules", page.get_by_role("button", name=f"Move “{RULE}” down"))
    page.get_by_role("link", name=f"Edit {RULE}").click()
    walk.check("phone-rule-form", page.get_by_role("button", name="Save rule"))
    _tab(page, "Teams")
    walk.check("phone-teams", page.get_by_role("button", name="New team"))
    page.get_by_role("link", name="Edit DACH").click()
    walk.check("phone-team-form", page.get_by_role("button", name="Save team"))
    _tab(page, "Rep profiles")
    walk.check("phone-reps", page.get_by_role("link", name="Edit the profile of anna@acme.test"))
    page.get_by_role("link", name="Edit the profile of anna@acme.test").click()
    walk.check("phone-rep-form", page.get_by_role("button", name="Save profile"))
    assert not walk.problems, "\n".join(walk.problems)
    page.set_viewport_size(DESKTOP)


def test_a_team_that_rules_use_is_not_deleted_and_an_unused_one_is(org, sales_org, page, login, shot):
    routing_services.save_team(organization_id=org.pk, data={"name": "Night shift"})
    login("owner@acme.test", "pw-acme-123")
    page.locator("summary", has_text="Settings").click()
    page.get_by_role("link", name="Routing").click()
    _tab(page, "Teams")

    page.get_by_role("link", name="Delete Inside sales").click()
    expect(page.locator("main")).to_contain_text("German leads to the inside sales pool")
    expect(page.get_by_role("button", name="Delete team")).to_have_count(0)
    shot("team-in-use")

    page.get_by_role("link", name="Back to teams").click()
    page.get_by_role("link", name="Delete Night shift").click()
    page.get_by_role("button", name="Delete team").click()
    expect(page.locator(".messages")).to_contain_text("Team “Night shift” deleted.")
    assert not Team.objects.filter(organization=org, name="Night shift").exists()
    assert re.search(r"/settings/routing/teams/$", page.url)
