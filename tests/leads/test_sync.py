"""Incremental sync (leadcrm/sync.py): the change feed of leads, deals and accounts, and the deleted-leads feed.

An integration keeps a copy: it pages `?ordering=updated_at`, stores the `sync_token`, polls with it, and applies
`GET /api/v1/leads/deleted/` the same way. These tests keep such a copy (Mirror) while other threads write, and
check that at the end it equals the table: nothing lost, nothing stale, each change delivered once.
"""

import threading
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from leadcrm import services as core_services
from leadcrm.models import Role
from leads import services
from leads.models import Account, Deal, Lead, LeadTombstone, LifecycleStage
from scoring import services as scoring

PAGE = 500


def path_of(url):
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def key_client(org, role=Role.ADMIN, created_by=None):
    _, plain = core_services.create_api_key(organization=org, name=f"sync {role}", role=role, created_by=created_by)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    return client


class Mirror:
    """An integration's copy of an org's leads, kept by the two feeds and nothing else."""

    def __init__(self, api, page_size=50, path="/api/v1/leads/", query="ordering=updated_at"):
        self.api, self.page_size, self.path, self.query = api, page_size, path, query
        self.rows, self.versions, self.removed = {}, [], []
        self.token = self.deleted_token = None
        self.pages = 0

    def _walk(self, url, apply):
        token = None
        while url:
            response = self.api.get(url)
            assert response.status_code == 200, response.content[:300]
            body = response.json()
            self.pages += 1
            for row in body["results"]:
                apply(row)
            token = body["sync_token"]
            assert token, "every answer of the feed carries a sync_token"
            url = body["next"] and path_of(body["next"])
        return token

    def poll(self) -> int:
        received = len(self.versions)

        def keep(row):
            self.versions.append((row["id"], row["updated_at"]))
            self.rows[row["id"]] = row

        url = f"{self.path}?{self.query}&page_size={self.page_size}"
        self.token = self._walk(url + (f"&sync_token={self.token}" if self.token else ""), keep)
        if self.path == "/api/v1/leads/":
            def drop(row):
                self.removed.append(row)
                self.rows.pop(row["id"], None)

            url = f"/api/v1/leads/deleted/?page_size={self.page_size}"
            self.deleted_token = self._walk(url + (f"&sync_token={self.deleted_token}" if self.deleted_token
                                                   else ""), drop)
        return len(self.versions) - received

    def values(self, field="first_name"):
        return {pk: row[field] for pk, row in self.rows.items()}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def table(org, field="first_name"):
    return {str(pk): value for pk, value in Lead.objects.filter(organization=org).values_list("pk", field)}


# ----------------------------------------------------------------------------------------------- paging


@pytest.mark.django_db
def test_the_feed_reaches_every_lead_once_in_order_when_thousands_share_one_updated_at(api, org):
    instant = timezone.now() - timedelta(days=2)
    Lead.objects.bulk_create([Lead(organization=org, email=f"tied-{n}@example.com") for n in range(2_300)])
    Lead.objects.filter(organization=org).update(updated_at=instant)
    later = Lead.objects.bulk_create([Lead(organization=org, email=f"later-{n}@example.com") for n in range(3)])
    Lead.objects.filter(pk__in=[lead.pk for lead in later]).update(updated_at=instant + timedelta(hours=1))

    mirror = Mirror(api, page_size=PAGE)
    mirror.poll()
    ids = [pk for pk, _ in mirror.versions]
    assert len(ids) == len(set(ids)) == 2_303
    assert mirror.pages == 5 + 1  # five pages of leads, one (empty) of the deleted feed
    keys = [(at(row["updated_at"]), row["id"]) for row in (mirror.rows[pk] for pk in ids)]
    assert keys == sorted(keys), "in (updated_at, id) order"
    assert ids[-3:] == sorted(str(lead.pk) for lead in later)

    # `updated_after` starts later; `previous` walks back over the same rows.
    response = api.get(f"/api/v1/leads/?ordering=updated_at&updated_after={instant.isoformat()}".replace("+", "%2B"))
    assert sorted(row["id"] for row in response.json()["results"]) == sorted(str(lead.pk) for lead in later)
    body = api.get(f"/api/v1/leads/?ordering=updated_at&page_size={PAGE}").json()
    second = api.get(path_of(body["next"])).json()
    back = api.get(path_of(second["previous"])).json()
    assert [row["id"] for row in back["results"]] == [row["id"] for row in body["results"]]


@pytest.mark.django_db
def test_a_feed_page_costs_the_same_queries_whatever_its_size(api, org):
    Lead.objects.bulk_create([Lead(organization=org, email=f"q{n}@example.com") for n in range(120)])

    def queries(size):
        with CaptureQueriesContext(connection) as captured:
            response = api.get(f"/api/v1/leads/?ordering=updated_at&page_size={size}")
        assert len(response.json()["results"]) == size
        return len(captured)

    queries(1)  # the key's first use of the day is stamped once
    assert queries(5) == queries(100)


@pytest.mark.django_db
def test_an_integration_copies_the_feed_in_pages_of_up_to_2000_other_lists_stay_at_500(api, org):
    Lead.objects.bulk_create([Lead(organization=org, email=f"big{n}@example.com") for n in range(2_100)])
    assert len(api.get("/api/v1/leads/?ordering=updated_at&page_size=5000").json()["results"]) == 2_000
    assert len(api.get("/api/v1/leads/?ordering=-created_at&page_size=5000").json()["results"]) == PAGE

    mirror = Mirror(api, page_size=2_000)
    mirror.poll()
    assert len(mirror.rows) == len(mirror.versions) == 2_100
    assert mirror.pages == 2 + 1  # two pages of leads, one of the deleted feed

    # A browser in its own time zone is answered through the serializer, row by row: it keeps the list's own cap.
    browser = APIClient()
    browser.force_login(org.memberships.get(role=Role.ADMIN).user)
    browser.cookies["tz"] = "Europe/Berlin"
    body = browser.get("/api/v1/leads/?ordering=updated_at&page_size=5000", HTTP_ACCEPT="application/json").json()
    assert len(body["results"]) == PAGE and not body["results"][0]["created_at"].endswith("Z")


@pytest.mark.django_db
def test_a_page_ends_early_when_its_leads_json_passes_4_mb_and_the_walk_still_reaches_each_lead_once(api, org):
    bulky = {"notes": "x" * 200_000}  # about 200 kB of JSON a lead: 4 MB hold about 20
    Lead.objects.bulk_create([Lead(organization=org, email=f"bulky{n}@example.com", custom_fields=bulky)
                              for n in range(50)])
    url = f"/api/v1/leads/?ordering=updated_at&page_size={PAGE}"
    pages = []
    while url:
        response = api.get(url)
        assert len(response.content) < 5_000_000, "at most 4 MB of leads and one lead more"
        body = response.json()
        pages.append([row["id"] for row in body["results"]])
        url = body["next"] and path_of(body["next"])
    assert len(pages) == 3 and all(15 <= len(page) <= 21 for page in pages[:2])
    ids = [pk for page in pages for pk in page]
    assert len(ids) == len(set(ids)) == 50

    # And back with `previous`: the same leads, the same short pages.
    second = api.get(f"/api/v1/leads/?ordering=updated_at&page_size={PAGE}").json()["next"]
    back = api.get(path_of(api.get(path_of(second)).json()["previous"])).json()["results"]
    assert [row["id"] for row in back] == pages[0]


@pytest.mark.django_db
@pytest.mark.parametrize("token", [
    "nonsense",
    "eyJsbyI6LTEsImhpIjpudWxsfQ",  # {"lo": -1, "hi": null}
    "eyJsbyI6MCwiaGkiOm51bGwsInAiOlsieCIsInkiXX0",  # {"lo": 0, "hi": null, "p": ["x", "y"]}
])
def test_a_broken_sync_token_is_404_not_500(api, org, token):
    response = api.get(f"/api/v1/leads/?ordering=updated_at&sync_token={token}")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


@pytest.mark.django_db
def test_other_orderings_are_plain_lists_without_a_sync_token(api, org):
    services.capture_lead(organization_id=org.pk, data={"email": "plain@example.com"})
    body = api.get("/api/v1/leads/?ordering=-updated_at").json()
    assert "sync_token" not in body and len(body["results"]) == 1


# ----------------------------------------------------------------------------------------------- late commits


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_late_with_an_earlier_updated_at_is_not_skipped(org):
    api = key_client(org)
    a = services.capture_lead(organization_id=org.pk, data={"email": "a@example.com"}).lead
    b = services.capture_lead(organization_id=org.pk, data={"email": "b@example.com"}).lead
    mirror = Mirror(api)
    mirror.poll()
    assert set(mirror.rows) == {str(a.pk), str(b.pk)}

    stamped, release = threading.Event(), threading.Event()

    def slow_writer():
        try:
            with transaction.atomic():
                services.update_lead(lead=Lead.objects.get(pk=a.pk), data={"first_name": "Late"})
                stamped.set()
                release.wait(30)
        finally:
            connections.close_all()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        assert stamped.wait(30)
        services.update_lead(lead=Lead.objects.get(pk=b.pk), data={"first_name": "Early"})  # commits first

        # A poller that remembers the newest updated_at it saw has the hole this feed closes:
        naive = api.get("/api/v1/leads/?ordering=-updated_at").json()["results"]
        seen = max(row["updated_at"] for row in naive)
        assert naive[0]["first_name"] == "Early" and naive[0]["updated_at"] == seen

        assert mirror.poll() == 0, "B waits while A, which began writing first, may still commit"
    finally:
        release.set()
        writer.join()

    late = Lead.objects.get(pk=a.pk)
    assert late.updated_at < at(seen), "A's change is older than what was seen"
    naive_later = api.get("/api/v1/leads/", {"updated_after": seen, "ordering": "updated_at"}).json()["results"]
    assert str(a.pk) not in {row["id"] for row in naive_later}, "polling by the last updated_at skips A for ever"

    assert mirror.poll() == 2
    assert mirror.values() == {str(a.pk): "Late", str(b.pk): "Early"}
    assert mirror.poll() == 0


OPERATION = st.tuples(st.sampled_from(["create", "update", "update", "update", "delete"]),
                      st.integers(min_value=0, max_value=7),  # which of the leads
                      st.integers(min_value=0, max_value=25))  # ms the transaction stays open after writing
SCRIPTS = st.lists(st.lists(OPERATION, min_size=1, max_size=6), min_size=2, max_size=4)


@pytest.mark.django_db(transaction=True)
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scripts=SCRIPTS)
def test_a_copy_kept_by_polling_while_others_write_ends_equal_to_the_table(scripts):
    """Writers commit in every order, some holding their transaction open after stamping updated_at; a poller
    polls all along. At the end its copy equals the table, and no version of a lead came twice."""
    org = core_services.create_organization(slug=f"sync-{time.monotonic_ns()}", name="Sync",
                                            owner_email=f"o{time.monotonic_ns()}@sync.test", owner_password=None)
    ids = [str(services.capture_lead(organization_id=org.pk, data={"email": f"l{n}@example.com"}).lead.pk)
           for n in range(8)]
    api = key_client(org)
    mirror = Mirror(api, page_size=3)
    mirror.poll()
    counter = iter(range(10_000))
    errors = []

    def write(script, number):
        try:
            for kind, index, hold in script:
                with transaction.atomic():
                    if kind == "create":
                        lead = services.capture_lead(organization_id=org.pk,
                                                     data={"email": f"w{number}-{next(counter)}@example.com"}).lead
                        ids.append(str(lead.pk))
                    else:
                        lead = Lead.objects.filter(pk=ids[index % len(ids)]).select_for_update().first()
                        if lead is not None and kind == "update":
                            services.update_lead(lead=lead, data={"first_name": f"v{next(counter)}"})
                        elif lead is not None:
                            services.delete_lead(lead=lead)
                    time.sleep(hold / 1000)  # commit late: others stamp later times and commit first
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    writers = [threading.Thread(target=write, args=(script, number)) for number, script in enumerate(scripts)]
    for writer in writers:
        writer.start()
    while any(writer.is_alive() for writer in writers):
        mirror.poll()
    for writer in writers:
        writer.join()
    assert not errors
    mirror.poll()
    mirror.poll()

    assert mirror.values() == table(org)
    assert {pk: row["updated_at"] for pk, row in mirror.rows.items()} == {
        pk: api.get(f"/api/v1/leads/{pk}/").json()["updated_at"] for pk in table(org)}
    assert len(mirror.versions) == len(set(mirror.versions)), "a version of a lead came twice"


# ----------------------------------------------------------------------------------------------- every change counts


def _stage(org, lead):
    services.move_stage(lead=lead, to_stage=LifecycleStage.MQL)


def _tags(org, lead):
    services.tag_leads(organization_id=org.pk, leads=Lead.objects.filter(pk=lead.pk), add=["vip"])


def _score(org, lead):
    scoring.save_rule(organization_id=org.pk, name="Firms", kind="fit", points=7,
                      condition={"field": "company", "op": "eq", "value": "Firm"})
    scoring.score_lead(organization_id=org.pk, lead_id=lead.pk)


def _owner(org, lead):
    owner = org.memberships.get(role=Role.ADMIN).user
    services.assign_owner(lead=lead, owner_id=owner.pk, details={"reason": "test"})


def _activity(org, lead):
    services.record_activity(organization_id=org.pk, lead=lead, type="page_view", properties={"url": "/x"})


def _capture_again(org, lead):
    services.capture_lead(organization_id=org.pk, data={"email": lead.email, "job_title": "CTO"})


def _merge(org, lead):
    other = services.capture_lead(organization_id=org.pk, data={"email": "twin@example.com"}).lead
    services.merge_leads(organization_id=org.pk, keep_id=lead.pk, merge_ids=[other.pk])


def _import(org, lead):
    from tests.leads.test_imports import csv_bytes, import_now

    import_now(key_client(org), csv_bytes([["email", "city"], [lead.email, "Lyon"]]))


def _raw_sql(org, lead):
    with connection.cursor() as cursor:  # a path nobody wrote with sync in mind: the trigger still stamps it
        cursor.execute("UPDATE leads_lead SET city = 'Oslo' WHERE id = %s", [lead.pk])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", [_stage, _tags, _score, _owner, _activity, _capture_again, _merge, _import,
                                    _raw_sql], ids=lambda change: change.__name__.strip("_"))
def test_every_way_of_changing_a_lead_brings_it_back_in_the_feed_with_a_later_updated_at(org, change):
    lead = services.capture_lead(organization_id=org.pk, data={"email": "one@example.com", "company": "Firm"}).lead
    mirror = Mirror(key_client(org))
    mirror.poll()
    before = mirror.rows[str(lead.pk)]["updated_at"]
    time.sleep(0.002)

    change(org, Lead.objects.get(pk=lead.pk))

    assert mirror.poll() >= 1
    after = mirror.rows[str(lead.pk)]["updated_at"]
    assert at(after) > at(before)
    assert after == mirror.api.get(f"/api/v1/leads/{lead.pk}/").json()["updated_at"]
    assert set(mirror.rows) == set(table(org))  # and the copy is whole (a merged-away lead is gone from it)


# ----------------------------------------------------------------------------------------------- tombstones


@pytest.mark.django_db
def test_deleted_merged_and_erased_leads_leave_tombstones_in_the_deleted_feed(api, org):
    gone = services.capture_lead(organization_id=org.pk, data={"email": "gone@example.com"}).lead
    keep = services.capture_lead(organization_id=org.pk, data={"email": "keep@example.com"}).lead
    twin = services.capture_lead(organization_id=org.pk, data={"email": "twin@example.com"}).lead
    forgotten = services.capture_lead(organization_id=org.pk, data={"email": "forget@example.com"}).lead
    start = timezone.now() - timedelta(seconds=1)

    assert api.delete(f"/api/v1/leads/{gone.pk}/").status_code == 204
    assert api.post("/api/v1/leads/merge/", {"keep": str(keep.pk), "merge": [str(twin.pk)]},
                    format="json").status_code == 200
    assert api.post(f"/api/v1/leads/{forgotten.pk}/erase/").status_code == 200

    body = api.get("/api/v1/leads/deleted/", {"since": start.isoformat()}).json()
    rows = {row["id"]: row for row in body["results"]}
    assert set(rows) == {str(gone.pk), str(twin.pk), str(forgotten.pk)}
    assert (rows[str(gone.pk)]["reason"], rows[str(gone.pk)]["merged_into"]) == ("deleted", None)
    assert (rows[str(twin.pk)]["reason"], rows[str(twin.pk)]["merged_into"]) == ("merged", str(keep.pk))
    assert rows[str(forgotten.pk)]["reason"] == "erased"
    assert [row["deleted_at"] for row in body["results"]] == sorted(row["deleted_at"] for row in body["results"])
    assert body["sync_token"] and body["next"] is None
    # `since` after them: none; the erased lead stays in the lead list, anonymous.
    later = api.get("/api/v1/leads/deleted/", {"since": (timezone.now() + timedelta(seconds=1)).isoformat()})
    assert later.json()["results"] == []
    assert api.get(f"/api/v1/leads/{forgotten.pk}/").json()["email"] == ""


@pytest.mark.django_db
def test_a_refused_delete_or_merge_leaves_no_tombstone(api, org):
    keep = services.capture_lead(organization_id=org.pk, data={"email": "keep@example.com"}).lead
    erased = services.capture_lead(organization_id=org.pk, data={"email": "erased@example.com"}).lead
    services.erase_lead(lead=erased)
    LeadTombstone.objects.all().delete()
    response = api.post("/api/v1/leads/merge/", {"keep": str(keep.pk), "merge": [str(erased.pk)]}, format="json")
    assert response.status_code == 400
    assert not LeadTombstone.objects.exists()


@pytest.mark.django_db
def test_a_rep_sees_the_tombstones_of_their_own_leads_only(org, member):
    rep = member(Role.REP)
    mine = services.capture_lead(organization_id=org.pk, data={"email": "mine@example.com", "owner": rep}).lead
    theirs = services.capture_lead(organization_id=org.pk, data={"email": "theirs@example.com"}).lead
    mine_id = str(mine.pk)
    services.delete_lead(lead=mine)
    services.delete_lead(lead=theirs)
    client = APIClient()
    client.force_login(rep)
    assert [row["id"] for row in client.get("/api/v1/leads/deleted/").json()["results"]] == [mine_id]


@pytest.mark.django_db
def test_tombstones_older_than_the_retention_are_purged(org, other_org, settings):
    settings.SYNC_TOMBSTONE_RETENTION_DAYS = 90
    old, recent, elsewhere = (services.capture_lead(organization_id=o.pk, data={"email": f"{n}@example.com"}).lead
                              for n, o in (("old", org), ("recent", org), ("elsewhere", other_org)))
    ids = {"old": old.pk, "recent": recent.pk, "elsewhere": elsewhere.pk}
    for lead in (old, recent, elsewhere):
        services.delete_lead(lead=lead)
    LeadTombstone.objects.filter(lead_id__in=[ids["old"], ids["elsewhere"]]).update(
        deleted_at=timezone.now() - timedelta(days=91))

    assert services.purge_tombstones() == 2
    assert list(LeadTombstone.objects.values_list("lead_id", flat=True)) == [ids["recent"]]


# ----------------------------------------------------------------------------------------------- deals and accounts


@pytest.mark.django_db(transaction=True)
def test_deals_and_accounts_have_the_same_feed(org):
    api = key_client(org)
    account = Account.objects.create(organization=org, name="Firm")
    deal = Deal.objects.create(organization=org, account=account, name="Big", amount=10)
    deals, accounts = (Mirror(api, path=path) for path in ("/api/v1/deals/", "/api/v1/accounts/"))
    deals.poll(), accounts.poll()
    assert set(deals.rows) == {str(deal.pk)} and set(accounts.rows) == {str(account.pk)}

    assert api.patch(f"/api/v1/deals/{deal.pk}/", {"status": "lost", "lost_reason": "Price"},
                     format="json").status_code == 200
    assert api.patch(f"/api/v1/accounts/{account.pk}/", {"website": "firm.example"}, format="json").status_code == 200
    assert deals.poll() == 1 and deals.rows[str(deal.pk)]["status"] == "lost"
    assert accounts.poll() == 1 and accounts.rows[str(account.pk)]["website"] == "firm.example"
    assert deals.poll() == accounts.poll() == 0


@pytest.mark.django_db
def test_deleting_a_lead_in_django_admin_leaves_its_tombstone(client, org):
    lead = services.capture_lead(organization_id=org.pk, data={"email": "admin-gone@example.com"}).lead
    client.force_login(org.memberships.get(role=Role.ADMIN).user)
    response = client.post(f"/admin/leads/lead/{lead.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Lead.objects.filter(pk=lead.pk).exists()
    assert LeadTombstone.objects.get(lead_id=lead.pk).reason == "deleted"


@pytest.mark.django_db
def test_deleting_leads_with_the_admins_bulk_action_leaves_their_tombstones(client, org):
    leads = [services.capture_lead(organization_id=org.pk, data={"email": f"bulk-gone-{n}@example.com"}).lead
             for n in range(2)]
    ids = {lead.pk for lead in leads}
    client.force_login(org.memberships.get(role=Role.ADMIN).user)
    response = client.post("/admin/leads/lead/", {"action": "delete_selected", "post": "yes",
                                                  "_selected_action": [str(pk) for pk in ids]})
    assert response.status_code == 302 and not Lead.objects.filter(pk__in=ids).exists()
    assert set(LeadTombstone.objects.values_list("lead_id", flat=True)) == ids


@pytest.mark.django_db
@pytest.mark.parametrize("query", [
    "/api/v1/leads/?ordering=updated_at&updated_after=0303-02-09T05:10:32.2-17:08",
    "/api/v1/leads/?created_after=2026-02-09T05:10:32-23:59",
    "/api/v1/deals/?updated_after=2026-02-09T05:10:32%2B16:00",
    "/api/v1/leads/deleted/?since=0001-01-01T00:00:00%2B17:08",
    "/api/v1/accounts/?updated_after=9999-12-31T23:59:59-01:00",
])
def test_an_instant_with_an_offset_postgresql_does_not_take_is_compared_in_utc_or_refused(api, query):
    """Python reads UTC offsets up to 23:59, PostgreSQL takes them up to 15:59: such a filter is a query in UTC
    (or, past the year 9999 or before the year 1 once in UTC, a 400), never a 500."""
    response = api.get(query)
    assert response.status_code in (200, 400), response.content[:300]
    if response.status_code == 400:
        assert response.json()["code"] == "invalid"
