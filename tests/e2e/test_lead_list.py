"""The leads list as a person works it: typing a search, picking filters, clicking Apply, clearing them again."""

import csv
import io
import re

import pytest

from leadcrm.models import Role
from leads.models import Lead

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EVERYONE = ["Ada Lovelace", "Bob Builder", "Cy Twombly", "Dee Lovelace"]


@pytest.fixture
def leads(org):
    rows = [
        ("Ada", "Lovelace", "ada@example.com", "Engines", "mql", "A", 80, "paid", "hot", "GB"),
        ("Bob", "Builder", "bob@example.com", "Builders", "lead", "C", 20, "organic", "cold", "US"),
        ("Cy", "Twombly", "cy@example.com", "Paint Co", "subscriber", "A", 50, "paid", "warm", "US"),
        ("Dee", "Lovelace", "dee@example.com", "Looms", "lead", "B", 65, "referral", "hot", "GB"),
    ]
    for first, last, email, company, stage, grade, score, source_type, temperature, country in rows:
        Lead.objects.create(organization=org, first_name=first, last_name=last, email=email, company=company,
                            lifecycle_stage=stage, grade=grade, score=score, source_type=source_type,
                            temperature=temperature, country=country)


def shown(page) -> list[str]:
    """The names the list shows, sorted (the order is another test's business)."""
    if page.get_by_text("No leads match").count():
        return []
    return sorted(page.locator("table.data tbody tr td a").all_inner_texts())


def apply(page):
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()


@pytest.fixture
def on_the_list(org, member, leads, page, login):
    member(Role.MANAGER, "boss@acme.test")
    login("boss@acme.test", "pw-member-123")
    page.locator("nav").get_by_role("link", name="Leads", exact=True).first.click()
    expect(page.locator("main h1")).to_have_text("Leads")
    return page


def test_search_alone_each_filter_alone_together_and_cleared(on_the_list, shot):
    page = on_the_list
    assert shown(page) == sorted(EVERYONE)
    form = page.get_by_role("search", name="Filter leads")

    form.get_by_label("Search").fill("lovelace")
    apply(page)
    expect(page.get_by_role("alert")).to_have_count(0)  # no "Select a valid choice" for the filters left at Any
    assert shown(page) == ["Ada Lovelace", "Dee Lovelace"]
    shot("searched")
    form.get_by_label("Search").fill("")

    each_alone = [
        ("Stage", "Lead", ["Bob Builder", "Dee Lovelace"]),
        ("Grade", "A", ["Ada Lovelace", "Cy Twombly"]),
        ("Source type", "Paid", ["Ada Lovelace", "Cy Twombly"]),
        ("Temperature", "Hot", ["Ada Lovelace", "Dee Lovelace"]),
    ]
    for label, option, expected in each_alone:
        form.get_by_label(label).select_option(label=option)
        apply(page)
        expect(page.get_by_role("alert")).to_have_count(0)
        assert shown(page) == expected, label
        expect(form.get_by_label(label)).to_have_value(form.get_by_label(label).input_value())  # kept after Apply
        form.get_by_label(label).select_option(label="Any")
    for label, value, expected in [("Country", "us", ["Bob Builder", "Cy Twombly"]),
                                   ("Min score", "60", ["Ada Lovelace", "Dee Lovelace"])]:
        form.get_by_label(label).fill(value)
        apply(page)
        expect(page.get_by_role("alert")).to_have_count(0)
        assert shown(page) == expected, label
        expect(form.get_by_label(label)).to_have_value(value)
        form.get_by_label(label).fill("")

    # Search and every filter at once, then one filter that rules the last lead out.
    form.get_by_label("Search").fill("love")
    form.get_by_label("Stage").select_option(label="Marketing qualified")
    form.get_by_label("Grade").select_option(label="A")
    form.get_by_label("Source type").select_option(label="Paid")
    form.get_by_label("Temperature").select_option(label="Hot")
    form.get_by_label("Country").fill("gb")
    form.get_by_label("Min score").fill("70")
    apply(page)
    assert shown(page) == ["Ada Lovelace"]
    expect(form.get_by_label("Stage")).to_have_value("mql")
    expect(form.get_by_label("Search")).to_have_value("love")
    shot("search-and-filters")
    form.get_by_label("Min score").fill("90")
    apply(page)
    assert shown(page) == []
    expect(page.get_by_text("No leads match")).to_be_visible()

    # Cleared: every filter back at Any, the search box empty.
    form.get_by_label("Search").fill("")
    for label in ("Stage", "Grade", "Source type", "Temperature"):
        form.get_by_label(label).select_option(label="Any")
    for label in ("Country", "Min score"):
        form.get_by_label(label).fill("")
    apply(page)
    assert shown(page) == sorted(EVERYONE)
    page.set_viewport_size({"width": 390, "height": 844})
    shot("cleared-phone")


def in_order(page) -> list[str]:
    return page.locator("table.data tbody tr td a").all_inner_texts()


def test_sort_by_clicking_headers_with_a_filter_on_then_export_that_list(org, on_the_list, shot):
    page = on_the_list
    Lead.objects.create(organization=org, first_name="Eve", last_name="Formula", email="eve@example.com",
                        company='=HYPERLINK("https://evil.test")', score=70, temperature="hot")
    form = page.get_by_role("search", name="Filter leads")
    form.get_by_label("Temperature").select_option(label="Hot")
    apply(page)
    heading = page.get_by_role("columnheader", name="Score")

    heading.get_by_role("link").click()  # a number sorts biggest first
    expect(heading).to_have_attribute("aria-sort", "descending")
    assert in_order(page) == ["Ada Lovelace", "Eve Formula", "Dee Lovelace"]
    heading.get_by_role("link").click()
    expect(heading).to_have_attribute("aria-sort", "ascending")
    assert in_order(page) == ["Dee Lovelace", "Eve Formula", "Ada Lovelace"]
    expect(form.get_by_label("Temperature")).to_have_value("hot")  # the filter stayed on
    expect(form.get_by_label("Sort")).to_have_value("score")
    page.get_by_role("columnheader", name="Name").get_by_role("link").click()  # text sorts A–Z first
    assert in_order(page) == ["Ada Lovelace", "Dee Lovelace", "Eve Formula"]
    page.get_by_role("columnheader", name="Score").get_by_role("link").click()
    page.get_by_role("columnheader", name="Score").get_by_role("link").click()
    shot("sorted-by-score")

    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text(encoding="utf-8-sig"))))
    assert [row["email"] for row in rows] == ["dee@example.com", "eve@example.com", "ada@example.com"]
    assert list(rows[0]) == ["id", "first_name", "last_name", "email", "company", "lifecycle_stage", "score",
                             "grade", "owner", "created_at"]  # the columns the list shows
    assert rows[1]["company"] == "'=HYPERLINK(\"https://evil.test\")"  # arrives as text, not a formula
    assert download.value.suggested_filename.startswith("leads-")

    # The search box and the sort together: the sort stays when the search changes.
    form.get_by_label("Search").fill("lovelace")
    apply(page)
    assert in_order(page) == ["Dee Lovelace", "Ada Lovelace"]
    page.set_viewport_size({"width": 390, "height": 844})
    shot("sorted-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the table scrolls in its own box


def test_save_a_view_share_it_and_a_colleague_opens_it(org, member, on_the_list, login, shot):
    page = on_the_list
    member(Role.MARKETER, "mia@acme.test")
    form = page.get_by_role("search", name="Filter leads")
    form.get_by_label("Temperature").select_option(label="Hot")
    apply(page)
    page.get_by_role("columnheader", name="Score").get_by_role("link").click()
    assert in_order(page) == ["Ada Lovelace", "Dee Lovelace"]

    page.get_by_text("Save this view…").click()
    page.get_by_placeholder("View name").fill("Hot leads")
    page.get_by_label("Share with everyone in the org").check()
    page.get_by_role("button", name="Save view").click()
    expect(page.get_by_text("Saved the view “Hot leads” for everyone in the org.")).to_be_visible()
    expect(page.get_by_label("View", exact=True)).to_have_value(re.compile(r"\d+"))
    assert in_order(page) == ["Ada Lovelace", "Dee Lovelace"]
    shot("view-saved")

    with page.expect_navigation():  # the select opens the view as it changes
        page.get_by_label("View", exact=True).select_option(label="All leads")
    assert shown(page) == sorted(EVERYONE)
    with page.expect_navigation():  # the select opens the view as it changes
        page.get_by_label("View", exact=True).select_option(label="Hot leads (shared)")
    assert in_order(page) == ["Ada Lovelace", "Dee Lovelace"]
    expect(page.get_by_role("columnheader", name="Score")).to_have_attribute("aria-sort", "descending")

    page.get_by_role("button", name=re.compile("Log out")).click()
    login("mia@acme.test", "pw-member-123")
    page.locator("nav").get_by_role("link", name="Leads", exact=True).first.click()
    with page.expect_navigation():  # the select opens the view as it changes
        page.get_by_label("View", exact=True).select_option(label="Hot leads (shared)")
    assert in_order(page) == ["Ada Lovelace", "Dee Lovelace"]
    expect(page.get_by_role("button", name="Delete view")).to_have_count(0)  # only its owner deletes it
    page.set_viewport_size({"width": 390, "height": 844})
    shot("colleague-opens-it-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
