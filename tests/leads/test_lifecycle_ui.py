"""Browser: the lead page's Stage card, BANT form, conversion and deals; the deals list, the account page and
the duplicates page with merging. Roles, refusals, escaping and query counts."""

import re
from decimal import Decimal
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from leadcrm import services as tenancy
from leadcrm.models import Role
from leads import services
from leads.models import (
    ALLOWED_MOVES,
    Account,
    Activity,
    Deal,
    Lead,
    LifecycleStage,
    QualificationSettings,
    Reason,
    SegmentKind,
    SegmentMember,
)

pytestmark = pytest.mark.django_db

MARKUP = '<script>alert("x")</script>'
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
ORG_WIDE = [Role.ADMIN, Role.MANAGER, Role.MARKETER]


def make_lead(org, email="lee@example.com", stage="lead", **fields):
    lead = Lead.objects.create(organization=org, email=email, **fields)
    if stage != "lead":
        Lead.objects.filter(pk=lead.pk).update(lifecycle_stage=stage)
        lead.refresh_from_db()
    return lead


def make_deal(org, lead=None, name="Big deal", amount="100.00", currency="USD", account=None, **fields):
    account = account or Account.objects.get_or_create(organization=org, name="Widgets Ltd")[0]
    return Deal.objects.create(organization=org, account=account, lead=lead, name=name, amount=Decimal(amount),
                               currency=currency, **fields)


def page(response) -> str:
    return response.content.decode()


def stage_card(html: str) -> str:
    return re.search(r'<article id="stage".*?</article>', html, re.S).group(0)


def offered_moves(html: str) -> set[str]:
    """Stages the Stage card offers: submit buttons and the reason forms' hidden stage inputs."""
    card = stage_card(html)
    return set(re.findall(r'name="stage" value="([a-z]+)"', card))


def errors_of(html: str) -> str:
    return " ".join(unescape(m) for m in re.findall(r'class="errorlist"[^>]*>(.*?)</(?:ul|p)>', html, re.S))


def first_reason(org, kind):
    return Reason.objects.for_org(org).filter(kind=kind, active=True).order_by("label").first().label


@pytest.fixture
def rep(member):
    return member(Role.REP, "rep@acme.test")


@pytest.fixture
def rep_client(client, rep):
    client.force_login(rep)
    return client


# --- who sees what -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ORG_WIDE)
def test_org_wide_roles_open_every_page(client, org, member, role):
    client.force_login(member(role, f"{role}-x@acme.test"))
    lead = make_lead(org, stage="sql", company="Widgets Ltd")
    deal = make_deal(org, lead)
    for url in (f"/leads/{lead.pk}/", f"/leads/{lead.pk}/convert/", "/deals/", f"/accounts/{deal.account_id}/",
                "/leads/duplicates/", f"/deals/{deal.pk}/lose/"):
        assert client.get(url).status_code == 200, url
    assert 'href="/deals/"' in page(client.get("/leads/"))
    assert 'href="/leads/duplicates/"' in page(client.get("/leads/"))


def test_rep_works_on_their_own_leads_only(rep_client, org, rep):
    mine = make_lead(org, "mine@example.com", stage="sql", owner=rep, company="Mine Co")
    theirs = make_lead(org, "theirs@example.com", stage="sql", company="Theirs Co")
    my_deal = make_deal(org, mine, name="My deal", account=Account.objects.create(organization=org, name="Mine Co"))
    their_deal = make_deal(org, theirs, name="Their deal",
                           account=Account.objects.create(organization=org, name="Theirs Co"))
    for url in (f"/leads/{mine.pk}/", f"/leads/{mine.pk}/convert/", f"/accounts/{my_deal.account_id}/", "/deals/"):
        assert rep_client.get(url).status_code == 200, url
    for url in (f"/leads/{theirs.pk}/convert/", f"/accounts/{their_deal.account_id}/", f"/deals/{their_deal.pk}/lose/"):
        assert rep_client.get(url).status_code == 404, url
    assert rep_client.post(f"/leads/{theirs.pk}/stage/", {"stage": "opportunity"}).status_code == 404
    assert rep_client.post(f"/leads/{theirs.pk}/qualification/", {"bant_budget": "x"}).status_code == 404
    assert rep_client.post(f"/deals/{their_deal.pk}/win/").status_code == 404
    theirs.refresh_from_db()
    their_deal.refresh_from_db()
    assert (theirs.lifecycle_stage, theirs.bant_budget, their_deal.status) == ("sql", "", "open")
    deals = page(rep_client.get("/deals/"))
    assert "My deal" in deals and "Their deal" not in deals
    # the rep may move, qualify, convert and close on their own lead
    assert rep_client.post(f"/leads/{mine.pk}/stage/", {"stage": "opportunity"}).status_code == 302
    assert rep_client.post(f"/deals/{my_deal.pk}/win/").status_code == 302
    mine.refresh_from_db()
    assert mine.lifecycle_stage == "customer"


def test_reps_cannot_use_the_duplicates_page(rep_client, org):
    a = make_lead(org, "a@example.com", phone="+14155550100")
    b = make_lead(org, "b@example.com", phone="+14155550100")
    assert rep_client.get("/leads/duplicates/").status_code == 403
    response = rep_client.post("/leads/duplicates/merge/", {"keep": a.pk, "lead": [a.pk, b.pk], "confirm": "yes"})
    assert response.status_code == 403
    assert Lead.objects.filter(pk=b.pk).exists()
    html = page(rep_client.get("/leads/"))
    assert 'href="/leads/duplicates/"' not in html
    assert 'href="/deals/"' in html  # every member has the deals list


def test_signed_out_visitors_are_sent_to_log_in(client, org):
    lead = make_lead(org)
    for url in ("/deals/", "/leads/duplicates/", f"/leads/{lead.pk}/convert/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert client.post(f"/leads/{lead.pk}/stage/", {"stage": "mql"}).status_code == 302
    lead.refresh_from_db()
    assert lead.lifecycle_stage == "lead"


# --- the Stage card ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", LifecycleStage.values)
def test_the_stage_card_offers_exactly_the_allowed_moves(browser, org, stage):
    lead = make_lead(org, stage=stage)
    html = page(browser.get(f"/leads/{lead.pk}/"))
    assert offered_moves(html) == set(ALLOWED_MOVES[stage])
    card = stage_card(html)
    assert LifecycleStage(stage).label in card
    if not ALLOWED_MOVES[stage]:
        assert "no moves from here" in card
    for kind in ("disqualified", "recycled"):
        if kind in ALLOWED_MOVES[stage]:  # the reason-taking moves list the org's reasons
            assert f'<option value="{first_reason(org, kind)}">' in card


def test_a_move_is_recorded_with_who_and_when(browser, org):
    lead = make_lead(org, stage="mql")
    response = browser.post(f"/leads/{lead.pk}/stage/", {"stage": "sal"})
    assert response.status_code == 302 and response["Location"] == f"/leads/{lead.pk}/"
    lead.refresh_from_db()
    assert lead.lifecycle_stage == "sal" and "sal" in lead.stage_entered_at
    move = Activity.objects.get(lead=lead, type="stage_change")
    assert move.actor.email == "marketer@acme.test" and move.properties["to"] == "sal"
    html = page(browser.get(f"/leads/{lead.pk}/"))
    assert "Moved to Sales accepted." in html
    assert "Sales accepted" in re.search(r'<ol class="stage-history".*?</ol>', html, re.S).group(0)


@pytest.mark.parametrize(("start", "target"), [("mql", "customer"), ("lead", "opportunity"), ("customer", "lead"),
                                               ("sql", "bogus")])
def test_a_refused_move_shows_the_services_message_and_changes_nothing(browser, org, start, target):
    lead = make_lead(org, stage=start)
    before = Activity.objects.filter(lead=lead).count()
    response = browser.post(f"/leads/{lead.pk}/stage/", {"stage": target})
    assert response.status_code == 400
    message = unescape(re.search(r'id="stage-error">(.*?)</p>', page(response), re.S).group(1))
    with pytest.raises(services.StageMoveRefused) as refusal:
        services.check_move(lead, target)
    assert message == str(refusal.value)
    lead.refresh_from_db()
    assert lead.lifecycle_stage == start
    assert Activity.objects.filter(lead=lead).count() == before


def test_disqualifying_needs_a_reason_from_the_list(browser, org):
    lead = make_lead(org, stage="mql")
    for reason in ("", "Because I say so"):
        response = browser.post(f"/leads/{lead.pk}/stage/", {"stage": "disqualified", "reason": reason})
        assert response.status_code == 400
        assert "Moving to disqualified needs a reason" in unescape(page(response))
    lead.refresh_from_db()
    assert lead.lifecycle_stage == "mql"
    reason = first_reason(org, "disqualified")
    assert browser.post(f"/leads/{lead.pk}/stage/", {"stage": "disqualified", "reason": reason}).status_code == 302
    lead.refresh_from_db()
    assert (lead.lifecycle_stage, lead.stage_reason) == ("disqualified", reason)
    card = stage_card(page(browser.get(f"/leads/{lead.pk}/")))
    assert f"Last reason: {reason}" in unescape(card)


def test_a_plain_move_ignores_a_posted_reason(browser, org):
    lead = make_lead(org, stage="mql")
    assert browser.post(f"/leads/{lead.pk}/stage/", {"stage": "sal", "reason": "x\x00y"}).status_code == 302
    assert Activity.objects.get(lead=lead, type="stage_change").properties["reason"] == ""


# --- BANT ------------------------------------------------------------------------------------------------


def test_required_bant_blocks_sql_until_filled_in(browser, org):
    QualificationSettings.objects.filter(organization=org).update(bant_required_for_sql=["bant_budget", "bant_need"])
    lead = make_lead(org, stage="sal")
    html = page(browser.get(f"/leads/{lead.pk}/"))
    assert re.search(r"Budget \(required for SQL\)\s*<input", html)
    assert re.search(r"Need \(required for SQL\)\s*<textarea", html)
    assert re.search(r"Authority\s*<input", html)  # not required
    assert "Before Sales qualified: fill in budget, need under Qualification." in stage_card(html)

    response = browser.post(f"/leads/{lead.pk}/stage/", {"stage": "sql"})
    assert response.status_code == 400
    assert "Fill in budget, need (BANT) before moving the lead to SQL." in unescape(page(response))
    lead.refresh_from_db()
    assert lead.lifecycle_stage == "sal"

    response = browser.post(f"/leads/{lead.pk}/qualification/", {
        "bant_budget": "  50k EUR ", "bant_authority": "", "bant_need": "Faster routing", "bant_timeline": "Q3"})
    assert response.status_code == 302
    lead.refresh_from_db()
    assert (lead.bant_budget, lead.bant_need, lead.bant_timeline) == ("50k EUR", "Faster routing", "Q3")
    assert browser.post(f"/leads/{lead.pk}/stage/", {"stage": "sql"}).status_code == 302
    lead.refresh_from_db()
    assert lead.lifecycle_stage == "sql"


def test_bad_bant_answers_are_form_errors_and_nothing_is_saved(browser, org):
    lead = make_lead(org, bant_need="Old need")
    response = browser.post(f"/leads/{lead.pk}/qualification/", {"bant_budget": "x" * 201, "bant_need": "New need",
                                                                  "bant_authority": "a\x00b"})
    assert response.status_code == 400
    errors = errors_of(page(response))
    assert "at most 200 characters" in errors and "Null characters are not allowed" in errors
    lead.refresh_from_db()
    assert (lead.bant_budget, lead.bant_need, lead.bant_authority) == ("", "Old need", "")


# --- conversion --------------------------------------------------------------------------------------------


def convert_post(**overrides):
    return {"account_choice": "new", "account_name": "Widgets Ltd", "website": "widgets.example",
            "industry": "Software", "country": "de", "deal_name": "Widgets pilot", "amount": "12500.50",
            "currency": "eur", "expected_close": "2030-06-30", **overrides}


@pytest.mark.parametrize(("stage", "shown"), [("sql", True), ("opportunity", True), ("sal", False),
                                              ("customer", False), ("lead", False)])
def test_the_convert_button_is_there_for_sql_and_opportunity_only(browser, org, stage, shown):
    lead = make_lead(org, stage=stage)
    html = page(browser.get(f"/leads/{lead.pk}/"))
    assert (f'href="/leads/{lead.pk}/convert/" role="button"' in html) is shown


def test_convert_creates_the_account_and_deal_and_shows_them(browser, org):
    lead = make_lead(org, stage="sql", company="Widgets Ltd", industry="Software", country="DE")
    form = page(browser.get(f"/leads/{lead.pk}/convert/"))
    assert 'name="account_name" value="Widgets Ltd"' in form  # prefilled from the lead's company
    assert 'name="deal_name" value="Widgets Ltd deal"' in form
    response = browser.post(f"/leads/{lead.pk}/convert/", convert_post())
    assert response.status_code == 302 and response["Location"] == f"/leads/{lead.pk}/"
    account = Account.objects.get(organization=org)
    deal = Deal.objects.get(organization=org)
    assert (account.name, account.website, account.country) == ("Widgets Ltd", "widgets.example", "DE")
    assert (deal.name, deal.amount, deal.currency, str(deal.expected_close), deal.status, deal.account_id,
            deal.lead_id) == ("Widgets pilot", Decimal("12500.50"), "EUR", "2030-06-30", "open", account.pk, lead.pk)
    lead.refresh_from_db()
    assert (lead.lifecycle_stage, lead.account_id) == ("opportunity", account.pk)

    html = page(browser.get(f"/leads/{lead.pk}/"))
    assert "Converted: deal “Widgets pilot” for account “Widgets Ltd”." in html
    deals = re.search(r'<section id="deals".*?</section>', html, re.S).group(0)
    assert "Widgets pilot" in deals and "12,500.50 EUR" in deals and f'href="/accounts/{account.pk}/"' in deals
    account_page = page(browser.get(f"/accounts/{account.pk}/"))
    assert "Widgets pilot" in account_page and f'href="/leads/{lead.pk}/"' in account_page
    listed = page(browser.get("/deals/"))
    assert "Widgets pilot" in listed and "12,500.50" in listed


def test_convert_can_link_an_existing_account(browser, org):
    existing = Account.objects.create(organization=org, name="Acme Holdings")
    lead = make_lead(org, stage="opportunity", company="Something else")
    assert f'<option value="{existing.pk}">Acme Holdings</option>' in page(browser.get(f"/leads/{lead.pk}/convert/"))
    response = browser.post(f"/leads/{lead.pk}/convert/", convert_post(account_choice="existing",
                                                                       existing_account=existing.pk))
    assert response.status_code == 302
    assert Account.objects.filter(organization=org).count() == 1
    assert Deal.objects.get(lead=lead).account == existing
    lead.refresh_from_db()
    assert lead.lifecycle_stage == "opportunity"  # already there; converting keeps it


def test_typing_an_existing_accounts_name_links_it(browser, org):
    existing = Account.objects.create(organization=org, name="Widgets Ltd")
    lead = make_lead(org, stage="sql")
    assert browser.post(f"/leads/{lead.pk}/convert/", convert_post(account_name="WIDGETS LTD")).status_code == 302
    assert list(Account.objects.filter(organization=org)) == [existing]


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"amount": ""}, "amount", "This field is required."),
    ({"amount": "-5"}, "amount", "greater than or equal to 0"),
    ({"amount": "1e400"}, "amount", "no more than 14 digits"),
    ({"currency": "dollars"}, "currency", "Select a valid choice"),  # the picker offers ISO 4217 codes only
    ({"currency": "E1R"}, "currency", "Select a valid choice"),
    ({"deal_name": ""}, "deal_name", "This field is required."),
    ({"account_name": ""}, "account_name", "Name the new account."),
    ({"account_choice": "existing"}, "existing_account", "Choose the account"),
    ({"account_choice": "existing", "existing_account": "not-an-id"}, "existing_account", "not a valid"),
    ({"country": "Germany"}, "country", "at most 2 characters"),
    ({"expected_close": "30/02/2030"}, "expected_close", "Enter a valid date."),
    ({"account_choice": "sideways"}, "account_choice", "valid choice"),
])
def test_bad_conversion_input_is_a_form_error_and_creates_nothing(browser, org, overrides, field, message):
    lead = make_lead(org, stage="sql", company="Widgets Ltd")
    response = browser.post(f"/leads/{lead.pk}/convert/", convert_post(**overrides))
    assert response.status_code == 400
    html = page(response)
    assert re.search(rf'id="id_{field}_error">.*?{re.escape(message)}', unescape(html), re.S), errors_of(html)
    assert not Account.objects.exists() and not Deal.objects.exists()
    lead.refresh_from_db()
    assert lead.lifecycle_stage == "sql"


def test_another_orgs_account_cannot_be_linked(browser, org, other_org):
    theirs = Account.objects.create(organization=other_org, name="Rival Account")
    lead = make_lead(org, stage="sql")
    assert "Rival Account" not in page(browser.get(f"/leads/{lead.pk}/convert/"))
    response = browser.post(f"/leads/{lead.pk}/convert/", convert_post(account_choice="existing",
                                                                       existing_account=theirs.pk))
    assert response.status_code == 400 and "valid choice" in errors_of(page(response))
    assert not Deal.objects.exists()


def test_a_lead_that_is_not_qualified_cannot_be_converted(browser, org):
    lead = make_lead(org, stage="mql", company="Widgets Ltd")
    html = page(browser.get(f"/leads/{lead.pk}/convert/"))
    assert "Only a sales-qualified lead (SQL) or an opportunity can be converted" in html
    assert 'name="deal_name"' not in html
    response = browser.post(f"/leads/{lead.pk}/convert/", convert_post())
    assert response.status_code == 400
    assert not Account.objects.exists() and not Deal.objects.exists()


# --- winning and losing deals ------------------------------------------------------------------------------


def test_winning_a_deal_makes_the_lead_a_customer(browser, org):
    lead = make_lead(org, stage="opportunity")
    deal = make_deal(org, lead)
    html = page(browser.get(f"/leads/{lead.pk}/"))
    assert f'action="/deals/{deal.pk}/win/"' in html and f'action="/deals/{deal.pk}/lose/"' in html
    response = browser.post(f"/deals/{deal.pk}/win/", {"next": f"/leads/{lead.pk}/"})
    assert response.status_code == 302 and response["Location"] == f"/leads/{lead.pk}/"
    deal.refresh_from_db()
    lead.refresh_from_db()
    assert deal.status == "won" and deal.closed_at is not None
    assert lead.lifecycle_stage == "customer" and "customer" in lead.stage_entered_at
    assert Activity.objects.filter(lead=lead, type="deal_won").exists()
    html = page(browser.get(f"/leads/{lead.pk}/"))
    assert "The lead is now a customer." in html
    assert f'action="/deals/{deal.pk}/win/"' not in html  # closed: no more buttons
    assert 'class="badge deal-won">Won<' in html
    # winning twice is refused with a message, nothing changes
    closed_at = deal.closed_at
    browser.post(f"/deals/{deal.pk}/win/")
    deal.refresh_from_db()
    assert deal.closed_at == closed_at
    assert "This deal is already won." in page(browser.get(f"/leads/{lead.pk}/"))


def test_win_never_redirects_to_another_site(browser, org):
    deal = make_deal(org, make_lead(org, stage="opportunity"))
    response = browser.post(f"/deals/{deal.pk}/win/", {"next": "https://evil.example/"})
    assert response["Location"] == f"/leads/{deal.lead_id}/"


@pytest.mark.parametrize("posted", [{}, {"reason": ""}, {"reason": "__other__", "other_reason": "  "},
                                    {"reason": "Not one of ours"}])
def test_losing_a_deal_needs_a_reason(browser, org, posted):
    deal = make_deal(org, make_lead(org, stage="opportunity"))
    response = browser.post(f"/deals/{deal.pk}/lose/", posted)
    assert response.status_code == 400
    assert errors_of(page(response))
    deal.refresh_from_db()
    assert (deal.status, deal.lost_reason) == ("open", "")


def test_losing_with_a_listed_reason_or_own_words(browser, org):
    lead = make_lead(org, stage="opportunity")
    listed, own = make_deal(org, lead, name="One"), make_deal(org, lead, name="Two")
    reason = first_reason(org, "lost")
    form = page(browser.get(f"/deals/{listed.pk}/lose/"))
    assert f'<option value="{reason}">{reason}</option>' in form
    assert browser.post(f"/deals/{listed.pk}/lose/", {"reason": reason}).status_code == 302
    response = browser.post(f"/deals/{own.pk}/lose/", {"reason": "__other__", "other_reason": "Went in-house"})
    assert response.status_code == 302 and response["Location"] == f"/leads/{lead.pk}/"
    listed.refresh_from_db()
    own.refresh_from_db()
    assert (listed.status, listed.lost_reason) == ("lost", reason)
    assert (own.status, own.lost_reason) == ("lost", "Went in-house")
    lead.refresh_from_db()
    assert lead.lifecycle_stage == "opportunity"  # losing does not move the lead
    assert "Went in-house" in page(browser.get(f"/leads/{lead.pk}/"))
    again = browser.post(f"/deals/{own.pk}/lose/", {"reason": reason})
    assert again.status_code == 400
    own.refresh_from_db()
    assert own.lost_reason == "Went in-house"


# --- the deals list -------------------------------------------------------------------------------------------


def test_deals_list_filters_by_status_and_totals_per_currency(browser, org):
    lead = make_lead(org, stage="opportunity")
    make_deal(org, lead, name="Open USD 1", amount="100.00")
    make_deal(org, lead, name="Open USD 2", amount="250.50")
    make_deal(org, lead, name="Open EUR", amount="1000", currency="EUR")
    services.win_deal(deal=make_deal(org, lead, name="Won USD", amount="40"))
    services.lose_deal(deal=make_deal(org, lead, name="Lost USD", amount="999"), reason="Price")
    html = page(browser.get("/deals/"))
    totals = re.search(r'<table class="data deal-totals">.*?</table>', html, re.S).group(0)
    rows = {currency: cells for currency, cells in re.findall(r'<th scope="row">(\w+)</th>(.*?)</tr>', totals, re.S)}
    assert set(rows) == {"EUR", "USD"}
    assert re.search(r"350\.50 .*?\(2 deals\).*?40\.00 .*?\(1 deal\)", rows["USD"], re.S)
    assert re.search(r"1,000\.00 .*?\(1 deal\).*?0\.00 .*?\(0 deals\)", rows["EUR"], re.S)
    for name in ("Open USD 1", "Open EUR", "Won USD", "Lost USD"):
        assert name in html
    won = page(browser.get("/deals/?status=won"))
    assert "Won USD" in won and "Open USD 1" not in won and "Lost USD" not in won
    assert re.search(r'<option value="won" selected>', won)
    assert "Lost USD" in page(browser.get("/deals/?status=lost"))
    assert "Open USD 1" in page(browser.get("/deals/?status=nonsense"))  # an unknown status is ignored


def test_deals_list_empty_states_say_what_to_do(browser, org):
    html = page(browser.get("/deals/"))
    assert "No deals yet." in html and 'href="/leads/?lifecycle_stage=sql&amp;lifecycle_stage=opportunity"' in html
    make_deal(org, make_lead(org, stage="opportunity"))
    assert "No lost deals." in page(browser.get("/deals/?status=lost"))


def test_deals_list_pages_cover_every_deal_once(browser, org):
    lead = make_lead(org, stage="opportunity")
    made = {str(make_deal(org, lead, name=f"Deal {i:02d}").pk) for i in range(12)}
    seen, url = [], "/deals/?page_size=5"
    while url:
        html = page(browser.get(url))
        seen += re.findall(r"<td>Deal (\d\d)[ <]", html)  # the name, then its "Task…" link or the cell's end
        match = re.search(r'<a href="([^"]+)" rel="next">', html)
        url = unescape(match.group(1)) if match else None
    assert sorted(seen) == [f"{i:02d}" for i in range(12)] and len(made) == 12


def test_account_filter_of_the_deals_list(browser, org, other_org):
    lead = make_lead(org, stage="opportunity")
    one = Account.objects.create(organization=org, name="One")
    make_deal(org, lead, name="Deal of one", account=one)
    make_deal(org, lead, name="Deal of two", account=Account.objects.create(organization=org, name="Two"))
    html = page(browser.get(f"/deals/?account={one.pk}"))
    assert "Deal of one" in html and "Deal of two" not in html
    theirs = Account.objects.create(organization=other_org, name="Theirs")
    assert browser.get(f"/deals/?account={theirs.pk}").status_code == 404
    assert browser.get("/deals/?account=junk").status_code == 404


def _query_count(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries), response


def test_deals_list_query_count_does_not_grow_with_page_size(browser, org):
    for i in range(30):
        owner = tenancy.add_member(organization=org, email=f"o{i}@acme.test", password=None, role="rep").user
        lead = make_lead(org, f"d{i}@example.com", stage="opportunity", owner=owner)
        account = Account.objects.create(organization=org, name=f"Account {i}", owner=owner)
        make_deal(org, lead, name=f"Deal {i}", account=account, owner=owner, currency=["USD", "EUR", "GBP"][i % 3])
    few, response = _query_count(browser, "/deals/?page_size=2")
    assert page(response).count("<td>Deal ") == 2
    many, response = _query_count(browser, "/deals/?page_size=30")
    assert page(response).count("<td>Deal ") == 30
    assert many == few


def test_lead_page_query_count_does_not_grow_with_deals(browser, org):
    lead = make_lead(org, stage="opportunity")
    make_deal(org, lead, name="first")
    few, _ = _query_count(browser, f"/leads/{lead.pk}/")
    for i in range(15):
        make_deal(org, lead, name=f"more {i}", account=Account.objects.create(organization=org, name=f"A{i}"))
    many, response = _query_count(browser, f"/leads/{lead.pk}/")
    assert page(response).count('class="deal-card"') == 16
    assert many == few


# --- the duplicates page --------------------------------------------------------------------------------------


def test_duplicates_page_groups_with_their_reason_side_by_side(browser, org):
    make_lead(org, "john.smith@gmail.com", first_name="John", last_name="Smith")
    make_lead(org, "johnsmith+crm@gmail.com", first_name="Johnny", last_name="Smith")
    make_lead(org, "p1@example.com", phone="+14155550100", job_title="CTO")
    make_lead(org, "p2@example.com", phone="+14155550100", job_title="CEO")
    make_lead(org, "n1@example.com", first_name="Ada", last_name="King", company="Engines")
    make_lead(org, "n2@example.com", first_name="ada", last_name="king", company="ENGINES")
    make_lead(org, "alone@example.com", first_name="Alone")
    html = page(browser.get("/leads/duplicates/"))
    headings = [unescape(re.sub(r"<[^>]+>", "", h)).strip()
                for h in re.findall(r'<h2 id="group-\d+">(.*?)</h2>', html, re.S)]
    assert headings == ["Same Gmail address: johnsmith@gmail.com", "Same name and company: ada king @ engines",
                        "Same phone: +14155550100"]
    assert "alone@example.com" not in html
    phone_group = re.findall(r'<article class="duplicate-group".*?</article>', html, re.S)[2]
    assert re.search(r"<th scope=\"row\">Job title</th><td>CTO</td><td>CEO</td>", phone_group)
    assert phone_group.count('type="radio" name="keep"') == 2


def test_duplicates_page_empty_state(browser, org):
    make_lead(org, "only@example.com")
    assert "No likely duplicates" in page(browser.get("/leads/duplicates/"))


def test_duplicates_pages_with_after(browser, org):
    for i in range(30):
        make_lead(org, f"a{i}@example.com", phone=f"+1415555{i:04d}")
        make_lead(org, f"b{i}@example.com", phone=f"+1415555{i:04d}")
    first = page(browser.get("/leads/duplicates/"))
    assert first.count('class="duplicate-group"') == 25
    next_url = unescape(re.search(r'<a href="([^"]+)" rel="next">', first).group(1))
    assert "after=phone%3A%2B14155550024" in next_url
    second = page(browser.get(next_url))
    assert second.count('class="duplicate-group"') == 5
    assert 'rel="next"' not in second and 'href="/leads/duplicates/" rel="prev"' in second
    keys = re.findall(r"Same phone: <span class=\"muted\">([^<]+)</span>", first + second)
    assert len(keys) == len(set(keys)) == 30
    assert browser.get("/leads/duplicates/?after=%00zz").status_code == 200


@pytest.fixture
def twins(org, member):
    """Two leads with the same phone: the one to keep is older and sparse, the other has history."""
    owner = member(Role.REP, "owner@acme.test")
    keep = make_lead(org, "keep@example.com", phone="+14155550100", first_name="Kay", tags=["a"])
    other = make_lead(org, "other@example.com", phone="+14155550100", first_name="Kay", last_name="Smith",
                      company="Widgets", owner=owner, tags=["b"], stage="sql", bant_budget="10k")
    services.record_activity(organization_id=org.pk, lead=other, type="note", properties={"text": "met at fair"})
    deal = make_deal(org, other)
    mailing = services.create_segment(organization_id=org.pk, name="Mailing", kind=SegmentKind.STATIC)
    services.add_to_list(segment=mailing, leads=Lead.objects.filter(pk=other.pk))
    return {"keep": keep, "other": other, "deal": deal, "list": mailing, "owner": owner}


def test_merging_from_the_duplicates_page_keeps_everything(browser, org, twins):
    keep, other = twins["keep"], twins["other"]
    form = {"keep": keep.pk, "lead": [keep.pk, other.pk], "after": ""}
    confirm = browser.post("/leads/duplicates/merge/", form)
    assert confirm.status_code == 200
    html = page(confirm)
    assert "Merge 1 lead into Kay?" in html and 'name="confirm" value="yes"' in html
    assert Lead.objects.filter(pk=other.pk).exists()  # nothing happens before the confirmation

    response = browser.post("/leads/duplicates/merge/", {**form, "confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == "/leads/duplicates/"
    assert not Lead.objects.filter(pk=other.pk).exists()
    keep.refresh_from_db()
    assert (keep.email, keep.last_name, keep.company, keep.owner, keep.bant_budget) == (
        "keep@example.com", "Smith", "Widgets", twins["owner"], "10k")
    assert keep.tags == ["a", "b"] and keep.lifecycle_stage == "sql"
    assert Activity.objects.filter(lead=keep, type="note", properties__text="met at fair").exists()
    merge = Activity.objects.get(lead=keep, type="merge")
    assert merge.properties["merged"][0]["email"] == "other@example.com"
    assert Deal.objects.get(pk=twins["deal"].pk).lead_id == keep.pk
    assert SegmentMember.objects.filter(segment=twins["list"], lead=keep).exists()
    assert "Merged 1 lead into Kay Smith." in page(browser.get("/leads/duplicates/"))


@pytest.mark.parametrize("case", ["keep-outside-group", "no-keep", "junk-id", "only-keep", "gone"])
def test_bad_merge_posts_are_refused_and_change_nothing(browser, org, twins, case):
    keep, other = twins["keep"], twins["other"]
    stranger = make_lead(org, "stranger@example.com")
    form = {
        "keep-outside-group": {"keep": stranger.pk, "lead": [keep.pk, other.pk]},
        "no-keep": {"lead": [keep.pk, other.pk]},
        "junk-id": {"keep": keep.pk, "lead": [keep.pk, "junk"]},
        "only-keep": {"keep": keep.pk, "lead": [keep.pk]},
        "gone": {"keep": keep.pk, "lead": [keep.pk, "00000000-0000-0000-0000-000000000000"]},
    }[case]
    response = browser.post("/leads/duplicates/merge/", {**form, "confirm": "yes"})
    assert response.status_code == 400
    assert errors_of(page(response))
    assert Lead.objects.filter(organization=org).count() == 3
    assert not Activity.objects.filter(type="merge").exists()


# --- lead-supplied text is escaped everywhere ----------------------------------------------------------------


def test_markup_from_leads_deals_and_reasons_is_escaped(browser, org):
    Reason.objects.create(organization=org, kind="lost", label=MARKUP)
    Reason.objects.create(organization=org, kind="disqualified", label=MARKUP)
    lead = make_lead(org, "x@gmail.com", stage="opportunity", first_name=MARKUP, last_name="King", company=MARKUP,
                     phone="+14155550100", bant_need=MARKUP)
    twin = make_lead(org, "x.x@example.com", first_name=MARKUP, last_name="King", company=MARKUP,
                     phone="+14155550100", job_title=MARKUP)
    account = Account.objects.create(organization=org, name=MARKUP, website=MARKUP)
    deal = make_deal(org, lead, name=MARKUP, account=account, currency="USD")
    lost = make_deal(org, lead, name="Lost one", account=account)
    services.lose_deal(deal=lost, reason=MARKUP)
    urls = [f"/leads/{lead.pk}/", f"/leads/{lead.pk}/convert/", "/deals/", f"/accounts/{account.pk}/",
            f"/deals/{deal.pk}/lose/", "/leads/duplicates/"]
    pages = [browser.get(url) for url in urls]
    pages.append(browser.post("/leads/duplicates/merge/", {"keep": lead.pk, "lead": [lead.pk, twin.pk]}))
    for url, response in zip([*urls, "merge-confirm"], pages, strict=True):
        assert response.status_code == 200, url
        html = page(response)
        assert "<script>alert" not in html, url
        assert ESCAPED in html, url
    refused = browser.post(f"/leads/{lead.pk}/stage/", {"stage": MARKUP})
    assert refused.status_code == 400 and "<script>alert" not in page(refused)
