"""Django admin of qualification and conversion: reasons, the BANT required for SQL, accounts, deals (closed
through the service) and segments (definition read-only). Tenant-scoped like the rest of the admin."""

import re
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from leadcrm.models import Membership, Role
from leads import services
from leads.models import (
    Account,
    Activity,
    Deal,
    Lead,
    QualificationSettings,
    Reason,
    Segment,
    SegmentKind,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_orgs(org, other_org):
    """Each org with a reason, an account, a lead with an open deal, and a dynamic segment."""
    data = {}
    for o, tag in ((org, "acme"), (other_org, "rival")):
        reason = Reason.objects.create(organization=o, kind="lost", label=f"{tag} reason")
        account = Account.objects.create(organization=o, name=f"{tag} account")
        lead = Lead.objects.create(organization=o, email=f"lead@{tag}.test", lifecycle_stage="opportunity")
        deal = Deal.objects.create(organization=o, account=account, lead=lead, name=f"{tag} deal",
                                   amount=Decimal("100"), currency="USD")
        segment = services.create_segment(organization_id=o.pk, name=f"{tag} segment",
                                          definition={"all": [{"field": "country", "op": "eq", "value": "DE"}]})
        data[tag] = {"org": o, "reason": reason, "account": account, "lead": lead, "deal": deal, "segment": segment,
                     "admin": Membership.objects.get(organization=o, role=Role.ADMIN).user,
                     "settings": QualificationSettings.objects.get(organization=o)}
    return data


@pytest.fixture
def acme_admin(client, two_orgs):
    client.force_login(two_orgs["acme"]["admin"])
    return client


def errors_of(response) -> str:
    return " ".join(unescape(m) for m in re.findall(r'class="errorlist[^"]*"[^>]*>(.*?)</ul>',
                                                      response.content.decode(), re.S))


CHANGELISTS = [
    ("/admin/leads/reason/", lambda d: d["reason"].label),
    ("/admin/leads/account/", lambda d: d["account"].name),
    ("/admin/leads/deal/", lambda d: d["deal"].name),
    ("/admin/leads/segment/", lambda d: d["segment"].name),
]
CHANGE_URLS = {
    "reason": "/admin/leads/reason/{}/change/",
    "account": "/admin/leads/account/{}/change/",
    "deal": "/admin/leads/deal/{}/change/",
    "segment": "/admin/leads/segment/{}/change/",
    "settings": "/admin/leads/qualificationsettings/{}/change/",
}


@pytest.mark.parametrize(("url", "marker"), CHANGELISTS, ids=[u for u, _ in CHANGELISTS])
def test_changelists_show_only_the_admins_org(acme_admin, two_orgs, url, marker):
    response = acme_admin.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert marker(two_orgs["acme"]) in html
    assert marker(two_orgs["rival"]) not in html


@pytest.mark.parametrize("kind", list(CHANGE_URLS))
def test_another_orgs_rows_cannot_be_opened_changed_or_deleted(acme_admin, two_orgs, kind):
    theirs = two_orgs["rival"][kind]
    url = CHANGE_URLS[kind].format(theirs.pk)
    response = acme_admin.get(url)
    assert response.status_code in (302, 404)
    assert response.status_code == 404 or response["Location"] == "/admin/"
    acme_admin.post(url, {"label": "Hijacked", "name": "Hijacked", "kind": "lost", "outcome": "won"})
    acme_admin.post(url.replace("/change/", "/delete/"), {"post": "yes"})
    refreshed = type(theirs).objects.get(pk=theirs.pk)
    assert str(refreshed) == str(theirs)
    if kind == "deal":
        assert refreshed.status == "open"
    assert acme_admin.get(CHANGE_URLS[kind].format(two_orgs["acme"][kind].pk)).status_code == 200  # control


@pytest.mark.parametrize("role", [Role.REP, Role.MARKETER, Role.MANAGER])
def test_other_roles_cannot_use_these_admin_pages(client, member, two_orgs, role):
    client.force_login(member(role))
    for url, _ in CHANGELISTS:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_superuser_sees_the_org_picked_in_the_switcher(client, two_orgs):
    root = get_user_model().objects.create_superuser("root@x.test", "root@x.test", "pw-root-1234")
    client.force_login(root)
    for active, other in (("acme", "rival"), ("rival", "acme")):
        client.post("/org/switch/", {"organization": str(two_orgs[active]["org"].pk)})
        for url, marker in CHANGELISTS:
            html = client.get(url).content.decode()
            assert marker(two_orgs[active]) in html and marker(two_orgs[other]) not in html, url


# --- reasons ----------------------------------------------------------------------------------------------


def test_a_new_reason_goes_into_the_admins_org_and_is_offered(acme_admin, two_orgs):
    acme, rival = two_orgs["acme"], two_orgs["rival"]
    response = acme_admin.post("/admin/leads/reason/add/", {
        "kind": "disqualified", "label": "Bought elsewhere", "active": "on", "organization": str(rival["org"].pk),
        "_save": "Save"})
    assert response.status_code == 302, errors_of(response)
    reason = Reason.objects.get(label="Bought elsewhere")
    assert reason.organization == acme["org"]
    assert "Bought elsewhere" in services.reasons(acme["org"].pk, "disqualified")
    assert "Bought elsewhere" not in services.reasons(rival["org"].pk, "disqualified")


def test_a_repeated_reason_is_a_form_error_not_a_crash(acme_admin, two_orgs):
    response = acme_admin.post("/admin/leads/reason/add/", {"kind": "lost", "label": "ACME REASON", "active": "on",
                                                            "_save": "Save"})
    assert response.status_code == 200
    assert "already has that reason" in errors_of(response)
    assert Reason.objects.filter(organization=two_orgs["acme"]["org"], label__iexact="acme reason").count() == 1
    # the same words in another kind, or as another org's reason, are fine
    for kind, label in (("recycled", "acme reason"), ("lost", "rival reason")):
        response = acme_admin.post("/admin/leads/reason/add/", {"kind": kind, "label": label, "active": "on",
                                                                "_save": "Save"})
        assert response.status_code == 302, errors_of(response)


def test_a_switched_off_reason_is_no_longer_offered(acme_admin, two_orgs):
    reason = two_orgs["acme"]["reason"]
    response = acme_admin.post(CHANGE_URLS["reason"].format(reason.pk), {"kind": "lost", "label": reason.label,
                                                                         "_save": "Save"})
    assert response.status_code == 302, errors_of(response)
    assert reason.label not in services.reasons(two_orgs["acme"]["org"].pk, "lost")


# --- qualification settings -----------------------------------------------------------------------------


def test_org_admin_goes_straight_to_their_settings(acme_admin, two_orgs):
    response = acme_admin.get("/admin/leads/qualificationsettings/")
    assert response.status_code == 302
    assert response["Location"] == CHANGE_URLS["settings"].format(two_orgs["acme"]["settings"].pk)
    assert acme_admin.get("/admin/leads/qualificationsettings/add/").status_code == 403


def test_required_bant_is_a_checkbox_list_that_blocks_sql(acme_admin, two_orgs, member):
    url = CHANGE_URLS["settings"].format(two_orgs["acme"]["settings"].pk)
    html = acme_admin.get(url).content.decode()
    boxes = re.findall(r'<input type="checkbox" name="bant_required_for_sql" value="(\w+)"', html)
    assert boxes == ["bant_budget", "bant_authority", "bant_need", "bant_timeline"]
    assert "Budget" in html and "Timeline" in html
    response = acme_admin.post(url, {"bant_required_for_sql": ["bant_budget", "bant_timeline"], "_save": "Save"})
    assert response.status_code == 302, errors_of(response)
    assert services.required_bant(two_orgs["acme"]["org"].pk) == ["bant_budget", "bant_timeline"]
    assert services.required_bant(two_orgs["rival"]["org"].pk) == []
    assert acme_admin.post(url, {"bant_required_for_sql": ["bant_sneaky"], "_save": "Save"}).status_code == 200
    assert services.required_bant(two_orgs["acme"]["org"].pk) == ["bant_budget", "bant_timeline"]

    lead = Lead.objects.create(organization=two_orgs["acme"]["org"], email="q@acme.test", lifecycle_stage="sal")
    rep = Client()
    rep.force_login(member(Role.REP))
    Lead.objects.filter(pk=lead.pk).update(owner=Membership.objects.get(user__email="rep@acme.test").user)
    refused = rep.post(f"/leads/{lead.pk}/stage/", {"stage": "sql"})
    assert refused.status_code == 400
    assert "Fill in budget, timeline (BANT)" in unescape(refused.content.decode())


# --- accounts --------------------------------------------------------------------------------------------


def test_account_names_are_unique_within_the_org_only(acme_admin, two_orgs):
    taken = acme_admin.post("/admin/leads/account/add/", {"name": "ACME ACCOUNT", "_save": "Save"})
    assert taken.status_code == 200 and "already has an account of that name" in errors_of(taken)
    same_as_rival = acme_admin.post("/admin/leads/account/add/", {"name": "rival account", "_save": "Save"})
    assert same_as_rival.status_code == 302, errors_of(same_as_rival)
    assert Account.objects.get(name="rival account", organization=two_orgs["acme"]["org"])


def test_account_owner_choices_are_limited_to_the_org(acme_admin, two_orgs):
    html = acme_admin.get("/admin/leads/account/add/").content.decode()
    owner_select = re.search(r'<select name="owner".*?</select>', html, re.S).group(0)
    assert f'value="{two_orgs["acme"]["admin"].pk}"' in owner_select
    assert f'value="{two_orgs["rival"]["admin"].pk}"' not in owner_select
    assert 'name="organization"' not in html


# --- deals -------------------------------------------------------------------------------------------------


def deal_post(deal, **overrides):
    return {"name": deal.name, "amount": str(deal.amount), "currency": deal.currency, "expected_close": "",
            "owner": "", "outcome": "", "reason": "", "_save": "Save", **overrides}


def test_deals_are_not_added_in_admin(acme_admin):
    assert acme_admin.get("/admin/leads/deal/add/").status_code == 403


def test_an_open_deals_terms_change_in_admin(acme_admin, two_orgs):
    deal = two_orgs["acme"]["deal"]
    response = acme_admin.post(CHANGE_URLS["deal"].format(deal.pk), deal_post(deal, amount="250.00", currency="eur"))
    assert response.status_code == 302, errors_of(response)
    deal.refresh_from_db()
    assert (deal.amount, deal.currency, deal.status) == (Decimal("250.00"), "EUR", "open")


def test_winning_in_admin_goes_through_the_service(acme_admin, two_orgs):
    deal, lead = two_orgs["acme"]["deal"], two_orgs["acme"]["lead"]
    response = acme_admin.post(CHANGE_URLS["deal"].format(deal.pk), deal_post(deal, outcome="won"))
    assert response.status_code == 302, errors_of(response)
    deal.refresh_from_db()
    lead.refresh_from_db()
    assert deal.status == "won" and deal.closed_at is not None
    assert lead.lifecycle_stage == "customer"
    won = Activity.objects.get(lead=lead, type="deal_won")
    assert won.actor == two_orgs["acme"]["admin"]


def test_losing_in_admin_needs_a_reason(acme_admin, two_orgs):
    deal = two_orgs["acme"]["deal"]
    url = CHANGE_URLS["deal"].format(deal.pk)
    html = acme_admin.get(url).content.decode()
    assert "acme reason" in html and "rival reason" not in html  # the org's lost reasons as a hint
    response = acme_admin.post(url, deal_post(deal, outcome="lost"))
    assert response.status_code == 200 and "Say why the deal was lost." in errors_of(response)
    deal.refresh_from_db()
    assert deal.status == "open"
    response = acme_admin.post(url, deal_post(deal, outcome="lost", reason="acme reason"))
    assert response.status_code == 302, errors_of(response)
    deal.refresh_from_db()
    assert (deal.status, deal.lost_reason) == ("lost", "acme reason")
    assert two_orgs["acme"]["lead"].activities.filter(type="deal_lost").exists()


def test_a_closed_deal_is_read_only_in_admin(acme_admin, two_orgs):
    deal = services.win_deal(deal=two_orgs["acme"]["deal"])
    url = CHANGE_URLS["deal"].format(deal.pk)
    html = acme_admin.get(url).content.decode()
    assert 'name="amount"' not in html and 'name="outcome"' not in html
    acme_admin.post(url, deal_post(deal, amount="1.00", outcome="lost", reason="x"))
    deal.refresh_from_db()
    assert (deal.amount, deal.status) == (Decimal("100.00"), "won")


def test_deal_changelist_does_not_query_per_row(acme_admin, two_orgs, django_assert_max_num_queries):
    acme = two_orgs["acme"]
    for i in range(30):
        account = Account.objects.create(organization=acme["org"], name=f"A{i}")
        lead = Lead.objects.create(organization=acme["org"], email=f"l{i}@acme.test")
        Deal.objects.create(organization=acme["org"], account=account, lead=lead, name=f"D{i}", amount=1)
    with django_assert_max_num_queries(15):
        assert acme_admin.get("/admin/leads/deal/").status_code == 200


# --- segments ----------------------------------------------------------------------------------------------


def test_segment_definition_is_read_only_json_and_the_name_changes(acme_admin, two_orgs):
    segment = two_orgs["acme"]["segment"]
    url = CHANGE_URLS["segment"].format(segment.pk)
    html = acme_admin.get(url).content.decode()
    assert re.search(r"<pre>\{\s+&quot;all&quot;: \[", html)  # shown, escaped, not an input
    assert 'name="definition"' not in html and 'name="kind"' not in html
    response = acme_admin.post(url, {"name": "Germany", "description": "DE leads", "kind": "static",
                                     "definition": '{"all": []}', "_save": "Save"})
    assert response.status_code == 302, errors_of(response)
    segment.refresh_from_db()
    assert (segment.name, segment.description, segment.kind) == ("Germany", "DE leads", "dynamic")
    assert segment.definition == {"all": [{"field": "country", "op": "eq", "value": "DE"}]}
    assert acme_admin.get("/admin/leads/segment/add/").status_code == 403


def test_markup_in_a_segment_definition_is_escaped(acme_admin, two_orgs):
    segment = services.create_segment(organization_id=two_orgs["acme"]["org"].pk, name="<b>bold</b>", definition={
        "all": [{"field": "company", "op": "eq", "value": "<script>x()</script>"}]})
    html = acme_admin.get(CHANGE_URLS["segment"].format(segment.pk)).content.decode()
    assert "<script>x()" not in html and "&lt;script&gt;x()" in html
    assert "<b>bold</b>" not in html


def test_a_static_list_in_use_cannot_be_deleted_in_admin(acme_admin, two_orgs):
    org = two_orgs["acme"]["org"]
    mailing = services.create_segment(organization_id=org.pk, name="Mailing", kind=SegmentKind.STATIC)
    services.create_segment(organization_id=org.pk, name="Uses mailing",
                            definition={"all": [{"list": str(mailing.pk), "member": True}]})
    url = f"/admin/leads/segment/{mailing.pk}/delete/"
    confirm = acme_admin.get(url).content.decode()
    assert "Uses mailing" in confirm
    acme_admin.post(url, {"post": "yes"})
    assert Segment.objects.filter(pk=mailing.pk).exists()
    unused = services.create_segment(organization_id=org.pk, name="Unused", kind=SegmentKind.STATIC)
    assert acme_admin.post(f"/admin/leads/segment/{unused.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Segment.objects.filter(pk=unused.pk).exists()
