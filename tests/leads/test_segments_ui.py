"""Browser: the segment list with counts, the query builder and its live count, saving (and refusing) a segment,
a segment's page (keyset pages, bulk tags, delete), static lists (create, add by email or from any segment,
remove), escaping, reps kept out, and query counts that do not grow with rows."""

import json
import re
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from leadcrm.models import Role
from leads import services
from leads.models import Lead, Segment, SegmentKind, SegmentMember
from leads.views import segments as segment_views

pytestmark = pytest.mark.django_db

VIP = {"all": [{"field": "tags", "op": "contains", "value": "vip"}]}


def make(org, email, **fields) -> Lead:
    return Lead.objects.create(organization=org, email=email, **fields)


@pytest.fixture
def leads(org):
    return {
        "ada": make(org, "ada@example.com", first_name="Ada", tags=["vip"], score=80, country="GB"),
        "bob": make(org, "bob@example.com", first_name="Bob", tags=["vip", "beta"], score=20, country="US"),
        "cy": make(org, "cy@example.com", first_name="Cy", tags=[], score=50, country="US"),
    }


def lead_ids(response) -> list[str]:
    return re.findall(r'href="/leads/([0-9a-f-]{36})/"', response.content.decode())


def text(response) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", response.content.decode()))


def count_of(response) -> int:
    match = re.search(r"<strong>([\d,]+)</strong> leads? match", response.content.decode())
    assert match, response.content.decode()
    return int(match.group(1).replace(",", ""))


# ----------------------------------------------------------------------------------------------- list


def test_the_list_shows_each_segment_with_its_count(browser, org, leads):
    services.create_segment(organization_id=org.pk, name="VIPs", definition=VIP)
    mailing = services.create_segment(organization_id=org.pk, name="Mailing", kind=SegmentKind.STATIC)
    services.add_to_list(segment=mailing, leads=Lead.objects.filter(pk=leads["cy"].pk))
    response = browser.get("/segments/")
    assert response.status_code == 200
    rows = re.findall(r"<tr>\s*<td>(.*?)</tr>", response.content.decode(), re.S)
    cells = {re.search(r">([^<]+)</a>", row).group(1): re.findall(r'class="num">([^<]*)<', row)[0] for row in rows}
    assert cells == {"VIPs": "2", "Mailing": "1"}
    assert "static list" in response.content.decode()
    static_only = browser.get("/segments/?kind=static")
    assert "Mailing" in static_only.content.decode() and "VIPs" not in static_only.content.decode()


def test_the_list_counts_a_page_in_a_fixed_number_of_queries(browser, org, leads, django_assert_max_num_queries):
    services.create_segment(organization_id=org.pk, name="first", definition=VIP)
    with CaptureQueriesContext(connection) as one:
        browser.get("/segments/")
    for n in range(15):
        services.create_segment(organization_id=org.pk, name=f"s{n}", definition={"any": [
            {"field": "score", "op": "gt", "value": n}, {"activity": "page_view", "min_count": 2}]})
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = browser.get("/segments/")
    assert response.content.decode().count('href="/segments/') >= 16


def test_a_stored_definition_the_language_no_longer_accepts_does_not_break_the_list(browser, org, leads):
    services.create_segment(organization_id=org.pk, name="VIPs", definition=VIP)
    Segment.objects.create(organization=org, name="Old op", definition={"all": [
        {"field": "created_at", "op": "within_last_weeks", "value": 2}]})
    response = browser.get("/segments/")
    assert response.status_code == 200
    assert re.search(r"Old op</a>.*?class=\"num\">—<", response.content.decode(), re.S)
    assert re.search(r"VIPs</a>.*?class=\"num\">2<", response.content.decode(), re.S)


def test_empty_list_says_what_to_do(browser, org):
    body = browser.get("/segments/").content.decode()
    assert "No segments yet" in body and 'href="/segments/new/"' in body and 'href="/segments/lists/new/"' in body


def test_reps_see_no_segments(client, org, member, leads):
    segment = services.create_segment(organization_id=org.pk, name="VIPs", definition=VIP)
    client.force_login(member(Role.REP))
    for url in ("/segments/", "/segments/new/", f"/segments/{segment.pk}/", f"/segments/{segment.pk}/edit/"):
        assert client.get(url).status_code == 403, url
    assert client.post("/segments/count/", {"definition": json.dumps(VIP)}).status_code == 403
    assert client.post(f"/segments/{segment.pk}/tags/", {"tag": "x", "action": "add"}).status_code == 403
    assert "Segments" not in client.get("/leads/").content.decode()


def test_nav_links_to_segments_for_marketers(browser):
    assert 'href="/segments/">Segments</a>' in browser.get("/leads/").content.decode()


# ----------------------------------------------------------------------------------------------- builder


def test_builder_page_has_the_builder_templates_and_labelled_inputs(browser, org):
    services.create_segment(organization_id=org.pk, name="Mailing", kind=SegmentKind.STATIC)
    response = browser.get("/segments/new/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "data-segment-builder" in body and "js/segment-builder.js" in body
    for kind in ("field", "activity", "list", "group"):
        assert f'id="seg-template-{kind}"' in body
    assert 'hx-post="/segments/count/"' in body and "segment-changed" in body
    config = json.loads(re.search(r'<script id="segment-builder-config" type="application/json">(.*?)</script>',
                                  body, re.S).group(1))
    assert "within_days" in config["opsByKind"]["date"] and config["maxDepth"] >= 2
    assert "Mailing" in body  # offered for list conditions
    # every builder control sits inside a label
    controls = re.findall(r"<(?:select|input)[^>]*data-key=", body)
    labelled = re.findall(r"<label[^>]*>[^<]*(?:<small[^>]*>[^<]*</small>)?\s*<(?:select|input)[^>]*data-key=", body)
    assert controls and len(labelled) == len(controls)


def test_live_count_endpoint(browser, org, leads):
    response = browser.post("/segments/count/", {"definition": json.dumps(VIP)})
    assert response.status_code == 200 and count_of(response) == 2
    nested = {"any": [{"field": "country", "op": "eq", "value": "gb"},
                      {"all": [{"field": "score", "op": "between", "value": [40, 60]},
                               {"field": "tags", "op": "is_empty"}]}]}
    assert count_of(browser.post("/segments/count/", {"definition": json.dumps(nested)})) == 2

    empty = browser.post("/segments/count/", {"definition": '{"all": []}'})
    assert empty.status_code == 200 and "Add a condition" in empty.content.decode()

    bad = browser.post("/segments/count/", {"definition": json.dumps(
        {"all": [VIP["all"][0], {"any": [{"field": "score", "op": "gt", "value": "lots"}]}]})})
    assert bad.status_code == 400
    assert 'data-error-path="all.1.any.0.value"' in bad.content.decode()
    broken = browser.post("/segments/count/", {"definition": "{not json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.content.decode()
    campaign = browser.post("/segments/count/", {"definition": json.dumps({"all": [{"campaign": 1}]})})
    assert campaign.status_code == 400 and "No campaign 1 in this organization" in text(campaign)


def test_saving_a_segment_from_the_builder(browser, org, leads):
    definition = {"all": [{"field": "tags", "op": "contains", "value": "vip"},
                          {"any": [{"field": "score", "op": "gte", "value": 50},
                                   {"field": "country", "op": "eq", "value": "US"}]}]}
    response = browser.post("/segments/new/", {"name": "VIPs <b>", "description": "", "definition": json.dumps(
        definition)})
    segment = Segment.objects.get(organization=org)
    assert response.status_code == 302 and response["Location"] == f"/segments/{segment.pk}/"
    assert segment.definition == definition and segment.kind == "dynamic"
    page = browser.get(response["Location"])
    assert "VIPs &lt;b&gt;" in page.content.decode()
    assert set(lead_ids(page)) == {str(leads["ada"].pk), str(leads["bob"].pk)}
    assert "Has the tag vip" in text(page) and "Score is at least 50" in text(page)


def test_a_refused_definition_saves_nothing_and_keeps_the_input(browser, org, leads):
    bad = {"all": [{"field": "shoe_size", "op": "eq", "value": 42}]}
    response = browser.post("/segments/new/", {"name": "Bad", "definition": json.dumps(bad)})
    assert response.status_code == 400
    assert "all.0.field" in text(response) and "shoe_size" in response.content.decode()
    assert not Segment.objects.exists()
    assert browser.post("/segments/new/", {"name": "", "definition": json.dumps(VIP)}).status_code == 400
    assert browser.post("/segments/new/", {"name": "x", "definition": ""}).status_code == 400
    assert browser.post("/segments/new/", {"name": "x", "definition": "[1"}).status_code == 400
    assert not Segment.objects.exists()


def test_the_builder_shows_a_definition_as_rows(browser, org):
    mailing = services.create_segment(organization_id=org.pk, name="Mailing", kind=SegmentKind.STATIC)
    segment = services.create_segment(organization_id=org.pk, name="Mixed", definition={"any": [
        {"field": "custom_fields.plan", "op": "in", "value": ["pro", "team"]},
        {"activity": "page_view", "property": "url", "op": "contains", "value": "/pricing", "min_count": 3,
         "within_days": 14},
        {"all": [{"list": str(mailing.pk), "member": False}, {"field": "created_at", "op": "within_days",
                                                               "value": 30}]},
    ]})
    body = browser.get(f"/segments/{segment.pk}/edit/").content.decode()
    builder = body[body.index("data-segment-builder"):body.index('id="segment-count"')]
    assert re.search(r'<option value="any"\s+selected>', builder)
    assert '<option value="__custom__" data-kind="json" selected>' in builder
    assert 'value="plan"' in builder and 'value="pro, team"' in builder
    assert '<option value="page_view" selected>' in builder and 'value="/pricing"' in builder
    assert 'data-key="min_count" min="1" max="100000" step="1" value="3"' in builder
    assert 'value="14"' in builder
    assert f'<option value="{mailing.pk}" selected>' in builder and '<option value="false" selected>' in builder
    assert '<option value="within_days" selected>' in builder

    # the JSON box's definition shown in the builder, nothing saved
    shown = browser.post(f"/segments/{segment.pk}/edit/", {"name": "Mixed", "load_json": "1", "definition": json.dumps(
        {"all": [{"field": "country", "op": "eq", "value": "NZ"}]})})
    assert shown.status_code == 200 and 'value="NZ"' in shown.content.decode()
    assert Segment.objects.get(pk=segment.pk).definition["any"]


def test_editing_a_segment(browser, org, leads):
    segment = services.create_segment(organization_id=org.pk, name="VIPs", definition=VIP)
    response = browser.post(f"/segments/{segment.pk}/edit/", {
        "name": "Beta", "description": "beta testers",
        "definition": json.dumps({"all": [{"field": "tags", "op": "contains", "value": "beta"}]})})
    assert response.status_code == 302
    segment.refresh_from_db()
    assert (segment.name, segment.description, segment.definition["all"][0]["value"]) == ("Beta", "beta testers",
                                                                                        "beta")
    refused = browser.post(f"/segments/{segment.pk}/edit/", {"name": "Other", "definition": json.dumps(
        {"all": [{"campaign": 3, "member": True}]})})
    assert refused.status_code == 400 and "No campaign 3 in this organization" in text(refused)
    segment.refresh_from_db()
    assert segment.name == "Beta"


# ----------------------------------------------------------------------------------------------- segment page


def test_segment_page_pages_through_its_leads(browser, org, monkeypatch):
    monkeypatch.setattr(segment_views, "LEADS_PAGE_SIZE", 2)
    made = [make(org, f"p{n}@example.com", first_name=f"P{n}", tags=["vip"]) for n in range(5)]
    make(org, "other@example.com", first_name="Other")
    segment = services.create_segment(organization_id=org.pk, name="VIPs", definition=VIP)
    seen, url = [], f"/segments/{segment.pk}/"
    while url:
        page = browser.get(url)
        seen += lead_ids(page)
        match = re.search(r'<a href="([^"]+)" rel="next">', page.content.decode())
        url = unescape(match.group(1)) if match else None
    assert seen == [str(lead.pk) for lead in reversed(made)]
    assert "5</strong> leads" in browser.get(f"/segments/{segment.pk}/").content.decode()


def test_segment_page_queries_do_not_grow_with_rows(browser, org, member, django_assert_max_num_queries):
    owner = member(Role.REP, "owner@acme.test")
    segment = services.create_segment(organization_id=org.pk, name="VIPs", definition=VIP)
    make(org, "first@example.com", tags=["vip"], owner=owner)
    with CaptureQueriesContext(connection) as one:
        browser.get(f"/segments/{segment.pk}/")
    for n in range(30):
        make(org, f"more{n}@example.com", tags=["vip"], owner=owner)
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert len(lead_ids(browser.get(f"/segments/{segment.pk}/"))) == 31


def test_segment_page_escapes_lead_text(browser, org):
    make(org, "x@example.com", first_name="<script>alert(1)</script>", company="<img src=x>", tags=["<b>vip</b>"])
    segment = services.create_segment(organization_id=org.pk, name="<i>Tagged</i>", definition={
        "all": [{"field": "tags", "op": "contains", "value": "<b>vip</b>"}]})
    body = browser.get(f"/segments/{segment.pk}/").content.decode()
    assert "<script>alert(1)" not in body and "<img src=x>" not in body and "<b>vip</b>" not in body
    assert "&lt;script&gt;" in body and "&lt;i&gt;Tagged&lt;/i&gt;" in body


def test_bulk_tags_from_the_segment_page(browser, org, leads):
    segment = services.create_segment(organization_id=org.pk, name="US", definition={
        "all": [{"field": "country", "op": "eq", "value": "US"}]})
    response = browser.post(f"/segments/{segment.pk}/tags/", {"tag": " q3-webinar ", "action": "add"}, follow=True)
    assert "added to 2 leads" in text(response)
    assert {lead.first_name for lead in Lead.objects.filter(tags__contains=["q3-webinar"])} == {"Bob", "Cy"}
    browser.post(f"/segments/{segment.pk}/tags/", {"tag": "vip", "action": "remove"})
    assert {lead.first_name for lead in Lead.objects.filter(tags__contains=["vip"])} == {"Ada"}
    refused = browser.post(f"/segments/{segment.pk}/tags/", {"tag": "", "action": "add"}, follow=True)
    assert "Give a tag" in text(refused)


def test_deleting_a_segment(browser, org, leads):
    segment = services.create_segment(organization_id=org.pk, name="VIPs", definition=VIP)
    confirm = browser.get(f"/segments/{segment.pk}/delete/")
    assert confirm.status_code == 200 and "its leads stay" in text(confirm)
    response = browser.post(f"/segments/{segment.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/segments/"
    assert not Segment.objects.exists() and Lead.objects.count() == 3


# ----------------------------------------------------------------------------------------------- static lists


def test_creating_a_static_list_with_emails(browser, org, leads):
    refused = browser.post("/segments/lists/new/", {"name": "Event", "emails": "ADA@example.com\nnobody@x.test"})
    assert refused.status_code == 400 and "nobody@x.test" in text(refused)
    assert not Segment.objects.exists()
    response = browser.post("/segments/lists/new/", {"name": "Event", "emails": "ADA@example.com, bob@example.com"})
    segment = Segment.objects.get()
    assert response.status_code == 302 and segment.kind == SegmentKind.STATIC and segment.definition == {}
    assert set(SegmentMember.objects.values_list("lead_id", flat=True)) == {leads["ada"].pk, leads["bob"].pk}
    page = browser.get(f"/segments/{segment.pk}/")
    assert "Add leads to this list" in page.content.decode() and "Remove selected from this list" in (
        page.content.decode())


def test_adding_by_email_and_removing_selected(browser, org, leads):
    segment = services.create_segment(organization_id=org.pk, name="Event", kind=SegmentKind.STATIC)
    added = browser.post(f"/segments/{segment.pk}/members/", {"action": "add", "emails": "cy@example.com\n"
                                                                                          "ada@example.com"},
                         follow=True)
    assert "2 leads added" in text(added)
    unknown = browser.post(f"/segments/{segment.pk}/members/", {"action": "add", "emails": "bob@example.com zz@x.y"},
                           follow=True)
    assert "Nothing changed" in text(unknown) and "zz@x.y" in text(unknown)
    assert SegmentMember.objects.count() == 2
    removed = browser.post(f"/segments/{segment.pk}/members/", {"action": "remove", "lead": [
        str(leads["cy"].pk), "junk"]}, follow=True)
    assert "1 lead removed" in text(removed)
    assert list(SegmentMember.objects.values_list("lead_id", flat=True)) == [leads["ada"].pk]

    dynamic = services.create_segment(organization_id=org.pk, name="VIPs", definition=VIP)
    assert browser.post(f"/segments/{dynamic.pk}/members/", {"action": "add", "emails": "ada@example.com"}
                        ).status_code == 404


def test_adding_a_segments_leads_to_a_list(browser, org, leads):
    target = services.create_segment(organization_id=org.pk, name="Hand-picked", kind=SegmentKind.STATIC)
    source = services.create_segment(organization_id=org.pk, name="VIPs", definition=VIP)
    page = browser.get(f"/segments/{source.pk}/").content.decode()
    assert f'<option value="{target.pk}">Hand-picked</option>' in page
    picked = browser.post(f"/segments/{source.pk}/add-to-list/", {"list": str(target.pk), "scope": "selected",
                                                                 "lead": [str(leads["ada"].pk), str(leads["cy"].pk)]})
    assert picked.status_code == 302
    # Cy is not in the segment, so only Ada was added
    assert list(SegmentMember.objects.values_list("lead_id", flat=True)) == [leads["ada"].pk]
    browser.post(f"/segments/{source.pk}/add-to-list/", {"list": str(target.pk), "scope": "all"})
    assert SegmentMember.objects.filter(segment=target).count() == 2
    assert browser.post(f"/segments/{source.pk}/add-to-list/", {"list": str(source.pk), "scope": "all"}
                        ).status_code == 404  # a dynamic segment is no list
    assert browser.post(f"/segments/{source.pk}/add-to-list/", {"list": "nope", "scope": "all"}).status_code == 404

    # the list can now be used in a segment's conditions
    counted = browser.post("/segments/count/", {"definition": json.dumps(
        {"all": [{"list": str(target.pk), "member": False}]})})
    assert count_of(counted) == 1


def test_a_list_in_use_is_not_deleted(browser, org):
    target = services.create_segment(organization_id=org.pk, name="Hand-picked", kind=SegmentKind.STATIC)
    services.create_segment(organization_id=org.pk, name="Uses it", definition={"all": [{"list": str(target.pk)}]})
    confirm = browser.get(f"/segments/{target.pk}/delete/")
    assert "Uses it" in text(confirm)
    response = browser.post(f"/segments/{target.pk}/delete/", follow=True)
    assert "was not deleted" in text(response)
    assert Segment.objects.filter(pk=target.pk).exists()


def test_renaming_a_static_list(browser, org):
    target = services.create_segment(organization_id=org.pk, name="Old", kind=SegmentKind.STATIC)
    assert 'name="emails"' not in browser.get(f"/segments/{target.pk}/edit/").content.decode()
    browser.post(f"/segments/{target.pk}/edit/", {"name": "New", "description": "renamed"})
    target.refresh_from_db()
    assert (target.name, target.description, target.kind) == ("New", "renamed", "static")


# ----------------------------------------------------------------------------------------------- in a browser

def test_the_builder_in_a_browser_writes_the_json_and_counts_live(live_server, org, member, leads, chromium):
    member(Role.MARKETER, "builder@acme.test")
    page = chromium.new_page()
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "builder@acme.test")
    page.fill("#id_password", "pw-member-123")
    page.click("main button[type=submit]")
    page.goto(f"{live_server.url}/segments/new/")
    page.fill("#id_name", "US or VIP")
    first = page.locator("[data-segment-builder] li.seg-row").first
    first.locator("[data-key=field]").select_option("country")
    first.locator("[data-key=op]").select_option("eq")
    first.locator("[data-key=value]").fill("US")
    page.wait_for_function("() => document.querySelector('#segment-count').textContent.includes('2 leads match')")
    page.locator("[data-segment-builder] [data-combinator]").first.select_option("any")
    page.click("[data-segment-builder] > fieldset > .seg-add [data-add=field]")
    second = page.locator("[data-segment-builder] li.seg-row").nth(1)
    assert second.locator("[data-key=field]").evaluate("element => element === document.activeElement")
    second.locator("[data-key=field]").select_option("tags")
    assert second.locator("[data-key=op] option[value=gt]").is_disabled()  # no "greater than" for tags
    second.locator("[data-key=op]").select_option("contains")
    second.locator("[data-key=value]").fill("vip")
    page.wait_for_function("() => document.querySelector('#segment-count').textContent.includes('3 leads match')")
    assert json.loads(page.input_value("#id_definition")) == {"any": [
        {"field": "country", "op": "eq", "value": "US"}, {"field": "tags", "op": "contains", "value": "vip"}]}

    second.locator("[data-key=field]").select_option("score")
    second.locator("[data-key=op]").select_option("gt")
    second.locator("[data-key=value]").fill("lots")
    page.wait_for_function("() => document.querySelector('#segment-count').textContent.includes('not a number')")
    assert second.locator("[data-key=value]").get_attribute("aria-invalid") == "true"
    second.locator("[data-key=value]").fill("60")
    page.wait_for_function("() => document.querySelector('#segment-count').textContent.includes('3 leads match')")
    page.click("#segment-form button[type=submit]:not([name])")
    page.wait_for_url(re.compile(r".*/segments/[0-9a-f-]{36}/$"))
    page.close()
    assert problems == []
    assert Segment.objects.get().definition == {"any": [{"field": "country", "op": "eq", "value": "US"},
                                                        {"field": "score", "op": "gt", "value": 60}]}


def test_a_segment_exports_its_leads_as_formula_safe_csv(browser, org):
    import csv
    import io

    from leads import services as lead_services

    lead_services.capture_lead(organization_id=org.pk, data={"email": "a@example.com", "first_name": "=cmd()",
                                                             "company": "Bigco"})
    lead_services.capture_lead(organization_id=org.pk, data={"email": "b@example.com", "company": "Tiny"})
    segment = lead_services.create_segment(organization_id=org.pk, name="Big ones", definition={
        "all": [{"field": "company", "op": "eq", "value": "Bigco"}]})
    page = browser.get(f"/segments/{segment.pk}/").content.decode()
    assert f"/segments/{segment.pk}/export.csv" in page
    response = browser.get(f"/segments/{segment.pk}/export.csv")
    assert response.status_code == 200 and "big-ones-" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][:3] == ["id", "first_name", "last_name"]
    assert len(rows) == 2 and rows[1][1] == "'=cmd()" and "a@example.com" in rows[1]
