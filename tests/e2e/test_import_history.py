"""A marketer moves the company's history in from its old CRM by clicking: a leads file with created dates,
stages and an owner, a column no field fits kept as a custom field under a key they rename, then (on a phone) the
activities of those leads. The leads list shows the imported created dates."""

import csv
import re

import pytest

from leadcrm.models import Role
from leads.models import Activity, Lead

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

MARKETER_EMAIL, PASSWORD = "marketer@acme.test", "pw-member-123"
PHONE = {"width": 390, "height": 844}


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def open_imports(page):
    nav = page.locator("header nav, nav.app-nav").first
    if page.get_by_role("button", name="Menu").is_visible():
        page.get_by_role("button", name="Menu").click()
        nav = page.locator("#nav-panel")
    nav.locator("summary", has_text="Marketing").click()
    nav.get_by_role("link", name="Imports", exact=True).click()
    expect(page.locator("main h1")).to_have_text("Imports")


def fits_the_screen(page):
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_marketer_imports_history_from_the_old_crm(org, member, e2e_worker, page, login, shot, tmp_path):
    member(Role.MARKETER, email=MARKETER_EMAIL)
    member(Role.REP, email="rep@acme.test")
    leads_file = write_csv(tmp_path / "old-crm-leads.csv", [
        ["Record ID", "Email", "First Name", "Last Name", "Company", "Country", "Create Date", "Lifecycle Stage",
         "Stage Date", "Lead Owner", "Favourite colour"],
        ["crm-1", "ada@example.com", "Ada", "Lovelace", "Engines Ltd", "United Kingdom", "2023-05-14 12:00", "MQL",
         "2023-06-01 09:00", "rep@acme.test", "teal"],
        ["crm-2", "", "Grace", "Hopper", "Navy", "germany", "2023-11-02 12:00", "Customer", "2024-01-10 12:00", "",
         "navy blue"],
    ])
    login(MARKETER_EMAIL, PASSWORD)

    open_imports(page)
    page.get_by_role("button", name="Import a CSV file").click()
    page.get_by_role("radio", name=re.compile("Leads — one row per person")).check()
    page.get_by_label("CSV file").set_input_files(str(leads_file))
    shot("upload")
    page.get_by_role("button", name="Upload and choose columns").click()

    # The mapping step guessed the history columns and says which column it left out.
    expect(page.locator("main h1")).to_have_text("Choose columns")
    notice = page.get_by_role("article").filter(has_text="not imported yet")
    expect(notice).to_contain_text("1 column not imported yet")
    expect(notice).to_contain_text("Favourite colour")
    expect(notice).to_contain_text("custom_fields.favourite_colour")
    expect(page.get_by_label("Import “Create Date” as")).to_have_value("created_at")
    expect(page.get_by_label("Import “Lead Owner” as")).to_have_value("owner")
    shot("mapping-guessed")

    # They keep it as a custom field under a shorter key.
    page.get_by_label("Import “Favourite colour” as").select_option(label="Custom field (keep this column)")
    key = page.get_by_role("row", name=re.compile("Favourite colour")).get_by_label(re.compile("^Custom field key"))
    expect(key).to_be_visible()
    expect(key).to_have_value("favourite_colour")
    key.fill("colour")
    expect(page.get_by_role("row", name=re.compile("Favourite colour")).get_by_text("not imported")).to_be_hidden()
    shot("mapping-renamed")
    page.get_by_role("button", name="Start import").click()

    expect(page.get_by_text(re.compile("^Finished"))).to_be_visible(timeout=30_000)
    expect(page.locator("#import-progress")).to_contain_text("New leads")
    expect(page.get_by_text("An import of history")).to_be_visible()
    shot("done")

    page.get_by_role("link", name="See your leads").click()
    expect(page.locator("main h1")).to_have_text("Leads")
    ada_row = page.get_by_role("row", name=re.compile("Ada Lovelace"))
    grace_row = page.get_by_role("row", name=re.compile("Grace Hopper"))
    expect(ada_row).to_contain_text("2023-05-14 12:00")
    expect(grace_row).to_contain_text("2023-11-02 12:00")
    shot("leads-with-imported-dates")

    ada = Lead.objects.get(organization=org, email="ada@example.com")
    assert (ada.custom_fields, ada.country, ada.owner.email) == ({"colour": "teal"}, "GB", "rep@acme.test")
    assert ada.stage_entered_at == {"mql": "2023-06-01T09:00:00+00:00"}
    assert Lead.objects.get(organization=org, external_id="crm-2").country == "DE"

    # On a phone, the same marketer brings in the leads' activities.
    page.set_viewport_size(PHONE)
    activities_file = write_csv(tmp_path / "old-crm-activities.csv", [
        ["Contact ID", "Activity Type", "Date", "Subject"],
        ["crm-1", "Meeting", "2023-06-05 10:00", "Demo"],
        ["crm-2", "call", "2023-12-01 16:00", "Renewal"],
        ["crm-404", "call", "2023-12-01 16:00", "Nobody"],
    ])
    open_imports(page)
    fits_the_screen(page)
    shot("phone-imports")
    page.get_by_role("button", name="Import a CSV file").click()
    page.get_by_role("radio", name=re.compile("Activities of leads already here")).check()
    page.get_by_label("CSV file").set_input_files(str(activities_file))
    fits_the_screen(page)
    shot("phone-upload")
    page.get_by_role("button", name="Upload and choose columns").click()
    expect(page.locator("main h1")).to_have_text("Choose columns")
    expect(page.get_by_label("Import “Subject” as")).to_have_value("property")
    fits_the_screen(page)
    shot("phone-mapping")
    page.get_by_role("button", name="Start import").click()
    expect(page.get_by_text(re.compile("^Finished"))).to_be_visible(timeout=30_000)
    expect(page.locator("#import-progress")).to_contain_text("Activities recorded")
    expect(page.get_by_role("table")).to_contain_text("No lead has the external id “crm-404”")
    fits_the_screen(page)
    shot("phone-activities-done")
    page.get_by_role("link", name="See your leads").click()
    expect(page.locator("main")).to_contain_text("2023-05-14 12:00")
    fits_the_screen(page)
    shot("phone-leads")
    meeting = Activity.objects.get(lead=ada, type="meeting")
    assert meeting.occurred_at.isoformat() == "2023-06-05T10:00:00+00:00"
    assert meeting.properties["subject"] == "Demo"
