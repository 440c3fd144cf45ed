"""A marketer's day in the browser: a new form, a visitor fills it in, the lead arrives scored, a segment picks it
out, a sequence emails it, and opening and clicking that email raises its score."""

import re
import time

import pytest

from leadcrm.models import Role
from leads.models import Lead
from nurturing import services as nurturing
from nurturing.models import Message

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

MARKETER_EMAIL, MARKETER_PASSWORD = "marketer@acme.test", "pw-member-123"
VISITOR_EMAIL = "ada@example.com"
SLUG = "spring-webinar"


def _wait_for(check, seconds=30):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _score(email):
    return Lead.objects.filter(email=email).values_list("score", flat=True).first()


@pytest.fixture
def marketing_org(org, member, site):
    """An org with its default scoring rules (a form submission +15, a click on an email +5), a marketer, a lead
    who never filled in a form, and a one-email sequence whose email links to the org's public form."""
    member(Role.MARKETER, email=MARKETER_EMAIL)
    Lead.objects.create(organization=org, email="cold@example.com", first_name="Cole", consent_opt_in=True)
    template = nurturing.create_template(
        organization_id=org.pk, name="Webinar invite", subject="Your seat at the spring webinar",
        html=(f'<p>Hi {{{{ lead.first_name|default:"there" }}}},</p><p><a href="{site}/f/{SLUG}/">Save your seat'
              '</a></p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'),
        text="Save your seat: {{ unsubscribe_url }}")
    return nurturing.save_sequence(organization_id=org.pk, data={
        "name": "Webinar drip", "active": True, "steps": [{"type": "email", "template": str(template.pk)}]})


def test_a_marketer_turns_a_visitor_into_a_nurtured_lead(marketing_org, e2e_worker, smtp_server, chromium, site, page,
                                                         login, shot):
    sequence = marketing_org
    login(MARKETER_EMAIL, MARKETER_PASSWORD)

    # A new form, with a consent checkbox (the sequence only emails leads who opted in).
    page.goto("/forms/")
    page.get_by_role("button", name="New form").click()
    page.fill("#id_name", "Spring webinar")
    page.fill("#id_slug", SLUG)
    page.fill("#id_consent_text", "Email me about the webinar.")
    shot("new-form")
    page.get_by_role("button", name="Save form").click()
    expect(page.get_by_text("Form “Spring webinar” saved.")).to_be_visible()
    expect(page.locator("main")).to_contain_text(f"{site}/f/{SLUG}/")
    folder = shot("form-saved").parent

    # A visitor, not signed in, fills it in on the public page.
    visitor = chromium.new_context(base_url=site, viewport={"width": 800, "height": 900})
    try:
        public = visitor.new_page()
        public.goto(f"/f/{SLUG}/")
        public.fill("#id_email", VISITOR_EMAIL)
        public.fill("#id_first_name", "Ada")
        public.fill("#id_last_name", "Lovelace")
        public.fill("#id_company", "Lovelace <Labs> & Co")
        public.check("#id_consent_opt_in")
        public.screenshot(path=str(folder / "02a-visitor-fills-the-form.png"), full_page=True)
        public.get_by_role("button", name="Submit").click()
        expect(public.get_by_text("Thank you! We will be in touch.")).to_be_visible()
        public.screenshot(path=str(folder / "02b-visitor-thanked.png"), full_page=True)
    finally:
        visitor.close()

    # The worker scores the new lead: +15 for the form submission.
    _wait_for(lambda: _score(VISITOR_EMAIL) == 15)
    lead = Lead.objects.get(email=VISITOR_EMAIL)
    assert lead.consent_opt_in
    page.goto("/leads/")
    row = page.locator("tr", has_text=VISITOR_EMAIL)
    expect(row).to_contain_text("Ada Lovelace")
    expect(row).to_contain_text("Lovelace <Labs> & Co")  # shown as text, not markup
    score_column = [text.strip() for text in page.locator("table.data thead th").all_inner_texts()].index("Score")
    expect(row.locator("td").nth(score_column)).to_have_text("15")
    shot("lead-scored")

    # A segment of leads scoring 10 or more, built in the query builder; the cold lead stays out.
    page.goto("/segments/")
    page.get_by_role("button", name="New segment").click()
    page.fill("#id_name", "Warm leads")
    condition = page.locator("#segment-builder [data-row=field]").first  # a new segment starts with a blank row
    condition.locator("[data-key=field]").select_option("score")
    condition.locator("[data-key=op]").select_option("gte")
    condition.locator("[data-key=value]").fill("10")
    expect(page.locator("#segment-count")).to_contain_text("1 lead matches right now.")
    shot("segment-builder")
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_text("Segment “Warm leads” saved.")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Ada Lovelace")
    expect(page.locator("main")).not_to_contain_text("cold@example.com")
    shot("segment-saved")

    # Enrol the segment on the sequence's page.
    page.goto(f"/emails/sequences/{sequence.pk}/")
    page.locator("#id_segment").select_option(label="Warm leads")
    page.get_by_role("button", name="Enrol", exact=True).click()
    expect(page.get_by_text("1 lead enrolled.")).to_be_visible()
    shot("segment-enrolled")

    # No beat runs here: the tick is enqueued by hand, and the worker sends the email.
    from nurturing.tasks import tick

    tick.delay()
    _wait_for(lambda: smtp_server.messages)
    mail = smtp_server.messages[0]
    assert mail["To"] == VISITOR_EMAIL
    assert mail["Subject"] == "Your seat at the spring webinar"
    html = mail.get_body(("html",)).get_content()
    assert "Hi Ada," in html
    pixel = re.search(r'<img src="([^"]+/t/o/[^"]+\.gif)"', html).group(1)
    link = re.search(r'<a href="([^"]+/t/c/[^"]+/0/)"', html).group(1)
    assert pixel.startswith(site) and link.startswith(site)
    page.goto(f"/emails/sequences/{sequence.pk}/")
    shot("email-sent")

    # The lead opens the email and clicks its link.
    response = page.goto(pixel)
    assert response.status == 200 and response.headers["content-type"] == "image/gif"
    page.goto(link)
    page.wait_for_url(f"{site}/f/{SLUG}/")
    expect(page.get_by_role("button", name="Submit")).to_be_visible()
    shot("email-link-followed")
    message = Message.objects.get(lead=lead)
    assert message.opened_at is not None and message.clicked_at is not None

    # The click is worth +5: the lead's page shows 20.
    _wait_for(lambda: _score(VISITOR_EMAIL) == 20)
    page.goto(f"/leads/{lead.pk}/")
    score = page.locator(".lead-facts dt", has_text=re.compile(r"^Score$")).locator("xpath=following-sibling::dd[1]")
    expect(score).to_have_text("20")
    expect(page.locator("#score-panel .score-parts tr", has_text="Behaviour")).to_contain_text("+20")
    why = page.locator("#score-panel tr", has_text="Clicked an email")
    expect(why).to_contain_text("+5")
    shot("lead-score-raised")
