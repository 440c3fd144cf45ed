"""The audit log as an admin reads it: filtering through the page's form, and wide JSON changes that still fit
the page on a desktop and on a phone."""

from datetime import timedelta

import pytest
from django.utils import timezone

from leadcrm import audit
from leadcrm.models import AuditEntry, Role

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RULE, TEAM = "scoring.scoringrule", "routing.team"
# A routing rule's conditions as they are stored: one long JSON value with no spaces to break at.
CONDITIONS = {"all": [{"field": f"custom_fields.some_rather_long_field_name_{n}", "op": "in",
                       "value": ["https://www.example.com/pricing/enterprise/plan-" + "x" * 40]} for n in range(12)]}


@pytest.fixture
def entries(org):
    now = timezone.now()
    rows = [
        ("ann@acme.test", "created", RULE, "Visited pricing", {"points": [None, 10]}, now - timedelta(days=3)),
        ("ann@acme.test", "updated", TEAM, "EMEA", {"conditions": [{}, CONDITIONS]}, now - timedelta(days=1)),
        ("API key sync", "deleted", RULE, "Opened email", {"points": [5, None]}, now),
    ]
    for actor, action, object_type, label, changes, at in rows:
        AuditEntry.objects.create(organization=org, actor_label=actor, action=action, object_type=object_type,
                                  object_id=label, object_label=label, changes=changes, time=at)


LABELS = {"Visited pricing", "EMEA", "Opened email"}


def shown(page) -> list[str]:
    """The fixture's entries on the page (adding the members wrote entries of their own)."""
    if page.locator("table.audit-log").count() == 0:
        return []
    objects = page.locator("table.audit-log > tbody > tr > td:nth-child(4)").all_inner_texts()
    return sorted(label for label in (text.split(": ", 1)[-1] for text in objects) if label in LABELS)


def no_page_scroll(page):
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page is {width}px wide"


@pytest.fixture
def on_the_log(org, member, entries, page, login):
    member(Role.ADMIN, "root@acme.test")
    login("root@acme.test", "pw-member-123")
    page.goto("/audit/")
    expect(page.locator("main h1")).to_have_text("Audit log")
    return page


def test_each_filter_alone_together_and_cleared(on_the_log, shot):
    page = on_the_log
    form = page.get_by_role("form", name="Filter the audit log")
    everything = ["EMEA", "Opened email", "Visited pricing"]
    assert shown(page) == everything

    def filter_by():
        form.get_by_role("button", name="Filter").click()
        page.wait_for_load_state()
        expect(page.get_by_role("alert")).to_have_count(0)  # no "Select a valid choice" for "Any"
        return shown(page)

    form.get_by_label("Who").fill("ann@")
    assert filter_by() == ["EMEA", "Visited pricing"]
    form.get_by_label("Who").fill("")
    form.get_by_label("Object").select_option(label=audit.type_name(RULE))
    assert filter_by() == ["Opened email", "Visited pricing"]
    form.get_by_label("Object").select_option(label="Everything")
    form.get_by_label("Change").select_option(label="Updated")
    assert filter_by() == ["EMEA"]
    form.get_by_label("Change").select_option(label="Any")
    form.get_by_label("From").fill((timezone.localdate() - timedelta(days=2)).isoformat())
    assert filter_by() == ["EMEA", "Opened email"]
    form.get_by_label("From").fill("")
    form.get_by_label("To").fill((timezone.localdate() - timedelta(days=2)).isoformat())
    assert filter_by() == ["Visited pricing"]
    form.get_by_label("To").fill("")

    form.get_by_label("Who").fill("ann")
    form.get_by_label("Object").select_option(label=audit.type_name(RULE))
    form.get_by_label("Change").select_option(label="Created")
    assert filter_by() == ["Visited pricing"]
    expect(form.get_by_label("Change")).to_have_value("created")
    shot("filtered")

    form.get_by_label("Who").fill("")
    form.get_by_label("Object").select_option(label="Everything")
    form.get_by_label("Change").select_option(label="Any")
    assert filter_by() == everything


@pytest.mark.parametrize("width", [1280, 390])
def test_a_wide_json_change_fits_the_page(on_the_log, shot, width):
    page = on_the_log
    page.set_viewport_size({"width": width, "height": 900 if width > 400 else 844})
    page.reload()
    shot("collapsed")
    no_page_scroll(page)
    # The big value waits behind a disclosure; opened, it wraps inside the page.
    big = page.locator("table.changes tr").filter(has_text="conditions").locator("details")
    expect(big).to_be_visible()
    expect(big.locator("pre")).not_to_be_visible()
    big.locator("summary").click()
    expect(big.locator("pre")).to_contain_text("some_rather_long_field_name_11")
    shot("opened")
    no_page_scroll(page)
