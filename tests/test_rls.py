"""Row-level security: the database itself keeps tenants apart, even from a query that forgets its org."""

import contextlib
import json
import time
import uuid

import pytest
import redis
from django.conf import settings
from django.db import DatabaseError, ProgrammingError, connection, transaction
from django.utils import timezone

from leadcrm import rls
from leadcrm.models import ApiKey, Membership, Organization
from leads.models import Activity, ActivityType, Lead, Segment
from scoring.models import ScoringRule

pytestmark = pytest.mark.django_db


@pytest.fixture
def leads(org, other_org):
    """Two leads of `org` (each with an activity) and one of `other_org`."""
    mine = [Lead.objects.create(organization=org, email=f"mine{i}@acme.test") for i in range(2)]
    theirs = Lead.objects.create(organization=other_org, email="theirs@rival.test")
    for lead in [*mine, theirs]:
        Activity.objects.create(organization_id=lead.organization_id, lead=lead, type=ActivityType.NOTE,
                                occurred_at=timezone.now())
    Segment.objects.create(organization=org, name="Mine")
    Segment.objects.create(organization=other_org, name="Theirs")
    return mine, theirs


def emails(queryset):
    return sorted(queryset.values_list("email", flat=True))


def test_an_unscoped_queryset_sees_only_the_current_orgs_rows(org, other_org, leads):
    with rls.scope(org):
        assert emails(Lead.objects.all()) == ["mine0@acme.test", "mine1@acme.test"]
        assert Lead.objects.count() == 2
        assert {a.organization_id for a in Activity.objects.all()} == {org.pk}
        assert list(Segment.objects.values_list("name", flat=True)) == ["Mine"]
        assert ScoringRule.objects.exists()
        assert set(ScoringRule.objects.values_list("organization_id", flat=True)) == {org.pk}
        assert list(Organization.objects.values_list("slug", flat=True)) == ["acme"]
        assert set(Membership.objects.values_list("organization_id", flat=True)) == {org.pk}
        # Joins are filtered too: the other org's lead cannot be reached through its activity.
        assert Activity.objects.filter(lead__email="theirs@rival.test").count() == 0
    with rls.scope(other_org):
        assert emails(Lead.objects.all()) == ["theirs@rival.test"]


def test_raw_sql_sees_and_touches_only_the_current_org(org, other_org, leads):
    mine, theirs = leads
    with rls.scope(org), connection.cursor() as cursor:
        cursor.execute("SELECT email FROM leads_lead ORDER BY email")
        assert [row[0] for row in cursor.fetchall()] == ["mine0@acme.test", "mine1@acme.test"]
        cursor.execute("SELECT count(*) FROM leads_activity")
        assert cursor.fetchone()[0] == 2
        cursor.execute("UPDATE leads_lead SET first_name = 'Mallory'")
        assert cursor.rowcount == 2
        cursor.execute("DELETE FROM leads_activity WHERE lead_id = %s", [theirs.pk])
        assert cursor.rowcount == 0
    theirs.refresh_from_db()
    assert theirs.first_name == "" and Activity.objects.filter(lead=theirs).count() == 1


def test_writes_to_another_org_are_refused(org, other_org, leads):
    mine, theirs = leads
    with rls.scope(org):
        assert Lead.objects.filter(pk=theirs.pk).update(first_name="Mallory") == 0
        assert Lead.objects.filter(pk=theirs.pk).delete()[0] == 0
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            Lead.objects.create(organization=other_org, email="planted@rival.test")
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            Lead.objects.filter(pk=mine[0].pk).update(organization=other_org)  # moving a row out is a write too
    assert Lead.objects.filter(pk=theirs.pk, first_name="").exists()
    assert not Lead.objects.filter(email="planted@rival.test").exists()
    assert Lead.objects.get(pk=mine[0].pk).organization_id == org.pk


def test_no_org_means_nothing_is_visible(org, leads):
    with rls.scope(rls.NOBODY):
        assert Lead.objects.count() == 0
        assert not Organization.objects.exists()
        assert not ApiKey.objects.exists()
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            Lead.objects.create(organization=org, email="new@acme.test")


def test_the_app_role_cannot_bypass_the_policies(org, leads):
    role = rls.app_role()
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [role])
        assert cursor.fetchone() == (False, False)
        cursor.execute("SELECT count(*) FROM pg_tables WHERE tableowner = %s", [role])
        assert cursor.fetchone()[0] == 0
    with rls.scope(org), connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == role
        for statement in ("ALTER TABLE leads_lead DISABLE ROW LEVEL SECURITY",
                          "ALTER TABLE leads_lead NO FORCE ROW LEVEL SECURITY",
                          f"DROP POLICY {rls.POLICY} ON leads_lead",
                          "SET row_security = off; SELECT count(*) FROM leads_lead",
                          "TRUNCATE leads_activity"):
            with pytest.raises(DatabaseError), transaction.atomic():
                cursor.execute(statement)
        cursor.execute("SELECT count(*) FROM leads_lead")
        assert cursor.fetchone()[0] == 2


def test_every_table_with_an_organization_has_the_policy():
    """Any new tenant table (any app, any branch) is caught here if migrate did not cover it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
            "EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = %s) "
            "FROM pg_class c JOIN information_schema.columns col ON col.table_name = c.relname "
            "AND col.table_schema = current_schema() AND col.column_name = 'organization_id' "
            "WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace",
            [rls.POLICY],
        )
        rows = cursor.fetchall()
    assert len(rows) >= 30
    assert [name for name, enabled, forced, policy in rows if not (enabled and forced and policy)] == []
    from django.apps import apps

    for model in apps.get_models():
        if any(field.name == "organization" for field in model._meta.concrete_fields):
            assert model._meta.db_table in {row[0] for row in rows}, model


def test_migrate_again_changes_nothing():
    assert rls.apply_policies() == []


def index_conditions(plan: dict) -> list[tuple[str, str]]:
    """(index name, index condition) of every index scan in an EXPLAIN (FORMAT JSON) plan."""
    found = [(plan["Index Name"], plan.get("Index Cond", ""))] if "Index Name" in plan else []
    for child in plan.get("Plans", []):
        found += index_conditions(child)
    return found


def test_search_reads_its_trigram_index_under_the_policy(org, other_org):
    """The policy's own conditions run first; the search's LIKE can still be served by the index only because
    it is leakproof (rls.LEAKPROOF_FUNCTIONS), which migrate marks as the superuser the tests run as."""
    from leads import imports, selectors

    Lead.objects.create(organization=other_org, email="person1234@rival.test", company="Firm 1234")
    with connection.cursor() as cursor:
        assert rls.leaky_functions(cursor) == []
        # enough leads that reading the whole org costs the planner more than the index
        params = {"org": org.pk}
        columns, select = imports._insert_sql(Lead, {
            "id": "gen_random_uuid()", "organization_id": "%(org)s", "email": "'person' || i || '@acme.test'",
            "company": "'Firm ' || i", "created_at": "now()", "updated_at": "now()"}, params)
        cursor.execute(f"INSERT INTO leads_lead ({columns}) SELECT {select} FROM generate_series(1, 20000) i", params)
        # as autovacuum leaves them: statistics taken, the index's list of pending entries merged
        cursor.execute("ANALYZE leads_lead")
        cursor.execute("SELECT gin_clean_pending_list('lead_org_search'::regclass)")
    with rls.scope(org):
        found = selectors.search_leads(Lead.objects.for_org(org), "Person1234@")
        assert sorted(found.values_list("email", flat=True)) == ["person1234@acme.test"]
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
            sql, params = found.query.sql_with_params()
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0][0]["Plan"]
            cursor.execute("RESET enable_seqscan")
    assert any(name == "lead_org_search" and "search_text ~~" in condition
               for name, condition in index_conditions(plan)), index_conditions(plan)


# ----------------------------------------------------------------------------------------------- per transaction


@pytest.mark.django_db(transaction=True)
def test_the_scope_lives_in_each_transaction_and_never_in_the_session(org, other_org, leads):
    mine = ["mine0@acme.test", "mine1@acme.test"]
    with rls.scope(org):
        assert emails(Lead.objects.all()) == mine  # outside atomic(): each statement with its scope, in one go
        with connection.cursor() as cursor:
            cursor.execute("SELECT 0; SELECT count(*) FROM leads_lead")  # several statements in one query
            assert cursor.nextset() and cursor.fetchone()[0] == 2
        if not settings.DATABASE_POOLED:  # a named cursor outside a transaction (refused behind a pooler: below)
            assert sorted(Lead.objects.values_list("email", flat=True).iterator(chunk_size=1)) == mine
        with transaction.atomic():
            assert Lead.objects.count() == 2
            assert sorted(Lead.objects.values_list("email", flat=True).iterator(chunk_size=1)) == mine
            with rls.scope(other_org):  # changed within the transaction, and back
                assert emails(Lead.objects.all()) == ["theirs@rival.test"]
            assert emails(Lead.objects.all()) == mine
    with connection.cursor() as cursor:  # the session is as it logged in: no org, its own role
        cursor.execute("SELECT current_setting(%s, true), current_user = session_user", [rls.SETTING])
        assert cursor.fetchone() == ("", True)
    assert Lead.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_savepoint_rolled_back_to_takes_the_scope_along_and_it_is_sent_again(org, leads):
    with transaction.atomic(), rls.scope(rls.NOBODY):  # as a request starts
        assert Lead.objects.count() == 0
        with contextlib.suppress(RuntimeError), transaction.atomic():
            rls.set_organization(org)  # the org becomes known inside the savepoint, and is set there
            assert Lead.objects.count() == 2
            raise RuntimeError("rolled back to the savepoint")
        assert rls.current() == str(org.pk)
        assert Lead.objects.count() == 2  # the rollback undid the setting: it was sent again


@pytest.mark.django_db(transaction=True)
def test_behind_a_pooler_an_iterator_outside_a_transaction_is_refused(settings, org, leads):
    settings.DATABASE_POOLED = True
    with rls.scope(org), pytest.raises(ProgrammingError, match="iterate inside a transaction"):
        list(Lead.objects.values_list("email", flat=True).iterator(chunk_size=1))


# ----------------------------------------------------------------------------------------------- HTTP


@pytest.fixture
def probe_urls(settings):
    settings.ROOT_URLCONF = "tests.rls_probe"


def test_an_unscoped_view_answers_only_the_requesters_org(probe_urls, browser, api, other_api, leads):
    assert browser.get("/rls-probe/").json()["emails"] == ["mine0@acme.test", "mine1@acme.test"]
    assert api.get("/api/v1/rls-probe/").json()["emails"] == ["mine0@acme.test", "mine1@acme.test"]
    assert other_api.get("/api/v1/rls-probe/").json()["emails"] == ["theirs@rival.test"]


def test_an_unscoped_view_answers_nothing_without_an_org(probe_urls, client, leads):
    assert client.get("/rls-probe/").json()["emails"] == []


def test_a_request_leaves_the_connection_as_it_found_it(probe_urls, browser, leads):
    before = rls.current()
    browser.get("/rls-probe/")
    assert rls.current() == before
    assert Lead.objects.count() == 3  # the test process's own scope: every org


def test_the_org_switcher_scopes_the_database_to_the_new_org(probe_urls, browser, member, other_org, leads):
    from leadcrm import services

    user = Membership.objects.get(organization__slug="acme", role="marketer").user
    services.add_member(organization=other_org, email=user.email, password=None, role="marketer")
    response = browser.post("/org/switch/", {"organization": str(other_org.pk)})
    assert response.status_code == 302
    assert browser.get("/rls-probe/").json()["emails"] == ["theirs@rival.test"]


# ----------------------------------------------------------------------------------------------- Celery


def _wait_for(client, key, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = client.get(key)
        if value is not None:
            return json.loads(value)
        time.sleep(0.1)
    raise AssertionError(f"the worker did not report {key} within {timeout} s")


@pytest.mark.django_db(transaction=True)
def test_a_task_on_a_real_worker_sees_only_its_org(start_worker, org, other_org, leads):
    from tests.rls_probe import report_visible_leads

    start_worker(include=["tests.rls_probe"])
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = {name: f"rls-probe-{uuid.uuid4().hex}" for name in ("mine", "theirs", "none")}
    report_visible_leads.delay(keys["mine"], organization_id=str(org.pk))
    report_visible_leads.delay(keys["theirs"], str(other_org.pk))  # positional works too
    report_visible_leads.delay(keys["none"])
    assert _wait_for(client, keys["mine"]) == ["mine0@acme.test", "mine1@acme.test"]
    assert _wait_for(client, keys["theirs"]) == ["theirs@rival.test"]
    assert _wait_for(client, keys["none"]) == []  # a task that names no org sees nothing


def test_check_warns_when_search_cannot_use_its_index():
    from leadcrm.checks import search_index_usable

    assert search_index_usable(None, databases=["default"]) == []
    with connection.cursor() as cursor:  # undone with the test's transaction
        cursor.execute("ALTER FUNCTION pg_catalog.textlike(text, text) NOT LEAKPROOF")
    assert search_index_usable(None, databases=["default"]) == []  # a superuser: its migrate marks it
    with rls.scope(rls.NOBODY):  # a role that cannot
        [warning] = search_index_usable(None, databases=["default"])
    assert warning.id == "leadcrm.W001" and "scans every lead" in warning.msg


# ----------------------------------------------------------------------------------------------- injected SQL


def app_login(**kwargs):
    """A connection of its own, logged in as web and worker processes are: the app role itself (through the pooler
    with --through-pgbouncer: so no prepared statements)."""
    import psycopg

    db = connection.settings_dict
    return psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, dbname=db["NAME"],
                           user=settings.DATABASE_APP_ROLE, password=settings.DATABASE_APP_PASSWORD or None,
                           autocommit=True, prepare_threshold=None, **kwargs)  # through a pooler too (README)


def visible(conn) -> list[str]:
    return sorted(row[0] for row in conn.execute("SELECT email FROM leads_lead").fetchall())


@pytest.mark.django_db(transaction=True)
def test_a_statement_injected_into_the_app_roles_session_sees_no_other_org(org, other_org, leads):
    import psycopg

    with app_login() as conn:
        assert conn.execute("SELECT current_user, session_user").fetchone() == (rls.app_role(), rls.app_role())
        conn.execute("SELECT set_config(%s, %s, false)", [rls.SETTING, rls.signed(org.pk)])
        assert visible(conn) == ["mine0@acme.test", "mine1@acme.test"]  # the app's own path: its org only

        conn.execute("RESET ROLE")  # the login role is the app role: nothing to go back to
        assert visible(conn) == ["mine0@acme.test", "mine1@acme.test"]
        for role in ("postgres", connection.settings_dict["USER"]):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f'SET ROLE "{role}"')
        for forged in ("*", str(other_org.pk), f"{other_org.pk}:{'0' * 64}",
                       rls.signed(org.pk).replace(str(org.pk), str(other_org.pk)), ""):
            conn.execute("SELECT set_config(%s, %s, false)", [rls.SETTING, forged])
            assert visible(conn) == [], forged
            assert conn.execute("SELECT count(*) FROM leads_activity").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM leadcrm_organization").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the key that signs the setting
            conn.execute(f"SELECT key FROM {rls.KEY_TABLE}")


@pytest.mark.django_db(transaction=True)
def test_the_app_role_cannot_change_the_wall(org, leads):
    import psycopg

    statements = [
        "CREATE FUNCTION public.leak() RETURNS bigint LANGUAGE sql SECURITY DEFINER "
        "AS 'SELECT count(*) FROM leads_lead'",
        f"CREATE OR REPLACE FUNCTION {rls.CURRENT_ORGANIZATION}() RETURNS uuid LANGUAGE sql AS 'SELECT NULL::uuid'",
        f"ALTER POLICY {rls.POLICY} ON leads_lead USING (true)",
        "CREATE POLICY everything ON leads_lead USING (true)",
        f"DROP POLICY {rls.OWNER_POLICY} ON leads_lead",
        "ALTER TABLE leads_lead NO FORCE ROW LEVEL SECURITY",
        f"UPDATE {rls.KEY_TABLE} SET key = 'x'",
        "CREATE TABLE public.mine (id int)",
        "ALTER ROLE CURRENT_USER BYPASSRLS",
        "SET SESSION AUTHORIZATION postgres",
    ]
    with app_login() as conn:
        for statement in statements:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        # Only the owner's policy names a role, and the app role is a member of none.
        assert conn.execute("SELECT count(*) FROM pg_auth_members WHERE member = current_user::regrole"
                            ).fetchone()[0] == 0


def test_the_signed_setting_never_shows_in_pg_stat_activity(org, tmp_path):
    """Sessions of the app role may read each other's last statement: the value travels as a bound parameter, never
    in a statement's text (libpq's trace of what this connection sent: Parse carries text, Bind the values)."""
    from psycopg import pq

    connection.ensure_connection()
    trace = tmp_path / "trace"
    pgconn = connection.connection.pgconn
    with open(trace, "w") as out:
        pgconn.trace(out.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            with rls.scope(org):
                assert Lead.objects.count() == 0
        finally:
            pgconn.untrace()
    sent = [line for line in trace.read_text().splitlines() if line.split("\t")[:1] == ["F"]]
    signature = rls.signed(org.pk).split(":")[1]
    assert any("Parse" in line and "set_config" in line for line in sent), sent
    assert not any(signature in line for line in sent if "Bind" not in line)
    assert any(signature in line for line in sent if "Bind" in line)


@pytest.mark.django_db(transaction=True)
def test_the_definer_functions_find_an_org_and_tell_nothing_else(org, other_org, leads):
    from leads.models import Form
    from nurturing.models import Message

    key, plain = ApiKey.objects.create_key(organization=org, name="found")
    revoked, _ = ApiKey.objects.create_key(organization=other_org, name="revoked")
    ApiKey.objects.filter(pk=revoked.pk).update(revoked=True)
    lead = leads[0][0]
    Form.objects.create(organization=other_org, name="Contact", slug="rival-contact", fields=["email"])
    with app_login() as conn:
        def one(sql, *params):
            return conn.execute(sql, params).fetchall()

        assert one("SELECT leadcrm_api_key_organization(%s)", key.prefix) == [(org.pk,)]
        for prefix in (revoked.prefix, "nosuchpx", "' OR true --", "%", ""):
            assert one("SELECT leadcrm_api_key_organization(%s)", prefix) == [(None,)], prefix
        assert one("SELECT leads_form_organization(%s)", "rival-contact") == [(other_org.pk,)]
        assert one("SELECT leads_form_organization(%s)", "%") == [(None,)]
        assert one("SELECT nurturing_message_organization(%s)", str(uuid.uuid4())) == [(None,)]
        # A lead's id is not a message's: the lookup reads its own table only.
        assert one("SELECT nurturing_message_organization(%s)", str(lead.pk)) == [(None,)]
        assert not Message.objects.filter(pk=lead.pk).exists()
        # A user's memberships: org ids, names and roles of that user alone.
        owner = Membership.objects.get(organization=org, role="admin").user
        rows = one("SELECT organization_id, name, role FROM leadcrm_organizations_of(%s)", owner.pk)
        assert rows == [(org.pk, "Acme", "admin")]
        # Every definer function returns org ids (or what picks the org), none of them a tenant's data, and the app
        # role still sees nothing with them: an org id is not a scope.
        conn.execute("SELECT set_config(%s, %s, false)", [rls.SETTING, str(other_org.pk)])
        assert visible(conn) == []
        functions = conn.execute(
            "SELECT p.oid::regprocedure::text, pg_get_function_result(p.oid) FROM pg_proc p "
            "WHERE p.prosecdef AND p.pronamespace = current_schema()::regnamespace "
            "AND has_function_privilege(current_user, p.oid, 'EXECUTE')").fetchall()
        names = {name.split("(")[0] for name, _ in functions}
        assert {"leadcrm_api_key_organization", "leadcrm_organizations_of", "leads_form_organization",
                "nurturing_message_organization", "webhooks_organizations_with_due",
                "routing_organizations_with_missed_deadlines", rls.CURRENT_ORGANIZATION} <= names
        for name, result in functions:
            # webhooks_retry_backlog() is the one operator aggregate (/metrics): a count over the whole installation
            operator_count = name == "webhooks_retry_backlog()" and result == "bigint"
            assert (result in ("uuid", "SETOF uuid", "void") or name.startswith("leadcrm_organizations_of")
                    or operator_count), name


def test_check_warns_when_the_scope_key_differs_from_the_databases(settings, org, leads):
    from leadcrm.checks import scope_key_matches

    assert scope_key_matches(None, databases=["default"]) == []
    settings.DATABASE_SCOPE_KEY = "not the key migrate stored"
    [warning] = scope_key_matches(None, databases=["default"])
    assert warning.id == "leadcrm.W002"
    with rls.scope(org):  # what such a process would see
        assert Lead.objects.count() == 0
