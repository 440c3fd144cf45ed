"""Reports, CSV exports, list counts and the segment preview read from a REAL streaming standby of the test cluster
(tests/standby.py): a row written on the primary shows once the standby has replayed it; with replay paused the
replica's answer is the older one until it is more than REPLICA_MAX_LAG_SECONDS behind, then the primary answers; a
browser's own write is seen at once; row-level security holds on the replica's connection too.

Skipped on a developer machine without the PostgreSQL server binaries; in CI (CI=true) their absence fails."""

import csv
import io
import os
import time

import pytest
from django.db import connections

from leadcrm import replica, rls
from leadcrm.models import Role
from leads.models import Lead

from ..standby import Standby, binaries
from .conftest import RANGE, T0, make_lead

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", replica.ALIAS])


@pytest.fixture(scope="module")
def standby(django_db_setup, django_db_blocker):
    """One standby for the module, taken after the test database exists (the base backup copies it), and the
    `replica` alias on it, as DATABASE_REPLICA_URL makes it (a test mirror: no test database of its own)."""
    if binaries() is None:
        reason = "no pg_basebackup/postgres binaries of the server"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the replica tests cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    with django_db_blocker.unblock():
        primary = connections["default"].settings_dict
        server = Standby(host=primary["HOST"] or "127.0.0.1", port=primary["PORT"] or 5432, user=primary["USER"])
        server.start()
    print(f"\nbase backup of the cluster: {server.backup_seconds:.1f} s")
    connections.settings[replica.ALIAS] = {
        **primary,
        "HOST": "127.0.0.1",
        "PORT": server.port,
        "TEST": {**primary["TEST"], "MIRROR": "default"},
    }
    try:
        yield server
    finally:
        with django_db_blocker.unblock():
            connections[replica.ALIAS].close()
        del connections[replica.ALIAS]
        del connections.settings[replica.ALIAS]
        server.stop()


@pytest.fixture
def on_replica(standby, settings):
    settings.REPLICA_MAX_LAG_SECONDS = 30
    settings.REPLICA_LAG_CHECK_SECONDS = 0  # every read measures afresh: the tests change the lag at will
    replica.forget_lag()
    try:
        yield standby
    finally:
        standby.resume_replay()
        replica.forget_lag()


def add_lead(org, name, **fields):
    return make_lead(org, T0, first_name=name, email=f"{name.lower()}@{org.slug}.test", **fields)


def funnel_leads(client) -> int:
    response = client.get("/api/v1/reports/funnel/", RANGE)
    assert response.status_code == 200, response.content[:300]
    return response.json()["rows"][0]["leads"]


def test_the_reports_read_the_replica_and_fall_back_when_it_lags(on_replica, api, org, data, noise, settings):
    on_replica.wait(on_replica.caught_up)
    # The funnel of tests/reports/test_reports.py, answered by the standby.
    response = api.get("/api/v1/reports/funnel/", RANGE)
    [row] = response.json()["rows"]
    assert {k: row[k] for k in ("leads", "mql", "sal", "sql", "opportunity", "customer")} == {
        "leads": 5,
        "mql": 4,
        "sal": 3,
        "sql": 2,
        "opportunity": 1,
        "customer": 1,
    }

    # A lead written on the primary while the standby does not replay: the report (from the replica) lacks it...
    on_replica.pause_replay()
    add_lead(org, "Late")
    on_replica.wait(on_replica.received)
    assert Lead.objects.filter(organization=org).count() == 7  # 6 of them in the report's range
    assert funnel_leads(api) == 5

    # ...until the replica is more than REPLICA_MAX_LAG_SECONDS behind: then the primary answers.
    settings.REPLICA_MAX_LAG_SECONDS = 0.5
    time.sleep(0.6)
    assert funnel_leads(api) == 6

    # Replayed again: the replica answers, with the lead.
    settings.REPLICA_MAX_LAG_SECONDS = 30
    on_replica.resume_replay()
    on_replica.wait(on_replica.caught_up)
    assert funnel_leads(api) == 6


def test_an_idle_primary_does_not_look_like_lag(on_replica, org, settings):
    add_lead(org, "Only")
    on_replica.wait(on_replica.caught_up)
    settings.REPLICA_MAX_LAG_SECONDS = 1.5
    # Our last transaction is now older than the bound, but nothing of ours waits to be replayed: the replica is not
    # behind (lag 0 on an idle cluster; on one other databases write to, the short delay of replaying their WAL).
    time.sleep(2.0)
    assert replica.choose() == replica.ALIAS


def test_a_browsers_own_write_is_seen_at_once(on_replica, client, member, org, settings):
    settings.REPLICA_READ_YOUR_WRITES_SECONDS = 2
    add_lead(org, "Known")
    on_replica.wait(on_replica.caught_up)
    client.force_login(member(Role.MARKETER))
    on_replica.pause_replay()

    # The browser creates a static list of one lead: the page it is sent to after saving counts that lead.
    response = client.post("/segments/lists/new/", {"name": "Hand-picked", "emails": "known@acme.test"}, follow=True)
    assert response.status_code == 200
    assert "<strong>1</strong> lead</p>" in response.content.decode()
    detail = response.redirect_chain[-1][0]

    # Past the window, the page reads the replica again, which has not replayed the list yet.
    time.sleep(2.1)
    client.cookies.pop(replica.COOKIE, None)  # as the browser drops it at max-age
    assert "<strong>0</strong> leads</p>" in client.get(detail).content.decode()


def test_csv_export_and_segment_preview_read_the_replica(on_replica, api, client, member, org):
    add_lead(org, "Early", job_title="Director")
    on_replica.wait(on_replica.caught_up)
    on_replica.pause_replay()
    add_lead(org, "Late", job_title="Director")
    on_replica.wait(on_replica.received)

    preview = api.post(
        "/api/v1/segments/preview/",
        {"definition": {"all": [{"field": "job_title", "op": "contains", "value": ["director"]}]}},
        format="json",
    )
    assert preview.status_code == 200 and preview.json()["count"] == 1  # the POST wrote nothing: the replica

    client.force_login(member(Role.MARKETER))
    response = client.get("/leads/export.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert [row["first_name"] for row in rows] == ["Early"]

    on_replica.resume_replay()
    on_replica.wait(on_replica.caught_up)
    response = client.get("/leads/export.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert sorted(row["first_name"] for row in rows) == ["Early", "Late"]


def test_row_level_security_holds_on_the_replica(on_replica, org, other_org):
    add_lead(org, "Ours")
    add_lead(other_org, "Theirs")
    on_replica.wait(on_replica.caught_up)
    with rls.scope(org), replica.reading() as alias:
        assert alias == replica.ALIAS
        with replica.connection().cursor() as cursor:
            cursor.execute("SELECT first_name FROM leads_lead")  # no org condition: the policy alone filters
            assert [name for (name,) in cursor.fetchall()] == ["Ours"]
    with rls.scope(rls.NOBODY), replica.reading():
        with replica.connection().cursor() as cursor:
            cursor.execute("SELECT count(*) FROM leads_lead")
            assert cursor.fetchone()[0] == 0


def test_an_unreachable_replica_leaves_reads_on_the_primary(on_replica, api, org):
    from tests.faults.conftest import free_port

    replica_settings = connections[replica.ALIAS].settings_dict
    connections[replica.ALIAS].close()
    replica_settings["PORT"] = free_port()  # nobody answers there
    try:
        add_lead(org, "Solo")
        assert funnel_leads(api) == 1
        assert replica.choose() == "default"
    finally:
        connections[replica.ALIAS].close()
        replica_settings["PORT"] = on_replica.port
