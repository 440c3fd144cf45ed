"""A marketer reads the reports in the browser: picks March on their home page, then opens each report from the
reports' navigation; every report draws its chart beside its table, in words and numbers a person reads ("MQL",
"1 h 40 min", "$2,550.50"), at desktop width and on a phone."""

import re

import pytest

from leadcrm.models import Role
from tests.reports.conftest import data  # noqa: F401  (the fixture: a small org whose numbers are worked out)

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EMAIL, PASSWORD = "marketer@acme.test", "pw-member-123"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# report -> (its link in the navigation, headings and cells a person reads, words that read like code)
REPORTS = {
    "funnel": ("Funnel", ["MQL", "Lead → MQL", "Opportunity → Customer"], ["Mql", "Mql rate"]),
    "speed-to-lead": ("Speed to lead", ["Capture → MQL, 90th percentile", "1 h 40 min", "Share within SLA"],
                      ["Capture to mql", "minutes"]),
    "sales-cycle": ("Sales cycle", ["Created → won, median", "21 d 12 h"], ["Created to won days"]),
    "reps": ("Rep performance", ["Close rate", "$1,000.00", "33.3%"], ["Close_rate"]),
    "sources": ("Sources", ["Campaign cost (shared)", "$1,325.25", "in proportion to how many members"],
                ["Won revenue\n", "cost_per_lead"]),
    "campaigns": ("Campaigns", ["Members joined", "$2,550.50", "−60.8%"], ["Cost per mql"]),
    "score-calibration": ("Score calibration", ["Score band", "SQL rate", "50 to 59"], ["Sql rate"]),
}

# How many pixels of the chart's canvas Chart.js painted (0: an empty canvas).
PAINTED = """canvas => {
  if (!window.Chart || !window.Chart.getChart(canvas)) return 0;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) painted++;
  return painted;
}"""


def _check_chart(page):
    canvas = page.locator("main canvas[data-chart]")
    expect(canvas).to_have_count(1)
    expect(canvas).to_be_visible()
    page.wait_for_function("() => window.Chart && window.Chart.getChart(document.querySelector('canvas[data-chart]'))")
    assert canvas.evaluate(PAINTED) > 500, "the chart is drawn"


# Elements of the page's content that reach past the right edge of the window (a wide table scrolls in its box).
STICKING_OUT = """() => Array.from(document.querySelectorAll("main *"))
  .filter(element => !element.closest(".table-scroll") && element.getBoundingClientRect().right > window.innerWidth + 1)
  .map(element => element.tagName + "." + element.className)"""


def _fits_the_phone(page):
    """No part of the report makes the page scroll sideways on a phone (the chart, once redrawn, included)."""
    page.wait_for_function("() => document.querySelector('main canvas[data-chart]').getBoundingClientRect().right"
                           " <= window.innerWidth")
    assert page.evaluate(STICKING_OUT) == []


def test_a_marketer_opens_each_report_and_reads_it(data, org, member, page, login, shot):  # noqa: F811
    data["spring"].costs.create(organization=org, date="2026-03-15", amount="2150.50")  # 2,550.50 in March
    member(Role.MARKETER, email=EMAIL)
    login(EMAIL, PASSWORD)

    # March, picked on the home page's own range form.
    page.fill("#report-start", "2026-03-01")
    page.fill("#report-end", "2026-03-31")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#report-start")).to_have_value("2026-03-01")

    nav = page.get_by_role("navigation", name="Reports")
    for name, (link, reads, code) in REPORTS.items():
        nav.get_by_role("link", name=link, exact=True).click()
        expect(page).to_have_url(re.compile(rf"/reports/{name}/\?start=2026-03-01&end=2026-03-31$"))
        expect(page.get_by_role("heading", level=1)).to_have_text(link)
        main = page.locator("main")
        for text in reads:
            expect(main).to_contain_text(text)
        table = page.locator("table.report-table").inner_text()
        for text in code:
            assert text not in table, f"{name}: {text!r} reads like code"
        _check_chart(page)
        shot(f"{name}-desktop")

        page.set_viewport_size(PHONE)
        _fits_the_phone(page)
        _check_chart(page)  # redrawn at the phone's width
        shot(f"{name}-phone")
        page.set_viewport_size(DESKTOP)

    # A breakdown picked by its name, not by its key.
    nav.get_by_role("link", name="Funnel", exact=True).click()
    page.locator("#report-breakdown").select_option(label="Source type")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("table.report-table thead th").first).to_have_text("Source type")
    expect(page.locator("table.report-table tbody th").first).to_have_text("Organic")
    _check_chart(page)
    shot("funnel-by-source-type")


def test_an_empty_report_says_what_to_do(org, member, page, login, shot):
    member(Role.MARKETER, email=EMAIL)
    login(EMAIL, PASSWORD)
    page.get_by_role("navigation", name="Reports").get_by_role("link", name="Campaigns", exact=True).click()
    main = page.locator("main")
    expect(main).to_contain_text("There are no campaigns yet.")
    main.get_by_role("link", name="Set up a campaign").click()
    expect(page).to_have_url(re.compile(r"/campaigns/$"))
    page.go_back()
    page.set_viewport_size(PHONE)
    assert page.evaluate(STICKING_OUT) == []
    shot("campaigns-empty-phone")
