"""A manager's day in the browser: the sales home page, the overview, each report with its date range, a CSV
export."""

import csv
import io

import pytest

from leadcrm.models import Role
from tests.scoring import make_lead

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REPORTS = ["Funnel", "Speed to lead", "Sales cycle", "Rep performance", "Sources", "Campaigns", "Score calibration"]


@pytest.fixture
def leads(org):
    """Three leads from the web site, one an MQL, and one whose source a spreadsheet would read as a formula."""
    for number in range(3):
        make_lead(org, email=f"web{number}@example.com", source="website",
                  lifecycle_stage="mql" if number == 0 else "lead")
    make_lead(org, email="odd@example.com", source='=HYPERLINK("https://evil.test")')


def test_a_manager_reads_the_dashboard_and_every_report_and_exports_one(org, member, leads, page, login, shot):
    member(Role.MANAGER, "boss@acme.test")
    login("boss@acme.test", "pw-member-123")

    expect(page.locator("main h1")).to_have_text("Sales")  # a manager lands on the sales home page
    expect(page.locator("article.report-card").filter(has_text="Deals won")).to_be_visible()
    shot("sales-home")
    page.locator("main nav").get_by_role("link", name="Overview").click()
    expect(page.locator("main h1")).to_have_text("Reports")
    cards = page.locator("article.report-card")
    expect(cards.filter(has_text="Leads created").locator(".report-number")).to_have_text("4")
    expect(cards.filter(has_text="MQLs").locator(".report-number")).to_have_text("1")
    shot("dashboard")

    for name in REPORTS:
        page.locator("main").get_by_role("link", name=name, exact=True).first.click()
        expect(page.locator("main h1")).to_contain_text(name.split()[0])
        expect(page.get_by_text("Download CSV")).to_be_visible()
        shot(name.lower().replace(" ", "-"))

    page.get_by_role("link", name="Sources", exact=True).first.click()
    expect(page.locator("main table")).to_contain_text("website")
    with page.expect_download() as download:
        page.get_by_text("Download CSV").click()
    rows = list(csv.reader(io.StringIO(download.value.path().read_text())))
    sources = {row[0]: row for row in rows[1:]}
    assert "website" in sources
    assert "'=HYPERLINK(\"https://evil.test\")" in sources  # a formula arrives as text, not as a formula
    shot("sources-exported")
