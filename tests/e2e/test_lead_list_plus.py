"""The leads list as a person works it, further: choosing the columns, saving them in a view, selecting every lead
that matches a filter for a bulk tag, exporting the columns shown, and finding things with the header's search."""

import csv
import io
import re

import pytest

from leadcrm.models import Role
from leads.models import Account, Deal, Lead

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def leads(org):
    rows = [
        ("Ada", "Lovelace", "ada@example.com", "Engines", "Countess", "A", 80, "GB"),
        ("Bob", "Builder", "bob@example.com", "Builders", "Foreman", "C", 20, "US"),
        ("Cy", "Twombly", "cy@example.com", "Paint Co", "Painter", "A", 50, "US"),
    ]
    for first, last, email, company, title, grade, score, country in rows:
        Lead.objects.create(organization=org, first_name=first, last_name=last, email=email, company=company,
                            job_title=title, grade=grade, score=score, country=country)


@pytest.fixture
def on_the_list(org, member, leads, page, login):
    member(Role.MANAGER, "boss@acme.test")
    login("boss@acme.test", "pw-member-123")
    page.locator("nav").get_by_role("link", name="Leads", exact=True).first.click()
    expect(page.locator("main h1")).to_have_text("Leads")
    return page


def headings(page) -> list[str]:
    cells = page.locator("table.data thead th[scope=col]").all_inner_texts()
    return [re.sub(r"[▲▼]", "", cell).strip() for cell in cells]


def choose_columns(page, show=(), hide=()):
    page.get_by_text("Columns", exact=True).click()
    panel = page.get_by_role("form", name="Columns to show")
    for label in show:
        panel.get_by_label(label, exact=True).check()
    for label in hide:
        panel.get_by_label(label, exact=True).uncheck()
    panel.get_by_role("button", name="Show columns").click()
    page.wait_for_load_state()


def fits_the_phone(page):
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_choose_columns_keep_them_and_save_them_in_a_view(on_the_list, shot):
    page = on_the_list
    assert headings(page) == ["Name", "Email", "Company", "Stage", "Score", "Grade", "Owner", "Created"]
    page.get_by_text("Columns", exact=True).click()
    panel = page.get_by_role("form", name="Columns to show")
    expect(panel.get_by_label("Name", exact=True)).to_be_disabled()  # the name links to the lead: always shown
    shot("columns-open")
    panel.get_by_label("Email", exact=True).focus()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    choose_columns(page, show=["Job title", "Country"], hide=["Score", "Owner", "Stage"])
    assert headings(page) == ["Name", "Email", "Company", "Job title", "Grade", "Country", "Created"]
    expect(page.get_by_role("cell", name="Countess")).to_be_visible()
    shot("columns-chosen")

    # Remembered: the list opened again from the menu shows them.
    page.locator("nav").get_by_role("link", name="Leads", exact=True).first.click()
    assert headings(page) == ["Name", "Email", "Company", "Job title", "Grade", "Country", "Created"]

    # A view keeps its filter, sort and columns.
    page.get_by_role("search", name="Filter leads").get_by_label("Grade").select_option(label="A")
    page.get_by_role("button", name="Apply").click()
    page.get_by_text("Save this view…").click()
    page.get_by_placeholder("View name").fill("A titles")
    page.get_by_role("button", name="Save view").click()
    expect(page.get_by_text("Saved the view “A titles”.")).to_be_visible()

    with page.expect_navigation():
        page.get_by_label("View", exact=True).select_option(label="All leads")
    choose_columns(page, show=["Score"], hide=["Job title", "Country"])
    assert "Job title" not in headings(page)
    with page.expect_navigation():
        page.get_by_label("View", exact=True).select_option(label="A titles")
    assert headings(page) == ["Name", "Email", "Company", "Job title", "Grade", "Country", "Created"]
    assert sorted(page.locator("table.data tbody tr td a").all_inner_texts()) == ["Ada Lovelace", "Cy Twombly"]
    shot("view-reopened")

    # Columns changed on the open view show at once, and Save view keeps them.
    choose_columns(page, show=["Tags"], hide=["Email"])
    assert headings(page) == ["Name", "Company", "Job title", "Grade", "Country", "Created", "Tags"]
    expect(page.get_by_label("View", exact=True)).to_have_value(re.compile(r"\d+"))
    page.get_by_text("Save this view…").click()
    page.get_by_role("button", name="Save view").click()
    with page.expect_navigation():
        page.get_by_label("View", exact=True).select_option(label="All leads")
    with page.expect_navigation():
        page.get_by_label("View", exact=True).select_option(label="A titles")
    assert headings(page) == ["Name", "Company", "Job title", "Grade", "Country", "Created", "Tags"]
    fits_the_phone(page)
    shot("view-reopened-phone")


def test_filter_select_all_that_match_and_tag_them(org, other_org, on_the_list, shot):
    page = on_the_list
    Lead.objects.bulk_create([Lead(organization=org, email=f"a{i:02d}@example.com", first_name=f"Anna{i:02d}",
                                   grade="A") for i in range(60)])
    Lead.objects.bulk_create([Lead(organization=org, email=f"c{i:02d}@example.com", first_name=f"Carl{i:02d}",
                                   grade="C") for i in range(5)])
    Lead.objects.create(organization=other_org, email="rival@example.com", grade="A")
    form = page.get_by_role("search", name="Filter leads")
    form.get_by_label("Grade").select_option(label="A")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()

    page.get_by_label("Select all leads on this page").check()
    banner = page.locator("[data-select-all]")
    expect(banner).to_contain_text("All 50 leads on this page are selected.")
    page.get_by_role("button", name="Select all 62 leads that match").click()
    expect(banner).to_contain_text("All 62 leads that match are selected")
    expect(page.get_by_role("button", name="Route now")).to_be_disabled()  # routing takes ticked leads only
    shot("all-that-match-selected")

    page.get_by_placeholder("Tag").fill("spring")
    page.get_by_role("button", name="Add tag").click()
    expect(page.locator("main h1")).to_have_text("Add tag “spring”")
    expect(page.locator("main")).to_contain_text("62 leads match the list:")
    expect(page.locator("main")).to_contain_text("Grade: A")
    shot("confirm-with-the-count")
    page.get_by_role("button", name="Add the tag (62 leads)").click()
    expect(page.get_by_text("Tag “spring” added to 62 leads.")).to_be_visible()
    expect(form.get_by_label("Grade")).to_have_value("A")  # back on the filtered list

    tagged = set(Lead.objects.filter(tags__contains=["spring"]).values_list("email", flat=True))
    assert tagged == set(Lead.objects.filter(organization=org, grade="A").values_list("email", flat=True))
    assert len(tagged) == 62

    choose_columns(page, show=["Tags"])
    expect(page.locator("table.data tbody tr").first.locator(".tag")).to_have_text("spring")
    shot("tagged")

    # Unticking a row goes back to ticked rows; ticking a few tags just those, without asking.
    page.get_by_label("Select all leads on this page").check()
    page.get_by_role("button", name=re.compile("^Select all 62")).click()
    page.locator("[data-select-row]").first.uncheck()
    expect(banner).to_be_hidden()
    page.get_by_label("Select all leads on this page").check()  # from "some ticked" to all, then to none
    page.get_by_label("Select all leads on this page").uncheck()
    expect(page.locator("[data-select-row]:checked")).to_have_count(0)
    page.locator("[data-select-row]").nth(0).check()
    page.locator("[data-select-row]").nth(1).check()
    page.get_by_placeholder("Tag").fill("spring")
    page.get_by_role("button", name="Remove tag").click()
    expect(page.get_by_text("Tag “spring” removed from 2 leads.")).to_be_visible()
    fits_the_phone(page)
    shot("after-bulk-phone")


def test_export_the_columns_shown_with_the_button(on_the_list, shot):
    page = on_the_list
    choose_columns(page, show=["Job title", "Country"], hide=["Email", "Stage", "Score", "Owner", "Created"])
    page.get_by_role("search", name="Filter leads").get_by_label("Country").fill("us")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()
    shot("before-export")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    rows = list(csv.reader(io.StringIO(download.value.path().read_text(encoding="utf-8-sig"))))
    assert rows[0] == ["id", "first_name", "last_name", "company", "job_title", "grade", "country"]
    assert sorted((row[1], row[4], row[6]) for row in rows[1:]) == [("Bob", "Foreman", "US"),
                                                                     ("Cy", "Painter", "US")]


@pytest.fixture
def findable(org, other_org, leads):
    lead = Lead.objects.get(organization=org, email="ada@example.com")
    account = Account.objects.create(organization=org, name="Analytical Engines Ltd")
    Deal.objects.create(organization=org, account=account, lead=lead, name="Engines upgrade", amount=100)
    Lead.objects.create(organization=other_org, email="spy@rival.test", first_name="Rival", company="Engines Rival")
    return account


def test_the_header_search_finds_and_opens_by_mouse_and_keyboard(findable, on_the_list, shot):
    page = on_the_list
    box = page.get_by_role("search", name="Site search").get_by_label("Search leads, accounts and deals")
    box.fill("engines")
    hits = page.locator("#header-search-hits")
    expect(hits.get_by_role("link", name="Ada Lovelace")).to_be_visible()
    expect(hits.get_by_role("link", name="Analytical Engines Ltd")).to_be_visible()
    expect(hits.get_by_role("link", name="Engines upgrade")).to_be_visible()
    expect(hits).not_to_contain_text("Rival")
    shot("header-hits")
    hits.get_by_role("link", name="Ada Lovelace").click()
    page.wait_for_url(re.compile(r"/leads/[0-9a-f-]{36}/$"))
    expect(page.locator("main h1")).to_contain_text("Ada Lovelace")

    # By keyboard: Enter opens every result; Down arrow walks the hits and Enter follows one.
    box.fill("engines")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/search/\?q=engines$"))
    expect(page.get_by_role("heading", name="Accounts")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("Rival")
    shot("results-page")
    box.fill("analytical")
    expect(hits.get_by_role("link", name="Analytical Engines Ltd")).to_be_visible()
    box.press("ArrowDown")
    expect(hits.get_by_role("link", name="Analytical Engines Ltd")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/accounts/[0-9a-f-]{36}/$"))
    expect(page.locator("main h1")).to_contain_text("Analytical Engines Ltd")


def test_the_header_search_at_phone_width(findable, on_the_list, shot):
    page = on_the_list
    page.set_viewport_size(PHONE)
    page.get_by_role("button", name="Menu").click()
    box = page.get_by_role("search", name="Site search").get_by_label("Search leads, accounts and deals")
    expect(box).to_be_visible()
    box.fill("upgrade")
    hit = page.locator("#header-search-hits").get_by_role("link", name="Engines upgrade")
    expect(hit).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    bounds = hit.bounding_box()
    assert bounds["x"] >= 0 and bounds["x"] + bounds["width"] <= PHONE["width"]
    shot("header-hits-phone")
    hit.click()
    page.wait_for_url(re.compile(r"/accounts/[0-9a-f-]{36}/$"))
    page.set_viewport_size(DESKTOP)
    shot("account-desktop")
