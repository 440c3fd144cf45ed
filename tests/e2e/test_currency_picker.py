"""Money carries a real ISO 4217 currency: a marketer picks it from a list when making a campaign (a typed
"dollars" used to be cut to "dol" by the browser), and the API refuses a code that is no currency."""

import pytest

from campaigns.models import Campaign
from leadcrm import services
from leadcrm.models import Role

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_campaign_gets_its_currency_from_the_picker(org, page, login, shot):
    services.add_member(organization=org, email="mia@acme.test", password="pw-mia-12345", role=Role.MARKETER)
    login("mia@acme.test", "pw-mia-12345")
    menu = page.locator("header details", has_text="Marketing")
    menu.locator("summary").click()
    menu.get_by_role("link", name="Campaigns").click()
    page.get_by_role("button", name="New campaign").click()
    page.get_by_label("Name").fill("Spring fair")
    currency = page.get_by_label("Currency")
    expect(currency).to_have_value("USD")
    currency.select_option(label="EUR — Euro")
    shot("picked")
    page.get_by_role("button", name="Save campaign").click()
    expect(page.locator("h1")).to_contain_text("Spring fair")
    assert Campaign.objects.get(organization=org, name="Spring fair").currency == "EUR"
