"""The pipeline board in the browser, as a rep uses it: she opens it from the menu, drags a card to the next column
with the mouse, moves another with the keyboard (its stage picker and Move), filters by close month, and at phone
width loses a deal with the picker — refused until she says why. Photographed at 1280 and 390 px."""

from datetime import date

import pytest

from leadcrm.models import Role
from leads.models import Deal, DealStageChange, Stage
from tests.e2e.test_phone_width import DESKTOP, PHONE, Walk
from tests.leads.deals import make_deal

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def deals(org, member):
    anna = member(Role.REP, "anna@acme.test")
    other = member(Role.REP, "ben@acme.test")
    Stage.objects.for_org(org).filter(name="Proposal").update(rotting_days=7)
    made = {
        "pilot": make_deal(
            org,
            owner=anna,
            name="Pilot for Initech",
            amount="12000.00",
            currency="EUR",
            expected_close=date(2027, 3, 10),
            days_in_stage=2,
        ),
        "umbrella": make_deal(
            org,
            owner=anna,
            name="Umbrella renewal",
            stage_name="Proposal",
            amount="8000.00",
            currency="EUR",
            expected_close=date(2027, 4, 20),
            days_in_stage=9,
        ),
        "<b>Globex</b>": make_deal(
            org,
            owner=anna,
            name="<b>Globex</b> seats",
            stage_name="Negotiation",
            amount="2500.00",
            currency="USD",
            expected_close=date(2027, 3, 28),
        ),
        "bens": make_deal(org, owner=other, name="Ben's own deal"),
    }
    return anna, made


def _column(page, stage):
    return page.locator(".board-column", has=page.get_by_role("heading", name=stage))


def _card(page, name):
    return page.locator(".deal-card", has_text=name)


def test_a_rep_drags_and_picks_stages_on_the_board(org, deals, page, login, shot):
    anna, made = deals
    login("anna@acme.test", "pw-member-123")
    page.get_by_role("link", name="Board").click()
    expect(page.locator("main h1")).to_have_text("Pipeline board")
    expect(page.get_by_role("link", name="Ben's own deal")).to_have_count(0)  # a rep sees her own deals
    expect(_card(page, "Umbrella renewal").locator(".rot-flag")).to_have_text("Rotting")
    expect(_column(page, "Proposal").locator(".col-total")).to_contain_text("weighted 4,000.00 EUR")
    expect(page.get_by_role("link", name="<b>Globex</b> seats")).to_be_visible()  # the name as typed, not markup
    shot("board")

    # Drag "Pilot for Initech" from Qualification onto Needs analysis with the mouse.
    card = _card(page, "Pilot for Initech").locator("h3")
    target = _column(page, "Needs analysis")
    card.hover()
    page.mouse.down()
    box = target.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 60, steps=12)
    page.mouse.up()
    expect(page.get_by_role("status")).to_contain_text("Moved “Pilot for Initech” to Needs analysis.")
    expect(_column(page, "Needs analysis").get_by_role("link", name="Pilot for Initech")).to_be_visible()
    shot("after-drag")

    # The keyboard way: the card's stage picker, then Move (Tab to it, Enter).
    umbrella = _card(page, "Umbrella renewal")
    picker = umbrella.get_by_label("Stage of Umbrella renewal")
    picker.focus()
    picker.select_option(label="Negotiation")
    page.keyboard.press("Tab")  # the reason box
    page.keyboard.press("Tab")  # Move
    expect(umbrella.get_by_role("button", name="Move")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Moved “Umbrella renewal” to Negotiation.")
    expect(_column(page, "Negotiation").get_by_role("link", name="Umbrella renewal")).to_be_visible()
    expect(_card(page, "Umbrella renewal").locator(".rot-flag")).to_have_count(0)  # a fresh stay

    # Filter by expected close month: March 2027 keeps two of her deals.
    page.get_by_label("Expected close month").fill("2027-03")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".deal-card")).to_have_count(2)
    expect(page.get_by_role("link", name="Umbrella renewal")).to_have_count(0)
    shot("filtered")

    assert Deal.objects.get(pk=made["pilot"].pk).stage.name == "Needs analysis"
    assert list(
        DealStageChange.objects.filter(deal=made["umbrella"])
        .order_by("entered_at")
        .values_list("stage_name", "entered_by")
    ) == [("Proposal", None), ("Negotiation", anna.pk)]


def test_at_phone_width_the_stage_picker_moves_and_losing_needs_a_reason(org, deals, page, login, shot):
    _, made = deals
    page.set_viewport_size(PHONE)
    login("anna@acme.test", "pw-member-123")
    page.goto("/deals/board/")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot("board-phone")

    card = _card(page, "Pilot for Initech")
    card.get_by_label("Stage of Pilot for Initech").select_option(label="Lost")
    card.get_by_role("button", name="Move").click()
    expect(page.get_by_role("status")).to_contain_text("Say why the deal was lost.")
    assert Deal.objects.get(pk=made["pilot"].pk).status == "open"

    card = _card(page, "Pilot for Initech")
    card.get_by_label("Stage of Pilot for Initech").select_option(label="Lost")
    card.get_by_label("Reason for Pilot for Initech").fill("Chose a competitor")
    card.get_by_role("button", name="Move").click()
    expect(page.get_by_role("status")).to_contain_text("Moved “Pilot for Initech” to Lost.")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot("lost-phone")
    deal = Deal.objects.get(pk=made["pilot"].pk)
    assert deal.status == "lost" and deal.lost_reason == "Chose a competitor"

    page.set_viewport_size(DESKTOP)
    page.reload()
    shot("board-desktop-after")


def test_an_admin_shapes_the_pipeline_and_reads_the_forecast(org, deals, page, login, shot):
    """Settings → Pipelines: a probability over 100 is refused at its row; Proposal then rots after 5 days. The
    forecast and stage reports draw their chart beside the table; each page fits a phone."""
    page.set_viewport_size(PHONE)
    walk = Walk(page, shot)
    login("owner@acme.test", "pw-acme-123")
    walk.menu("Settings", "Pipelines")
    walk.check("pipelines", walk.action("Edit Sales"))
    walk.action("Edit Sales").click()
    expect(page.locator("main h1")).to_have_text("Edit Sales")
    page.get_by_label("Win probability of stage 3").fill("120")
    page.get_by_label("Rots after, stage 3").fill("5")
    page.get_by_role("button", name="Save pipeline").click()
    expect(page.locator("main")).to_contain_text("Ensure this value is less than or equal to 100.")
    walk.check("pipeline-refused")
    page.get_by_label("Win probability of stage 3").fill("60")
    page.get_by_role("button", name="Save pipeline").click()
    expect(page.get_by_role("status")).to_contain_text("Saved the pipeline “Sales”.")
    assert list(Stage.objects.for_org(org).filter(name="Proposal").values_list("probability", "rotting_days")) == [
        (60, 5)
    ]

    walk.menu("Reports")
    page.get_by_role("navigation", name="Reports").get_by_role("link", name="Forecast").click()
    page.get_by_label("Start").fill("2027-01-01")
    page.get_by_label("End").fill("2027-06-30")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("canvas[data-chart=report-chart]")).to_be_attached()
    expect(page.locator("main table")).to_contain_text("anna@acme.test")
    walk.check("forecast")
    page.get_by_role("navigation", name="Reports").get_by_role("link", name="Pipeline stages").click()
    expect(page.locator("main table")).to_contain_text("Needs analysis")
    walk.check("pipeline-stages")
    assert not walk.problems, "\n".join(walk.problems)
