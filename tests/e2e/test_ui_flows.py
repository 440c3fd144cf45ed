"""Flows as members work in the browser: a template previewed then saved, a preview lead found by a part of their
name, a manager claiming from the pool of the team they manage, and notifications paged through and all read."""

import pytest

from leadcrm.models import Role
from leads.models import Lead
from nurturing.models import EmailTemplate
from routing.models import Notification, NotificationKind
from tests.routing import make_lead, make_rep, make_rule, make_team, route

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-member-123"
PHONE = {"width": 390, "height": 844}


def _fill_editor(page, name):
    page.fill("#id_name", name)
    page.fill("#id_subject", "Hello {{ lead.first_name }}")
    page.fill("#id_html", '<p>Hi {{ lead.first_name }}</p><a href="{{ unsubscribe_url }}">Stop</a>')
    page.fill("#id_text", "Hi {{ lead.first_name }}\n\nStop: {{ unsubscribe_url }}")


def test_a_template_previewed_then_saved_is_saved(org, member, page, login, shot):
    member(Role.MARKETER, "mara@acme.test")
    login("mara@acme.test", PASSWORD)
    page.goto("/emails/templates/")
    page.get_by_role("button", name="New template").click()
    _fill_editor(page, "Previewed first")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#template-preview .preview-subject")).to_have_text("Hello Ada")
    shot("previewed")
    page.get_by_role("button", name="Save template").click()
    expect(page.get_by_text("Template “Previewed first” saved as version 1.")).to_be_visible()
    assert EmailTemplate.objects.filter(organization=org, name="Previewed first").exists()
    shot("saved")
    page.set_viewport_size(PHONE)
    shot("saved-phone")


def test_without_scripts_preview_then_save_still_saves(org, member, chromium, site):
    """The Preview button's script-less fallback posts the whole editor to the preview; Save must still save."""
    member(Role.MARKETER, "mara@acme.test")
    context = chromium.new_context(base_url=site, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/accounts/login/")
        page.fill("#id_username", "mara@acme.test")
        page.fill("#id_password", PASSWORD)
        page.click("main button[type=submit]")
        page.goto("/emails/templates/new/")
        _fill_editor(page, "No script")
        page.get_by_role("button", name="Preview").click()
        expect(page.locator("#template-preview .preview-subject")).to_have_text("Hello Ada")
        page.get_by_role("button", name="Save template").click()
        expect(page.get_by_text("Template “No script” saved as version 1.")).to_be_visible()
        assert EmailTemplate.objects.filter(organization=org, name="No script").exists()
    finally:
        context.close()


def test_the_preview_finds_a_lead_by_a_part_of_their_name_and_the_keyboard_picks_it(org, member, other_org, page,
                                                                                     login, shot):
    member(Role.MARKETER, "mara@acme.test")
    Lead.objects.create(organization=org, email="grace@navy.test", first_name="Grace", last_name="Hopper",
                        company="US Navy")
    Lead.objects.create(organization=org, email="hop@example.com", first_name="Hopkins", last_name="<b>Bold</b>")
    Lead.objects.create(organization=other_org, email="grace@rival.test", first_name="Grace", last_name="Hopperton")
    login("mara@acme.test", PASSWORD)
    page.goto("/emails/templates/")
    page.get_by_role("button", name="New template").click()
    _fill_editor(page, "Picked lead")

    box = page.get_by_role("combobox", name="Preview with the lead")
    box.click()
    box.press_sequentially("hOPp", delay=50)  # a part of the last name, in any case
    options = page.get_by_role("listbox", name="Matching leads").get_by_role("option")
    expect(options).to_have_count(1)  # Hopkins does not contain "hopp"; the other org's Grace is not offered
    expect(options.first).to_contain_text("Grace Hopper")
    expect(options.first).to_contain_text("US Navy")
    shot("lead-options")
    box.press("ArrowDown")
    expect(options.first).to_have_attribute("aria-selected", "true")
    box.press("Enter")
    expect(box).to_have_value("grace@navy.test")
    expect(page.locator("#template-preview .preview-subject")).to_have_text("Hello Grace")
    expect(page.locator("#template-preview")).to_contain_text("For grace@navy.test")
    shot("previewed-with-grace")

    # A company name works too; a lead's name is shown as text, never as markup.
    box.fill("")
    box.press_sequentially("example", delay=50)
    expect(options.first).to_contain_text("<b>Bold</b>")
    page.set_viewport_size(PHONE)
    shot("lead-options-phone")


@pytest.fixture
def managed_pool(org, member):
    """A team the manager manages but is not in, whose rule sends every lead to its pool, and one lead there."""
    manager = member(Role.MANAGER, "meg@acme.test")
    team = make_team(org, "Inbound", [make_rep(org, "ann")], manager=manager)
    make_rule(org, "to the pool", strategy="pool", team=team, is_fallback=True)
    lead = make_lead(org, first_name="Pooled", last_name="Prospect", email="pooled@example.com")
    route(lead)
    return lead


def test_a_manager_sees_and_claims_the_pool_of_the_team_they_manage(org, managed_pool, page, login, shot):
    login("meg@acme.test", PASSWORD)
    page.locator("header").get_by_role("link", name="Pool").click()
    row = page.locator("table.pool tbody tr").filter(has_text="Pooled Prospect")
    expect(row).to_contain_text("Inbound")
    shot("manager-pool")
    row.get_by_role("button", name="Claim").click()
    expect(page.locator("main")).to_contain_text("is yours")
    assert Lead.objects.get(pk=managed_pool.pk).owner.email == "meg@acme.test"
    shot("claimed")
    page.set_viewport_size(PHONE)
    shot("claimed-phone")


def test_notifications_page_through_all_and_mark_all_read_clears_the_badge(org, member, page, login, shot):
    rep = member(Role.REP, "rita@acme.test")
    lead = make_lead(org, first_name="Noted")
    for number in range(45):
        Notification.objects.create(organization=org, user=rep, lead=lead, kind=NotificationKind.ASSIGNED,
                                    message=f"Notice number {number:02d}")
    login("rita@acme.test", PASSWORD)
    badge = page.locator("header a.badge.unread")
    expect(badge).to_have_text("45 new")
    badge.click()
    notes = page.locator("ul.notifications li")
    expect(notes).to_have_count(20)
    expect(notes.first).to_contain_text("Notice number 44")
    expect(page.locator("main")).to_contain_text("25 unread on other pages")
    shot("newest")
    page.get_by_role("link", name="Older").click()
    expect(notes.first).to_contain_text("Notice number 24")
    page.get_by_role("link", name="Older").click()
    expect(notes).to_have_count(5)
    expect(notes.last).to_contain_text("Notice number 00")  # the oldest is reachable
    expect(page.get_by_role("link", name="Older")).to_have_count(0)
    shot("oldest")
    page.get_by_role("link", name="Newer").click()
    expect(notes.first).to_contain_text("Notice number 24")
    assert Notification.objects.filter(user=rep, read_at__isnull=True).count() == 0  # every page shown was read

    Notification.objects.create(organization=org, user=rep, lead=lead, kind=NotificationKind.ASSIGNED,
                                message="One more")
    Notification.objects.create(organization=org, user=rep, lead=lead, kind=NotificationKind.ASSIGNED,
                                message="And another")
    page.reload()
    expect(badge).to_have_text("2 new")
    page.get_by_role("button", name="Mark all as read").click()
    expect(page.get_by_text("2 notifications marked as read.")).to_be_visible()
    expect(page.locator("header .queue-count")).to_be_visible()
    expect(badge).to_have_count(0)
    assert not Notification.objects.filter(user=rep, read_at__isnull=True).exists()
    shot("all-read")
    page.set_viewport_size(PHONE)
    shot("all-read-phone")


def test_a_converted_lead_is_not_offered_convert_again_and_pages_have_an_icon_and_a_404(org, member, page, login,
                                                                                          shot):
    member(Role.MANAGER, "meg@acme.test")
    lead = make_lead(org, first_name="Quinn", company="Quinn Ltd", lifecycle_stage="sql")
    failures = []
    page.on("response", lambda response: failures.append(response.url) if response.status >= 400 else None)
    login("meg@acme.test", PASSWORD)
    page.locator("header").get_by_role("link", name="Leads").click()
    page.get_by_role("link", name="Quinn", exact=True).click()
    convert = page.get_by_role("button", name="Convert to account and deal…")
    convert.click()
    page.fill("#id_deal_name", "Quinn pilot")
    page.fill("#id_amount", "5000")
    page.select_option("#id_currency", "EUR")
    page.get_by_role("button", name="Convert", exact=True).click()
    expect(page.locator(".deal-card", has_text="Quinn pilot")).to_contain_text("Open")
    expect(convert).to_have_count(0)  # its open deal is what is worked now
    assert Lead.objects.get(pk=lead.pk).lifecycle_stage == "opportunity"
    # Flash messages carry no list bullet.
    for item in page.locator("ul.messages li").all():
        assert item.evaluate("element => getComputedStyle(element).listStyleType") == "none"
    shot("converted")
    assert page.locator("link[rel=icon]").get_attribute("href").endswith(".svg")
    page.goto("/favicon.ico")
    assert failures == [], failures  # no page, icon, script or style was missing on the way

    page.goto("/leads/no-such-page/")
    expect(page.locator("main h1")).to_have_text("Page not found")
    expect(page.locator("header").get_by_role("link", name="Leads")).to_be_visible()  # inside the app layout
    shot("not-found")
    page.set_viewport_size(PHONE)
    shot("not-found-phone")
