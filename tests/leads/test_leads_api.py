"""The leads REST API beyond capture: filters, search, ordering, cursor pages, PATCH/DELETE, bulk,
activities and the timeline, query counts, API-key authentication, OpenAPI and /readyz."""

import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from leadcrm import services as tenancy
from leadcrm.celery import app as celery_app
from leadcrm.models import ApiKey, Role
from leads import services
from leads.models import Activity, Lead

pytestmark = pytest.mark.django_db


def make_lead(org, created_at=None, **fields):
    fields.setdefault("email", f"{fields.get('first_name', 'x').lower()}-{Lead.objects.count()}@example.com")
    lead = Lead.objects.create(organization=org, **fields)
    if created_at is not None:
        Lead.objects.filter(pk=lead.pk).update(created_at=created_at)
        lead.refresh_from_db()
    return lead


def emails(response):
    assert response.status_code == 200, response.content[:500]
    return {row["email"] for row in response.json()["results"]}


def path_of(url):
    """The path+query of an absolute `next`/`previous` link, for the test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def walk(api, url, direction="next", limit=200):
    """Follows `direction` links from `url`; returns the pages' rows. Fails instead of looping forever."""
    pages = []
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content[:300]
        body = response.json()
        pages.append(body["results"])
        assert len(pages) <= limit, f"{url} never ends"
        url = path_of(body[direction]) if body[direction] else None
    return pages


# --- filters -------------------------------------------------------------------------------------


@pytest.fixture
def catalogue(org, member):
    rep1, rep2 = member(Role.REP, "rep1@acme.test"), member(Role.REP, "rep2@acme.test")
    jan, feb, mar = (datetime(2024, m, 1, 12, tzinfo=UTC) for m in (1, 2, 3))
    make_lead(org, email="ada@example.com", first_name="Ada", last_name="Lovelace", company="Engines Ltd",
              lifecycle_stage="lead", owner=rep1, source="Webinar", source_type="paid", country="US",
              industry="Software", score=10, grade="A", created_at=jan)
    make_lead(org, email="bob@example.com", first_name="Bob", last_name="Builder", company="Acme Retail",
              lifecycle_stage="subscriber", source="blog", source_type="organic", country="DE",
              industry="retail", score=50, grade="B", created_at=feb)
    make_lead(org, email="cy@example.com", first_name="Cy", last_name="Twombly", company="Paintworks",
              lifecycle_stage="mql", owner=rep2, source="webinar", source_type="inbound", country="US",
              industry="software", score=90, grade="A", created_at=mar, phone="+14155550100")
    return {"rep1": rep1, "rep2": rep2}


FILTER_CASES = [
    ("email=ADA@example.com", {"ada"}),
    ("email=%20ada@example.com%20", {"ada"}),
    ("email=nobody@example.com", set()),
    ("lifecycle_stage=mql", {"cy"}),
    ("lifecycle_stage=lead&lifecycle_stage=subscriber", {"ada", "bob"}),
    ("owner={rep1}", {"ada"}),
    ("owner={rep2}", {"cy"}),
    ("unassigned=true", {"bob"}),
    ("source=WEBINAR", {"ada", "cy"}),
    ("source_type=organic", {"bob"}),
    ("country=us", {"ada", "cy"}),
    ("industry=SOFTWARE", {"ada", "cy"}),
    ("created_after=2024-02-01T12:00:00Z", {"bob", "cy"}),
    ("created_before=2024-02-01T12:00:00Z", {"ada"}),
    ("created_after=2024-01-15T00:00:00Z&created_before=2024-02-15T00:00:00Z", {"bob"}),
    ("score_min=50", {"bob", "cy"}),
    ("score_max=50", {"ada", "bob"}),
    ("score_min=11&score_max=89", {"bob"}),
    ("grade=A", {"ada", "cy"}),
    ("grade=A&grade=B", {"ada", "bob", "cy"}),
    ("country=US&score_min=50", {"cy"}),
    ("search=lovelace", {"ada"}),
    ("search=ADA LOVE", {"ada"}),
    ("search=bob@exam", {"bob"}),
    ("search=paintworks", {"cy"}),
    ("search=retai", {"bob"}),  # "Acme Retail": a substring of the company
    ("search=e", {"ada", "bob", "cy"}),
    ("search=zzz", set()),
    ("search=webinar", set()),  # source is not searched
]


@pytest.mark.parametrize(("query", "expected"), FILTER_CASES, ids=[q for q, _ in FILTER_CASES])
def test_filters_and_search(api, catalogue, query, expected):
    query = query.format(rep1=catalogue["rep1"].pk, rep2=catalogue["rep2"].pk)
    found = emails(api.get(f"/api/v1/leads/?{query}"))
    assert found == {f"{name}@example.com" for name in expected}


@pytest.mark.parametrize("query", [
    "score_min=abc", "score_max=1.2.3", "lifecycle_stage=bogus", "created_after=yesterday",
    "created_before=2024-13-45", "owner=someone", "grade=Z", "source_type=tv",
])
def test_invalid_filter_values_are_400_with_the_field_named(api, catalogue, query):
    response = api.get(f"/api/v1/leads/?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()["errors"]


@pytest.mark.parametrize(("ordering", "expected"), [
    ("score", ["ada", "bob", "cy"]),
    ("-score", ["cy", "bob", "ada"]),
    ("created_at", ["ada", "bob", "cy"]),
    ("-created_at", ["cy", "bob", "ada"]),
    ("", ["cy", "bob", "ada"]),  # default: newest first
    ("email", ["cy", "bob", "ada"]),  # not an allowed ordering: ignored, default applies
])
def test_ordering(api, catalogue, ordering, expected):
    response = api.get(f"/api/v1/leads/?ordering={ordering}")
    assert response.status_code == 200
    assert [row["email"].split("@")[0] for row in response.json()["results"]] == expected


def test_search_and_filters_combine_with_ordering(api, catalogue):
    response = api.get("/api/v1/leads/?industry=software&ordering=-score&search=e")
    assert [row["email"] for row in response.json()["results"]] == ["cy@example.com", "ada@example.com"]


# --- cursor pagination ---------------------------------------------------------------------------


@pytest.fixture
def many_leads(org):
    base = timezone.now() - timedelta(days=30)
    # Same created_at for pairs, and scores with many ties, so paging must break ties correctly.
    return [make_lead(org, email=f"p{i:02d}@example.com", score=i % 3, created_at=base + timedelta(hours=i // 2))
            for i in range(23)]


def test_cursor_pages_walk_every_lead_once_forwards_and_back(api, many_leads):
    first = api.get("/api/v1/leads/?page_size=5")
    body = first.json()
    assert set(body) >= {"results", "next", "previous"}
    assert body["previous"] is None and len(body["results"]) == 5
    assert "cursor=" in body["next"]

    pages = walk(api, "/api/v1/leads/?page_size=5")
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    seen = [row["id"] for page in pages for row in page]
    assert len(seen) == len(set(seen)) == 23
    expected = [str(lead.pk) for lead in Lead.objects.order_by("-created_at", "-pk")]
    created = [row["created_at"] for page in pages for row in page]
    assert created == sorted(created, reverse=True)
    assert set(seen) == set(expected)

    # Back from the last page with `previous` reaches the first page again, in the same order.
    last = api.get(path_of(api.get("/api/v1/leads/?page_size=5").json()["next"]))
    url = None
    body = api.get("/api/v1/leads/?page_size=5").json()
    while body["next"]:
        url = path_of(body["next"])
        body = api.get(url).json()
    back = walk(api, url, direction="previous")
    assert [row["id"] for row in back[-1]] == [row["id"] for row in pages[0]]
    assert last.status_code == 200


@pytest.mark.parametrize("ordering", ["score", "-score", "created_at"])
def test_cursor_pages_with_ties_in_the_ordering_lose_and_repeat_nothing(api, many_leads, ordering):
    pages = walk(api, f"/api/v1/leads/?page_size=4&ordering={ordering}")
    seen = [row["id"] for page in pages for row in page]
    assert sorted(seen) == sorted(str(lead.pk) for lead in many_leads)
    key = ordering.lstrip("-")
    values = [row[key] for page in pages for row in page]
    assert values == sorted(values, reverse=ordering.startswith("-"))


def test_next_link_keeps_filters(api, many_leads):
    body = api.get("/api/v1/leads/?page_size=2&score_min=2").json()
    assert "score_min=2" in body["next"]
    pages = walk(api, "/api/v1/leads/?page_size=2&score_min=2")
    assert all(row["score"] == 2 for page in pages for row in page)
    assert sum(len(p) for p in pages) == sum(1 for lead in many_leads if lead.score == 2)


def test_page_size_is_capped(api, org):
    Lead.objects.bulk_create([Lead(organization=org, email=f"c{i}@example.com") for i in range(510)])
    response = api.get("/api/v1/leads/?page_size=100000")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 500


def test_garbage_cursor_is_404_not_500(api, many_leads):
    response = api.get("/api/v1/leads/?cursor=not-a-cursor")
    assert response.status_code == 404


# --- concurrency -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_captures_of_one_new_email_make_one_lead(org, api_key):
    """Eight clients send the same new email at once: one lead, one 201, the others merge (200)."""
    from django.db import connections

    barrier = threading.Barrier(8)
    answers = []

    def send(n):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
        try:
            barrier.wait()
            response = client.post("/api/v1/leads/", {"email": "Race@Example.com", "job_title": f"t{n}"},
                                   format="json")
            answers.append((response.status_code, response.json().get("id")))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _ in answers) == [200] * 7 + [201]
    assert len({lead_id for _, lead_id in answers}) == 1
    assert Lead.objects.for_org(org).count() == 1
    lead = Lead.objects.get()
    assert lead.activities.count() == 8  # every submission is on the timeline
    assert lead.job_title.startswith("t")  # filled by whichever came first, never blanked


# --- retrieve / PATCH / DELETE -------------------------------------------------------------------


def test_retrieve(api, org):
    lead = make_lead(org, email="r@example.com", first_name="Rae", tags=["vip"], custom_fields={"plan": "pro"})
    body = api.get(f"/api/v1/leads/{lead.pk}/").json()
    assert body["id"] == str(lead.pk)
    assert (body["first_name"], body["tags"], body["custom_fields"]) == ("Rae", ["vip"], {"plan": "pro"})


def test_retrieve_unknown_id_is_404(api):
    assert api.get("/api/v1/leads/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert api.get("/api/v1/leads/not-a-uuid/").status_code == 404


def test_patch_is_partial(api, org):
    lead = make_lead(org, email="p@example.com", first_name="Pat", company="Old Co", phone="+14155550123")
    response = api.patch(f"/api/v1/leads/{lead.pk}/", {"company": "New Co"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["company"] == "New Co"
    lead.refresh_from_db()
    assert (lead.company, lead.first_name, lead.email, lead.phone) == ("New Co", "Pat", "p@example.com",
                                                                       "+14155550123")


def test_patch_normalises_like_create(api, org):
    lead = make_lead(org, email="n@example.com")
    response = api.patch(f"/api/v1/leads/{lead.pk}/",
                         {"email": "  NEW@Example.com ", "phone": "030 1234567", "country": "de"}, format="json")
    assert response.status_code == 200, response.json()
    lead.refresh_from_db()
    assert (lead.email, lead.phone, lead.country) == ("new@example.com", "+49301234567", "DE")


def test_patch_cannot_blank_both_email_and_phone(api, org):
    lead = make_lead(org, email="only@example.com")
    response = api.patch(f"/api/v1/leads/{lead.pk}/", {"email": ""}, format="json")
    assert response.status_code == 400
    assert "email" in response.json()["errors"]
    lead.refresh_from_db()
    assert lead.email == "only@example.com"

    both = make_lead(org, email="both@example.com", phone="+14155550199")
    response = api.patch(f"/api/v1/leads/{both.pk}/", {"email": "", "phone": ""}, format="json")
    assert response.status_code == 400
    assert api.patch(f"/api/v1/leads/{both.pk}/", {"email": ""}, format="json").status_code == 200
    both.refresh_from_db()
    assert (both.email, both.phone) == ("", "+14155550199")


def test_patch_to_an_email_another_lead_has_is_a_clear_400(api, org):
    make_lead(org, email="taken@example.com")
    lead = make_lead(org, email="mine@example.com")
    response = api.patch(f"/api/v1/leads/{lead.pk}/", {"email": "TAKEN@example.com"}, format="json")
    assert response.status_code == 400
    assert "email" in response.json()["errors"]
    lead.refresh_from_db()
    assert lead.email == "mine@example.com"


def test_patch_owner_must_be_a_member(api, org, other_org, member):
    lead = make_lead(org, email="o@example.com")
    rep = member(Role.REP)
    response = api.patch(f"/api/v1/leads/{lead.pk}/", {"owner": rep.pk}, format="json")
    assert response.status_code == 200
    assert response.json()["owner"] == rep.pk
    stranger = tenancy.get_or_create_user(email="stranger@nowhere.test", password="pw-strange-1")
    for bad in (stranger.pk, 999999, "abc"):
        response = api.patch(f"/api/v1/leads/{lead.pk}/", {"owner": bad}, format="json")
        assert response.status_code == 400
        assert "owner" in response.json()["errors"]
    lead.refresh_from_db()
    assert lead.owner == rep
    assert api.patch(f"/api/v1/leads/{lead.pk}/", {"owner": None}, format="json").status_code == 200
    lead.refresh_from_db()
    assert lead.owner is None


@pytest.mark.parametrize("body", [
    {"lifecycle_stage": "customer"},  # stage changes have their own endpoint
    {"nonsense": 1},
    {"company_size": -5},
    {"tags": "vip"},
])
def test_patch_rejects_bad_input_and_changes_nothing(api, org, body):
    lead = make_lead(org, email="keep@example.com", company_size=10)
    before = Lead.objects.filter(pk=lead.pk).values().get()
    response = api.patch(f"/api/v1/leads/{lead.pk}/", body, format="json")
    assert response.status_code == 400
    assert set(body) & set(response.json()["errors"])
    assert Lead.objects.filter(pk=lead.pk).values().get() == before


def test_patch_is_recorded_on_updated_at(api, org):
    lead = make_lead(org, email="u@example.com")
    before = lead.updated_at
    api.patch(f"/api/v1/leads/{lead.pk}/", {"city": "Lyon"}, format="json")
    lead.refresh_from_db()
    assert lead.updated_at > before


def test_delete(api, org):
    lead = services.capture_lead(organization_id=org.pk, data={"email": "d@example.com"}).lead
    keep = make_lead(org, email="k@example.com")
    assert Activity.objects.filter(lead=lead).exists()
    response = api.delete(f"/api/v1/leads/{lead.pk}/")
    assert response.status_code == 204
    assert not Lead.objects.filter(pk=lead.pk).exists()
    assert not Activity.objects.filter(lead_id=lead.pk).exists()
    assert Lead.objects.filter(pk=keep.pk).exists()
    assert api.delete(f"/api/v1/leads/{lead.pk}/").status_code == 404


# --- bulk ----------------------------------------------------------------------------------------


def test_bulk_gives_a_result_per_row_and_keeps_the_good_ones(api, org):
    make_lead(org, email="exists@example.com", first_name="Existing")
    rows = [
        {"email": "new1@example.com", "first_name": "New"},
        {"email": "not-an-email"},
        {"email": "EXISTS@example.com", "company": "Filled"},
        "not an object",
        {"first_name": "No contact"},
        {"email": "new2@example.com", "bogus_field": 1},
        {"phone": "+14155550111"},
        {"email": "new1@example.com", "last_name": "Again"},  # same as row 0: merges into it
    ]
    response = api.post("/api/v1/leads/bulk/", {"leads": rows}, format="json")
    assert response.status_code == 200, response.content[:500]
    body = response.json()
    assert [r["status"] for r in body["results"]] == [201, 400, 200, 400, 400, 400, 201, 200]
    assert [r["index"] for r in body["results"]] == list(range(len(rows)))
    assert (body["created"], body["merged"], body["failed"]) == (2, 2, 4)
    assert "email" in body["results"][1]["errors"]
    assert "email" in body["results"][4]["errors"]
    assert "bogus_field" in body["results"][5]["errors"]
    assert body["results"][0]["id"] == body["results"][7]["id"]
    new1 = Lead.objects.get(email="new1@example.com")
    assert (new1.first_name, new1.last_name) == ("New", "Again")
    assert Lead.objects.get(email="exists@example.com").company == "Filled"
    assert Lead.objects.for_org(org).count() == 3
    assert not Lead.objects.filter(email="new2@example.com").exists()


def test_bulk_accepts_a_bare_list(api):
    response = api.post("/api/v1/leads/bulk/", [{"email": "bare@example.com"}], format="json")
    assert response.status_code == 200
    assert response.json()["created"] == 1


@pytest.mark.parametrize("body", [{"leads": "x"}, {"leads": {"email": "a@b.co"}}, {}, "text"])
def test_bulk_needs_a_list(api, body):
    response = api.post("/api/v1/leads/bulk/", body, format="json")
    assert response.status_code == 400
    assert "leads" in response.json()["errors"]


def test_bulk_takes_1000_rows_and_refuses_1001_writing_nothing(api, org):
    rows = [{"email": f"b{i}@example.com"} for i in range(1001)]
    response = api.post("/api/v1/leads/bulk/", {"leads": rows}, format="json")
    assert response.status_code == 400
    assert "leads" in response.json()["errors"]
    assert Lead.objects.count() == 0

    response = api.post("/api/v1/leads/bulk/", {"leads": rows[:1000]}, format="json")
    assert response.status_code == 200
    assert response.json()["created"] == 1000
    assert Lead.objects.for_org(org).count() == 1000


def test_bulk_is_idempotent(api, org):
    headers = {"HTTP_IDEMPOTENCY_KEY": "bulk-1"}
    rows = {"leads": [{"email": "i1@example.com"}, {"email": "bad"}]}
    first = api.post("/api/v1/leads/bulk/", rows, format="json", **headers)
    again = api.post("/api/v1/leads/bulk/", rows, format="json", **headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Lead.objects.count() == 1
    assert Activity.objects.count() == 1


# --- activities and the timeline -----------------------------------------------------------------


def test_activity_for_an_unknown_email_creates_the_lead(api, org):
    response = api.post("/api/v1/activities/", {
        "email": "Visitor@Example.com", "type": "page_view", "properties": {"url": "/pricing"},
        "occurred_at": "2024-05-01T10:00:00Z",
    }, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["lead_created"] is True
    lead = Lead.objects.for_org(org).get(email="visitor@example.com")
    assert body["lead"] == str(lead.pk)
    view = Activity.objects.get(pk=body["id"])
    assert (view.type, view.properties, view.occurred_at) == (
        "page_view", {"url": "/pricing"}, datetime(2024, 5, 1, 10, tzinfo=UTC))


def test_activity_for_a_known_email_or_id_uses_the_lead(api, org):
    lead = make_lead(org, email="known@example.com")
    by_email = api.post("/api/v1/activities/", {"email": "KNOWN@example.com", "type": "download"}, format="json")
    by_id = api.post("/api/v1/activities/", {"lead": str(lead.pk), "type": "call",
                                             "properties": {"minutes": 5}}, format="json")
    assert by_email.status_code == by_id.status_code == 201
    assert by_email.json()["lead"] == by_id.json()["lead"] == str(lead.pk)
    assert by_email.json()["lead_created"] is False
    assert Lead.objects.count() == 1
    assert sorted(lead.activities.values_list("type", flat=True)) == ["call", "download"]
    lead.refresh_from_db()
    assert lead.last_activity_at is not None


def test_activity_recorded_by_a_signed_in_user_names_them(client, org, member):
    user = member(Role.MARKETER)
    client.force_login(user)
    lead = make_lead(org, email="note@example.com")
    response = client.post("/api/v1/activities/", {"lead": str(lead.pk), "type": "note",
                                                   "properties": {"text": "Called back"}},
                           content_type="application/json")
    assert response.status_code == 201
    assert response.json()["actor"] == user.pk


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "note"}, "lead"),
    ({"lead": "00000000-0000-0000-0000-000000000000", "type": "note"}, "lead"),
    ({"email": "a@example.com", "lead": "00000000-0000-0000-0000-000000000000", "type": "note"}, "lead"),
    ({"email": "a@example.com", "type": "teleport"}, "type"),
    ({"email": "a@example.com"}, "type"),
    ({"email": "not-an-email", "type": "note"}, "email"),
    ({"email": "a@example.com", "type": "note", "properties": ["x"]}, "properties"),
    ({"email": "a@example.com", "type": "note", "occurred_at": "last tuesday"}, "occurred_at"),
    ({"email": "a@example.com", "type": "note", "extra": 1}, "extra"),
])
def test_activity_bad_input(api, body, field):
    response = api.post("/api/v1/activities/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert Activity.objects.count() == 0
    assert Lead.objects.count() == 0


def test_activity_idempotency(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "act-1"}
    body = {"email": "idem@example.com", "type": "page_view"}
    first = api.post("/api/v1/activities/", body, format="json", **headers)
    again = api.post("/api/v1/activities/", body, format="json", **headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert Activity.objects.filter(type="page_view").count() == 1


def test_timeline_is_newest_first_and_paginated(api, org):
    lead = make_lead(org, email="t@example.com")
    base = datetime(2024, 1, 1, tzinfo=UTC)
    for days in (3, 1, 7, 5, 2, 6, 4):
        services.record_activity(organization_id=org.pk, lead=lead, type="page_view",
                                 properties={"day": days}, occurred_at=base + timedelta(days=days))
    other = make_lead(org, email="other@example.com")
    services.record_activity(organization_id=org.pk, lead=other, type="note")

    pages = walk(api, f"/api/v1/leads/{lead.pk}/activities/?page_size=3")
    days = [row["properties"]["day"] for page in pages for row in page]
    assert days == [7, 6, 5, 4, 3, 2, 1]
    assert all(row["lead"] == str(lead.pk) for page in pages for row in page)


# --- query counts --------------------------------------------------------------------------------


def _count_queries(fn):
    with CaptureQueriesContext(connection) as ctx:
        response = fn()
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_list_query_count_does_not_grow_with_page_size(api, org):
    for i in range(50):
        owner = tenancy.add_member(organization=org, email=f"owner{i}@acme.test", password=None, role="rep").user
        make_lead(org, email=f"q{i}@example.com", owner=owner, tags=["t"], custom_fields={"i": i})
    api.get("/api/v1/leads/?page_size=1")  # warm up: last_used_at stamp, content types
    small = _count_queries(lambda: api.get("/api/v1/leads/?page_size=5"))
    large = _count_queries(lambda: api.get("/api/v1/leads/?page_size=50"))
    assert large == small
    assert small <= 4


def test_timeline_query_count_does_not_grow(api, org):
    lead = make_lead(org, email="tq@example.com")
    for _ in range(40):
        services.record_activity(organization_id=org.pk, lead=lead, type="page_view")
    api.get(f"/api/v1/leads/{lead.pk}/activities/?page_size=1")
    small = _count_queries(lambda: api.get(f"/api/v1/leads/{lead.pk}/activities/?page_size=4"))
    large = _count_queries(lambda: api.get(f"/api/v1/leads/{lead.pk}/activities/?page_size=40"))
    assert large == small


# --- API-key authentication ----------------------------------------------------------------------


def test_no_key_is_401():
    response = APIClient().get("/api/v1/leads/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize("header", [
    "Api-Key nope", "Api-Key ", "Api-Key abc.def", "Api-Key " + "x" * 500, "Api-Key \u00e9\u00e9.\u00e9",
])
def test_invalid_key_is_401(org, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get("/api/v1/leads/").status_code == 401
    assert client.post("/api/v1/leads/", {"email": "a@example.com"}, format="json").status_code == 401
    assert Lead.objects.count() == 0


def test_a_tampered_key_with_a_real_prefix_is_401(org, api_key):
    prefix, _, secret = api_key.partition(".")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {prefix}.{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}")
    assert client.get("/api/v1/leads/").status_code == 401


def test_revoked_key_is_401(org):
    key, plain = tenancy.create_api_key(organization=org, name="soon revoked")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    assert client.get("/api/v1/leads/").status_code == 200
    tenancy.revoke_api_key(api_key=key)
    assert client.get("/api/v1/leads/").status_code == 401


def test_expired_key_is_401(org):
    key, plain = tenancy.create_api_key(organization=org, name="expired")
    ApiKey.objects.filter(pk=key.pk).update(expiry_date=timezone.now() - timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    assert client.get("/api/v1/leads/").status_code == 401


def test_revoking_through_the_api_stops_the_key(api, org):
    key, plain = tenancy.create_api_key(organization=org, name="to revoke")
    assert api.delete(f"/api/v1/api-keys/{key.prefix}/").status_code == 204
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    assert client.get("/api/v1/leads/").status_code == 401
    assert api.get(f"/api/v1/api-keys/{key.prefix}/").json()["revoked"] is True


def test_last_used_at_is_set_when_the_key_is_used(org):
    key, plain = tenancy.create_api_key(organization=org, name="fresh")
    assert key.last_used_at is None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    before = timezone.now()
    client.get("/api/v1/leads/")
    key.refresh_from_db()
    assert key.last_used_at is not None and key.last_used_at >= before


def test_api_key_create_shows_the_key_once_and_it_works(api, org):
    response = api.post("/api/v1/api-keys/", {"name": "zapier"}, format="json")
    assert response.status_code == 201
    plain = response.json()["key"]
    assert plain.startswith(response.json()["prefix"] + ".")
    assert api.get(f"/api/v1/api-keys/{response.json()['prefix']}/").json()["key"] is None
    stored = ApiKey.objects.get(prefix=response.json()["prefix"])
    assert plain not in stored.hashed_key and stored.organization == org
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    assert client.get("/api/v1/ping/").json()["ok"] is True


def test_ping_checks_a_key(api, org):
    response = api.get("/api/v1/ping/")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "organization": org.slug}
    assert APIClient().get("/api/v1/ping/").status_code == 401


def test_reps_read_and_work_only_their_own_leads_over_the_api(client, member, org):
    rep = member(Role.REP)
    mine = services.capture_lead(organization_id=org.pk, data={"email": "mine@example.com"}).lead
    services.capture_lead(organization_id=org.pk, data={"email": "theirs@example.com"})
    Lead.objects.filter(pk=mine.pk).update(owner=rep)
    client.force_login(rep)
    assert [row["email"] for row in client.get("/api/v1/leads/").json()["results"]] == ["mine@example.com"]
    # A rep corrects the contact and company details of their own leads, as on the lead page...
    assert client.patch(f"/api/v1/leads/{mine.pk}/", {"first_name": "X", "phone": "+14155550123"},
                        content_type="application/json").status_code == 200
    assert Lead.objects.get(pk=mine.pk).first_name == "X"
    # ...but changing leads at large (owner, tags, consent…) is org-wide work, as in the browser
    for body in ({"owner": None}, {"tags": ["mine"]}, {"first_name": "Y", "do_not_contact": True}):
        response = client.patch(f"/api/v1/leads/{mine.pk}/", body, content_type="application/json")
        assert response.status_code == 403, body
    assert Lead.objects.get(pk=mine.pk).first_name == "X" and Lead.objects.get(pk=mine.pk).owner_id == rep.pk
    theirs = Lead.objects.get(email="theirs@example.com")
    assert client.patch(f"/api/v1/leads/{theirs.pk}/", {"first_name": "X"}, content_type="application/json"
                        ).status_code == 404
    assert client.post("/api/v1/leads/", {"email": "new@example.com"}, content_type="application/json"
                       ).status_code == 403


def test_session_user_without_an_organization_gets_403(client):
    client.force_login(tenancy.get_or_create_user(email="loner@example.com", password="pw-loner-12"))
    assert client.get("/api/v1/leads/").status_code == 403


# --- schema, docs, health ------------------------------------------------------------------------


def test_openapi_schema_and_docs():
    schema = APIClient().get("/api/schema/?format=json")
    assert schema.status_code == 200
    body = schema.json()
    assert body["openapi"].startswith("3.")
    for path in ("/api/v1/leads/", "/api/v1/leads/{id}/", "/api/v1/leads/bulk/", "/api/v1/activities/",
                 "/api/v1/leads/{id}/activities/", "/api/v1/forms/", "/api/v1/imports/", "/api/v1/api-keys/"):
        assert path in body["paths"], path
    list_params = {p["name"] for p in body["paths"]["/api/v1/leads/"]["get"]["parameters"]}
    assert {"email", "lifecycle_stage", "owner", "source", "country", "industry", "created_after",
            "created_before", "score_min", "score_max", "grade", "search", "ordering", "cursor"} <= list_params
    docs = APIClient().get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


def test_readyz_reports_each_part_as_json(client):
    response = client.get("/readyz")
    body = response.json()
    assert (body["database"], body["broker"]) == ("ok", "ok")
    assert response.status_code == 200 and body["status"] == "ok"
    # Workers are reported, not required: a web process serves (captures wait in the outbox) without them.
    replies = celery_app.control.ping(timeout=1.0)
    assert body["celery"] == (f"ok ({len(replies)} workers)" if replies else "no workers")


@pytest.mark.worker
def test_readyz_counts_a_worker_that_answers(client):
    name = f"health-{uuid.uuid4().hex[:8]}@%h"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "leadcrm", "worker", "--pool", "solo", "-Q", "default", "-n", name,
         "--without-gossip", "--without-mingle", "-l", "warning"],
        cwd=Path(__file__).resolve().parents[2], env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            response = client.get("/readyz")
            if response.json()["celery"].startswith("ok (") or time.monotonic() > deadline or worker.poll() is not None:
                break
            time.sleep(0.5)
        assert response.status_code == 200, response.json()
        assert response.json()["celery"].startswith("ok (")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
