"""The conversion model put to use by hand: an admin makes the probability the MQL rule in the scoring settings,
then shows the probability in the leads list and sorts by it, at desk and phone width."""

import re

import pytest

from leads.models import Lead, LifecycleStage
from scoring import predictive
from scoring.models import PredictiveModel, ScoringSettings
from tests.scoring.test_predictive import _outcomes

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def modelled(org):
    """300 outcomes, a model trained on them (as the worker trains it), and a few open leads it scored."""
    _outcomes(org, 300)
    Lead.objects.bulk_create(
        Lead(
            organization=org,
            first_name=name,
            last_name="<b>Open</b>",
            email=f"{name.lower()}@example.com",
            lifecycle_stage=LifecycleStage.LEAD,
            source_type=source,
            industry=industry,
            company_size=size,
        )
        for name, source, industry, size in (
            ("Ada", "referral", "software", 3000),
            ("Bob", "outbound", "retail", 5),
            ("Cy", "paid", "finance", 200),
        )
    )
    run = PredictiveModel.objects.create(organization=org, version=1)
    predictive.train(organization_id=org.pk, version_id=run.pk)
    return PredictiveModel.objects.get(pk=run.pk)


def fits_the_phone(page):
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_hand_off_by_probability_and_sort_the_list_by_it(org, modelled, page, login, shot):
    login("owner@acme.test", "pw-acme-123")
    page.locator("nav summary", has_text="Marketing").click()
    page.locator("nav").get_by_role("link", name="Scoring", exact=True).click()
    page.get_by_role("button", name="Grades, MQL threshold and decay").click()
    expect(page.get_by_role("status").filter(has_text="Now:")).to_contain_text("Score and grade hand leads to sales")
    page.get_by_label("Conversion probability", exact=True).check()
    page.get_by_label("Conversion probability at least (%)").fill("160")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".errorlist").first).to_be_visible()  # refused at its field, nothing saved
    assert ScoringSettings.objects.get(organization=org).mql_rule == "score"
    page.get_by_label("Conversion probability at least (%)").fill("60")
    page.get_by_label("Conversion probability", exact=True).check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").filter(has_text="Now:")).to_contain_text(
        "Conversion probability hands leads to sales"
    )
    shot("probability-chosen")
    fits_the_phone(page)
    shot("probability-chosen-phone")
    settings = ScoringSettings.objects.get(organization=org)
    assert settings.mql_rule == "probability" and float(settings.mql_probability) == 0.6

    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator("nav").get_by_role("link", name="Leads", exact=True).first.click()
    page.get_by_role("search", name="Filter leads").get_by_label("Search").fill("Open")
    page.get_by_role("button", name="Apply").click()
    page.get_by_text("Columns", exact=True).click()
    page.get_by_role("form", name="Columns to show").get_by_label("Conversion probability", exact=True).check()
    page.get_by_role("button", name="Show columns").click()
    page.get_by_role("link", name=re.compile("^Conversion probability")).click()
    expect(page.locator("table.data thead th[aria-sort=descending]")).to_contain_text("Conversion probability")
    names = page.locator("table.data tbody tr td a").all_inner_texts()
    ranked = Lead.objects.for_org(org).filter(email__in=["ada@example.com", "bob@example.com", "cy@example.com"])
    expected = [f"{lead.first_name} <b>Open</b>" for lead in ranked.order_by("-conversion_probability")]
    assert names == expected  # the lead's own text shown as text, likeliest first
    top = ranked.order_by("-conversion_probability").first()
    expect(page.locator("table.data tbody tr").first).to_contain_text(f"{round(top.conversion_probability * 100)}%")
    shot("list-by-probability")
    fits_the_phone(page)
    shot("list-by-probability-phone")
