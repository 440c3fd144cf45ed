"""Browser: the leads list (filters, search, sort, cursor pages), the lead page and its timeline,
reps' own queue, and query counts that do not grow with rows."""

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leadcrm import services as tenancy
from leadcrm.models import Role
from leads import listing, services
from leads.models import Lead, SavedView

pytestmark = pytest.mark.django_db


def lead_ids(response):
    """Lead ids linked from the list, in page order."""
    assert response.status_code == 200
    return re.findall(r'href="/leads/([0-9a-f-]{36})/[?"]', response.content.decode())


def next_link(response, rel="next"):
    match = re.search(rf'<a href="([^"]+)" rel="{rel}">', response.content.decode())
    return unescape(match.group(1)) if match else None


def make(org, email, created_at=None, **fields):
    lead = Lead.objects.create(organization=org, email=email, **fields)
    if created_at:
        Lead.objects.filter(pk=lead.pk).update(created_at=created_at)
    return lead


@pytest.fixture
def leads(org, member):
    rep = member(Role.REP, "rep@acme.test")
    base = datetime(2024, 6, 1, tzinfo=UTC)
    return {
        "ada": make(org, "ada@example.com", base, first_name="Ada", last_name="Lovelace", company="Engines",
                    lifecycle_stage="mql", grade="A", score=80, source_type="paid", country="GB", owner=rep),
        "bob": make(org, "bob@example.com", base + timedelta(days=1), first_name="Bob", company="Builders",
                    lifecycle_stage="lead", grade="C", score=20, source_type="organic", country="US"),
        "cy": make(org, "cy@example.com", base + timedelta(days=2), first_name="Cy", company="Paint Co",
                   lifecycle_stage="subscriber", grade="A", score=50, source_type="paid", country="US"),
    }


def names(response, leads):
    by_id = {str(lead.pk): name for name, lead in leads.items()}
    return [by_id[i] for i in lead_ids(response)]


@pytest.mark.parametrize(("query", "expected"), [
    ("", ["cy", "bob", "ada"]),
    ("lifecycle_stage=mql", ["ada"]),
    ("lifecycle_stage=lead&lifecycle_stage=subscriber", ["cy", "bob"]),
    ("grade=A", ["cy", "ada"]),
    ("source_type=paid", ["cy", "ada"]),
    ("country=us", ["cy", "bob"]),
    ("score_min=50", ["cy", "ada"]),
    ("search=lovelace", ["ada"]),
    ("search=BUILD", ["bob"]),
    ("search=cy@example", ["cy"]),
    ("search=nothing-like-this", []),
    ("ordering=created_at", ["ada", "bob", "cy"]),
    ("ordering=-score", ["ada", "cy", "bob"]),
    ("ordering=-score&grade=A", ["ada", "cy"]),
    ("ordering=bogus", ["cy", "bob", "ada"]),
    ("ordering=first_name", ["ada", "bob", "cy"]),
    ("ordering=-email", ["cy", "bob", "ada"]),
    ("ordering=company", ["bob", "ada", "cy"]),
    ("ordering=score", ["bob", "cy", "ada"]),
    ("ordering=-grade&lifecycle_stage=lead&lifecycle_stage=mql", ["bob", "ada"]),
    # What the page's form sends with every select left at "Any": no filter, not an invalid choice.
    ("search=&lifecycle_stage=&grade=&source_type=&temperature=&country=&score_min=", ["cy", "bob", "ada"]),
    ("search=love&lifecycle_stage=&grade=A&source_type=&temperature=&country=&score_min=", ["ada"]),
])
def test_list_filters_search_and_sort(browser, leads, query, expected):
    assert names(browser.get(f"/leads/?{query}"), leads) == expected


def test_the_form_keeps_the_chosen_filters(browser, leads):
    html = browser.get("/leads/?search=Ada&grade=A&lifecycle_stage=mql&ordering=-score&country=GB").content.decode()
    assert 'name="search" value="Ada"' in html
    assert re.search(r'<option value="A"\s+selected>', html)
    assert re.search(r'<option value="mql"\s+selected>', html)
    assert re.search(r'<option value="-score"\s+selected>', html)
    assert 'name="country" maxlength="2" value="GB"' in html


def test_invalid_filter_shows_an_error_not_a_crash(browser, leads):
    response = browser.get("/leads/?score_min=lots")
    assert response.status_code == 400
    assert "score_min" in response.content.decode() and "Enter a number" in response.content.decode()
    assert not re.findall(r'href="/leads/([0-9a-f-]{36})/[?"]', response.content.decode())


def test_empty_state_says_what_to_do(browser, org):
    html = browser.get("/leads/").content.decode()
    assert "No leads match" in html
    assert 'href="/forms/"' in html and 'href="/imports/"' in html


def test_cursor_pages_cover_every_lead_once(browser, org):
    base = timezone.now() - timedelta(days=10)
    # pairs share created_at, so the pager must break ties by id
    created = {str(make(org, f"l{i:03d}@example.com", base + timedelta(minutes=i // 2)).pk) for i in range(120)}
    response = browser.get("/leads/")
    seen = lead_ids(response)
    assert len(seen) == 50
    assert next_link(response, "prev") is None
    pages = 1
    url = next_link(response)
    while url:
        response = browser.get(url)
        seen += lead_ids(response)
        pages += 1
        url = next_link(response)
    assert pages == 3
    assert len(seen) == len(set(seen)) == 120 and set(seen) == created

    back = next_link(response, "prev")
    assert back and lead_ids(browser.get(back))  # the previous page is reachable from the last


def test_cursor_pages_keep_filters_and_sort(browser, org):
    for i in range(120):
        make(org, f"s{i:03d}@example.com", score=i, grade="A" if i % 2 else "B")
    response = browser.get("/leads/?grade=A&ordering=-score")
    url = next_link(response)
    assert "grade=A" in url and "ordering=-score" in url
    ids = lead_ids(response) + lead_ids(browser.get(url))
    scores = list(Lead.objects.filter(pk__in=ids).values_list("pk", "score"))
    by_id = {str(pk): score for pk, score in scores}
    assert [by_id[i] for i in ids] == sorted(range(1, 120, 2), reverse=True)[:60]
    assert next_link(browser.get(url)) is None  # 60 grade-A leads: exactly two pages


# --- lead page -----------------------------------------------------------------------------------


def test_lead_page_shows_details_and_the_timeline_newest_first(browser, org, member):
    marketer = member(Role.MANAGER, "mgr@acme.test")
    lead = services.capture_lead(organization_id=org.pk, data={
        "email": "tl@example.com", "first_name": "Tim", "last_name": "Line", "company": "Clockworks",
        "job_title": "CTO", "utm_source": "newsletter", "tags": ["vip", "beta"], "custom_fields": {"plan": "pro"},
    }).lead
    base = timezone.now() - timedelta(days=3)
    services.record_activity(organization_id=org.pk, lead=lead, type="page_view",
                             properties={"url": "/pricing"}, occurred_at=base)
    services.record_activity(organization_id=org.pk, lead=lead, type="call", actor=marketer,
                             properties={"minutes": 12, "answered": True}, occurred_at=base + timedelta(days=1))
    services.record_activity(organization_id=org.pk, lead=lead, type="download",
                             properties={"asset": "whitepaper.pdf"}, occurred_at=base + timedelta(days=2))

    response = browser.get(f"/leads/{lead.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("Tim Line", "CTO", "Clockworks", "tl@example.com", "vip, beta", "plan", "pro",
                 "utm_source=newsletter"):
        assert text in html, text
    timeline = re.search(r'<ol class="timeline"[^>]*>.*?</ol>', html, re.S).group(0)
    kinds = re.findall(r"<strong>([^<]+)</strong>", timeline)
    assert kinds == ["API submission", "Download", "Call", "Page view"]
    assert "mgr@acme.test" in timeline  # who logged the call
    assert "whitepaper.pdf" in timeline and "/pricing" in timeline
    assert "yes" in timeline  # booleans read as yes/no, not True/False


def test_lead_page_without_activities_says_so(browser, org):
    lead = make(org, "quiet@example.com")
    assert "Nothing has happened to this lead yet." in browser.get(f"/leads/{lead.pk}/").content.decode()


def test_unknown_lead_is_404(browser):
    assert browser.get("/leads/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_times_show_in_the_viewers_timezone(browser, org):
    lead = make(org, "tz@example.com", datetime(2024, 1, 1, 23, 30, tzinfo=UTC))
    assert "2024-01-01 23:30" in browser.get(f"/leads/{lead.pk}/").content.decode()
    browser.cookies["tz"] = "Asia/Tokyo"
    assert "2024-01-02 08:30" in browser.get(f"/leads/{lead.pk}/").content.decode()
    browser.cookies["tz"] = "Not/AZone"
    assert browser.get(f"/leads/{lead.pk}/").status_code == 200


# --- reps see their own queue -------------------------------------------------------------------


def test_reps_see_only_their_own_leads(client, org, leads):
    rep = Lead.objects.get(pk=leads["ada"].pk).owner
    client.force_login(rep)
    assert names(client.get("/leads/"), leads) == ["ada"]
    assert names(client.get("/leads/?search=e"), leads) == ["ada"]
    assert client.get(f"/leads/{leads['ada'].pk}/").status_code == 200
    assert client.get(f"/leads/{leads['bob'].pk}/").status_code == 404
    html = client.get("/leads/").content.decode()
    assert 'href="/forms/"' not in html and 'href="/settings/api-keys/"' not in html


def test_another_rep_sees_none_of_them(client, org, leads, member):
    client.force_login(member(Role.REP, "rep2@acme.test"))
    assert lead_ids(client.get("/leads/")) == []
    assert client.get(f"/leads/{leads['ada'].pk}/").status_code == 404


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MANAGER, Role.MARKETER])
def test_org_wide_roles_see_every_lead(client, org, leads, member, role):
    client.force_login(member(role, f"{role}-x@acme.test"))
    assert sorted(names(client.get("/leads/"), leads)) == ["ada", "bob", "cy"]


# --- query counts --------------------------------------------------------------------------------


def _queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries), response


def test_list_query_count_does_not_grow_with_rows(browser, org):
    for i in range(5):
        owner = tenancy.add_member(organization=org, email=f"a{i}@acme.test", password=None, role="rep").user
        make(org, f"first{i}@example.com", owner=owner, grade="B")
    few, response = _queries(browser, "/leads/")
    assert len(lead_ids(response)) == 5
    for i in range(45):
        owner = tenancy.add_member(organization=org, email=f"b{i}@acme.test", password=None, role="rep").user
        make(org, f"more{i}@example.com", owner=owner, grade="B")
    many, response = _queries(browser, "/leads/")
    assert len(lead_ids(response)) == 50
    assert many == few


def test_lead_page_query_count_does_not_grow_with_activities(browser, org, member):
    lead = make(org, "busy@example.com")
    actor = member(Role.MANAGER, "m@acme.test")
    services.record_activity(organization_id=org.pk, lead=lead, type="call", actor=actor)
    few, _ = _queries(browser, f"/leads/{lead.pk}/")
    for i in range(40):
        user = tenancy.add_member(organization=org, email=f"act{i}@acme.test", password=None, role="rep").user
        services.record_activity(organization_id=org.pk, lead=lead, type="note", actor=user,
                                 properties={"text": f"note {i}"})
    many, response = _queries(browser, f"/leads/{lead.pk}/")
    assert response.content.decode().count("<li>") >= 41
    assert many == few


def test_leads_list_filters_by_temperature_and_source_type(browser, org):
    hot = services.capture_lead(organization_id=org.pk, data={"email": "hot@example.com", "source_type": "paid"}).lead
    services.capture_lead(organization_id=org.pk, data={"email": "cold@example.com", "source_type": "paid"})
    Lead.objects.filter(pk=hot.pk).update(temperature="hot")
    page = browser.get("/leads/", {"temperature": "hot", "source_type": "paid"}).content.decode()
    assert "hot@example.com" in page and "cold@example.com" not in page


def test_column_headers_sort_both_ways_and_keep_the_filters(browser, leads):
    html = browser.get("/leads/?search=e&grade=A&ordering=-score").content.decode()
    headers = dict(re.findall(r'<a href="(\?[^"]+)" class="sort">(\w+)', html)[i][::-1] for i in range(6))
    assert set(headers) == {"Name", "Email", "Company", "Score", "Grade", "Created"}
    assert 'aria-sort="descending"' in html and html.count("aria-sort=") == 1
    score = unescape(headers["Score"])  # sorted by it now: the link turns it round
    assert "ordering=score" in score and "grade=A" in score and "search=e" in score
    assert "ordering=first_name" in unescape(headers["Name"])  # text starts A–Z
    assert "ordering=-created_at" in unescape(headers["Created"])  # dates start newest


def test_a_sort_starts_again_at_the_first_page():
    headers = listing.sort_headers(QueryDict("cursor=cD0yMDI0&grade=A&ordering=email"), "email")
    by_label = {header["label"]: header for header in headers}
    assert by_label["Email"]["state"] == "ascending" and by_label["Email"]["url"] == "?grade=A&ordering=-email"
    assert by_label["Stage"]["url"] == "" and "cursor" not in by_label["Score"]["url"]


def test_a_cut_short_page_link_is_a_400_not_a_crash(browser, leads):
    assert browser.get("/leads/?cursor=abc").status_code == 400


def test_recently_active_pages_through_leads_never_active(browser, org):
    for i in range(60):
        lead = make(org, f"n{i:02d}@example.com")
        if i % 3 == 0:
            Lead.objects.filter(pk=lead.pk).update(last_activity_at=timezone.now() - timedelta(hours=i))
    response = browser.get("/leads/?ordering=-last_activity_at")
    seen = lead_ids(response)
    url = next_link(response)
    assert url
    seen += lead_ids(browser.get(url))
    assert len(seen) == len(set(seen)) == 60


def _csv(response):
    import csv
    import io

    assert response.status_code == 200 and response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))


def test_export_holds_the_filtered_sorted_list_formula_safe(browser, leads, org):
    make(org, "evil@example.com", first_name="=HYPERLINK(\"https://evil.test\")", grade="A", score=99)
    rows = _csv(browser.get("/leads/export.csv?grade=A&ordering=-score&lifecycle_stage=&cursor=xyz"))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["id", "first_name", "last_name", "email"]
    assert [row[3] for row in body] == ["evil@example.com", "ada@example.com", "cy@example.com"]
    assert body[0][1] == "'=HYPERLINK(\"https://evil.test\")"
    assert body[1][header.index("owner")] == "rep@acme.test" and body[1][header.index("score")] == "80"


def test_export_queries_do_not_grow_with_rows(browser, org):
    for i in range(3):
        make(org, f"x{i}@example.com")
    with CaptureQueriesContext(connection) as few:
        _csv(browser.get("/leads/export.csv"))
    for i in range(3, 40):
        make(org, f"x{i}@example.com")
    with CaptureQueriesContext(connection) as many:
        assert len(_csv(browser.get("/leads/export.csv"))) == 41
    assert len(many.captured_queries) == len(few.captured_queries)


def test_reps_may_not_export_the_list(client, org, leads):
    client.force_login(leads["ada"].owner)
    assert client.get("/leads/export.csv").status_code == 403
    assert b"Export CSV" not in client.get("/leads/").content


def test_a_bad_filter_on_export_goes_back_to_the_list_with_its_error(browser, leads):
    response = browser.get("/leads/export.csv?score_min=lots", follow=True)
    assert response.status_code == 400 and "Enter a number" in response.content.decode()


# --- saved views ---------------------------------------------------------------------------------


def test_a_saved_view_keeps_the_lists_keys_only_and_opens_with_them(browser, leads):
    response = browser.post("/leads/views/", {"name": " A grade ", "shared": "",
                                              "query": "grade=A&ordering=-score&cursor=abc&evil=1&country="})
    assert response.status_code == 302
    view = SavedView.objects.get()
    assert (view.name, view.query, view.shared) == ("A grade", "grade=A&ordering=-score", False)
    assert names(browser.get(response["Location"]), leads) == ["ada", "cy"]
    browser.post("/leads/views/", {"name": "A grade", "query": "grade=C", "shared": "on"})  # saving again updates
    view.refresh_from_db()
    assert SavedView.objects.count() == 1 and view.query == "grade=C" and view.shared


def test_a_view_without_a_name_is_a_form_error(browser, leads):
    response = browser.post("/leads/views/", {"name": "  ", "query": "grade=A"})
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    shown = re.findall(r'href="/leads/([0-9a-f-]{36})/[?"]', response.content.decode())
    assert shown == [str(leads["cy"].pk), str(leads["ada"].pk)]  # the list it was about to save, shown again
    assert not SavedView.objects.exists()


def test_views_are_their_owners_unless_shared_and_never_another_orgs(client, org, other_org, member, leads):
    own = member(Role.MARKETER, "own@acme.test")
    colleague = member(Role.MANAGER, "col@acme.test")
    private = services.save_view(organization_id=org.pk, owner=own, name="Mine", query="grade=A", shared=False)
    shared = services.save_view(organization_id=org.pk, owner=own, name="Ours", query="grade=C", shared=True)
    stranger = tenancy.add_member(organization=other_org, email="x@rival.test", password=None, role="admin").user
    theirs = services.save_view(organization_id=other_org.pk, owner=stranger, name="Theirs", query="", shared=True)
    client.force_login(colleague)
    html = client.get("/leads/").content.decode()
    assert "Ours (shared)" in html and "Mine" not in html and "Theirs" not in html
    assert client.get(f"/leads/?view={private.pk}").status_code == 404
    assert client.get(f"/leads/?view={theirs.pk}").status_code == 404
    assert client.get("/leads/?view=nonsense").status_code == 404
    assert names(client.get(f"/leads/?view={shared.pk}"), leads) == ["bob"]
    assert client.post(f"/leads/views/{shared.pk}/delete/").status_code == 404  # only its owner deletes it
    client.force_login(own)
    assert client.post(f"/leads/views/{shared.pk}/delete/").status_code == 302
    assert set(SavedView.objects.values_list("name", flat=True)) == {"Mine", "Theirs"}


def test_list_query_count_does_not_grow_with_saved_views_or_rows(browser, org, member):
    user = member(Role.MANAGER, "views@acme.test")
    browser.force_login(user)
    make(org, "one@example.com")
    services.save_view(organization_id=org.pk, owner=user, name="v0", query="grade=A", shared=False)
    few, _ = _queries(browser, "/leads/")
    for i in range(1, 20):
        services.save_view(organization_id=org.pk, owner=user, name=f"v{i}", query="grade=A", shared=i % 2 == 0)
        make(org, f"more{i}@example.com")
    many, response = _queries(browser, "/leads/")
    assert response.content.decode().count("<option value=") > 20
    assert many == few


def test_export_never_holds_another_orgs_leads(browser, leads, other_org):
    make(other_org, "rival@example.com", grade="A")
    emails = [row[3] for row in _csv(browser.get("/leads/export.csv"))[1:]]
    assert sorted(emails) == ["ada@example.com", "bob@example.com", "cy@example.com"]
