"""An org admin's day in the browser: change a scoring rule in Django admin, preview what it would do, save it,
and watch a real worker re-score the org, with its progress on the scoring page, until a lead's score changes."""

import re

import pytest

from leadcrm.celery import app as celery_app
from leads.models import Lead
from scoring.models import ScoringRule
from tests.scoring import make_lead, score_org

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def empty_broker():
    """No task of an earlier test waits in the queues (this test starts its worker late and keeps what it queued)."""
    celery_app.control.purge()


@pytest.fixture
def scored_leads(org):
    """Two leads in a target industry (20 points) and one outside, scored with the org's default rules."""
    leads = [make_lead(org, email="ada@example.com", first_name="Ada", last_name="Byron", company="Engines",
                       industry="Software"),
             make_lead(org, email="bo@example.com", first_name="Bo", company="Ledger", industry="Finance"),
             make_lead(org, email="cy@example.com", first_name="Cy", company="Shop", industry="Retail")]
    score_org(org)
    assert [Lead.objects.get(pk=lead.pk).score for lead in leads] == [20, 20, 0]
    return leads


def test_an_admin_changes_a_rule_and_watches_the_org_rescore(empty_broker, org, scored_leads, site, start_worker,
                                                             page, login, shot):
    ada = scored_leads[0]
    login("owner@acme.test", "pw-acme-123")
    page.goto("/admin/")
    page.get_by_role("link", name="Scoring rules").first.click()
    rules = page.locator("#result_list")
    expect(rules).to_contain_text("Target industry")
    shot("admin-scoring-rules")

    rules.get_by_role("link", name="Target industry").click()
    expect(page.locator("#id_points")).to_have_value("20")
    page.fill("#id_points", "45")
    page.click("#rule-preview-button")
    preview = page.locator("#rule-preview article.preview")
    expect(preview).to_contain_text("If you save this rule")
    expect(preview.locator(".preview-counts li").nth(0)).to_have_text("2 leads would gain points")
    expect(preview.locator(".preview-counts li").nth(1)).to_have_text("0 leads would lose points")
    preview.get_by_text("The same as a table").click()
    shot("preview")
    assert ScoringRule.objects.get(organization=org, name="Target industry").points == 20  # nothing saved yet

    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("Target industry")
    expect(page.locator("#result_list")).to_contain_text("45")
    shot("saved")
    assert ScoringRule.objects.get(organization=org, name="Target industry").points == 45

    # No worker runs yet: the scoring page says the re-scoring waits for one.
    page.goto("/scoring/")
    status = page.locator("#recalc-status")
    expect(status).to_contain_text("Re-scoring queued")
    shot("recalculation-queued")
    assert Lead.objects.get(pk=ada.pk).score == 20

    start_worker(purge=False)
    # The status polls every second while busy, and tells when every score is up to date — without a reload.
    expect(status).to_contain_text("Every lead's score is up to date", timeout=30_000)
    shot("recalculation-done")

    page.goto(f"/leads/{ada.pk}/")
    score = page.locator(".lead-facts dt", has_text=re.compile(r"^Score$")).locator("xpath=following-sibling::dd[1]")
    expect(score).to_have_text("45")
    expect(page.locator("#score-panel .score-parts tr", has_text="Fit")).to_contain_text("+45")
    shot("lead-rescored")
    assert sorted(Lead.objects.filter(organization=org).values_list("score", flat=True)) == [0, 45, 45]
