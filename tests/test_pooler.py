"""Behind PgBouncer in transaction pooling (README "Running in production"): every transaction may run on a server
connection another client used a moment ago, so nothing of a tenant's scope may outlive its transaction. These
tests share ONE server connection between two clients of a real PgBouncer (tests/pgbouncer.py)."""

import psycopg
import pytest
from django.conf import settings
from django.db import DataError, connection, connections, transaction

from leadcrm import rls
from leads.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def leads(org, other_org):
    for n in range(2):
        Lead.objects.create(organization=org, email=f"mine{n}@acme.test")
    Lead.objects.create(organization=other_org, email="theirs@rival.test")


@pytest.fixture
def bouncer(pgbouncer):
    return pgbouncer(pool_size=1)  # one server connection for every client of the app role


@pytest.fixture
def client_a(bouncer):
    """A Django connection (alias `pooled`) logged in as web and worker processes are, through the pooler, with
    the settings production uses behind one."""
    from django.db.backends.postgresql.base import DatabaseWrapper

    db = connection.settings_dict
    options = {key: value for key, value in db["OPTIONS"].items() if key != "options"}
    pooled = DatabaseWrapper(
        {
            **db,
            "HOST": bouncer.host,
            "PORT": str(bouncer.port),
            "USER": settings.DATABASE_APP_ROLE,
            "PASSWORD": settings.DATABASE_APP_PASSWORD,
            "OPTIONS": {**options, "prepare_threshold": None},
        },
        alias="pooled",
    )
    connections["pooled"] = pooled  # a connection of this test's own, not one of the settings' databases
    try:
        yield pooled
    finally:
        pooled.close()
        del connections["pooled"]


def client_b(bouncer) -> psycopg.Connection:
    """Another client of the same pooler and role: a plain session, as any other process's would be."""
    return psycopg.connect(
        host=bouncer.host,
        port=bouncer.port,
        dbname=connection.settings_dict["NAME"],
        user=settings.DATABASE_APP_ROLE,
        password=settings.DATABASE_APP_PASSWORD or None,
        autocommit=True,
        prepare_threshold=None,
    )


def what_b_sees(b) -> tuple:
    return b.execute(
        "SELECT pg_backend_pid(), current_user, current_setting(%s, true), (SELECT count(*) FROM leads_lead)",
        [rls.SETTING],
    ).fetchone()


def test_a_transactions_scope_does_not_reach_the_next_client_of_its_server_connection(leads, org, bouncer, client_a):
    with rls.scope(org, using="pooled"), transaction.atomic(using="pooled"):
        assert Lead.objects.using("pooled").count() == 2
        server = client_a.connection.execute("SELECT pg_backend_pid()").fetchone()[0]
    with client_b(bouncer) as b:
        pid, user, setting, visible = what_b_sees(b)
    assert pid == server  # the very server connection client A's transaction ran on
    assert (user, setting, visible) == (rls.app_role(), "", 0)


def test_an_autocommit_statements_scope_ends_with_it(leads, org, bouncer, client_a):
    with rls.scope(org, using="pooled"):
        assert sorted(Lead.objects.using("pooled").values_list("email", flat=True)) == [
            "mine0@acme.test",
            "mine1@acme.test",
        ]
        assert Lead.objects.using("pooled").count() == 2
    with client_b(bouncer) as b:
        assert what_b_sees(b)[1:] == (rls.app_role(), "", 0)
    with rls.scope(rls.NOBODY, using="pooled"):
        assert Lead.objects.using("pooled").count() == 0  # client A's own next statement, unscoped, too


def test_a_session_setting_would_leak_through_the_pooler(leads, org, bouncer, client_a):
    """The control: set for the session, as this app did before, the scope reaches the next client of the server
    connection. So the two tests above would see a leak if there were one."""
    client_a.ensure_connection()
    client_a.connection.execute("SELECT set_config(%s, %s, false)", [rls.SETTING, rls.signed(org.pk)])
    with client_b(bouncer) as b:
        assert what_b_sees(b)[3] == 2
        b.execute("RESET ALL")


def test_nothing_of_a_failed_scoped_transaction_stays_behind(leads, org, bouncer, client_a):
    with pytest.raises(DataError), rls.scope(org, using="pooled"), transaction.atomic(using="pooled"):
        assert Lead.objects.using("pooled").count() == 2
        with client_a.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")
    with client_b(bouncer) as b:
        assert what_b_sees(b)[1:] == (rls.app_role(), "", 0)


def test_with_through_pgbouncer_this_process_talks_to_the_pooler(request):
    """`make test`'s last pass (--through-pgbouncer): the suite's own connection reaches the server through PgBouncer,
    with the settings production uses behind one."""
    if not request.config.getoption("--through-pgbouncer"):
        pytest.skip("only in the pass through PgBouncer (pytest --through-pgbouncer)")
    import dj_database_url

    server = dj_database_url.parse(settings.DATABASE_DIRECT_URL)
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT inet_server_port()")
        assert cursor.fetchone()[0] == int(server["PORT"] or 5432)
    assert connection.connection.info.port != int(server["PORT"] or 5432)  # the pooler's port, in between
    assert connection.connection.prepare_threshold is None and settings.DATABASE_POOLED


def test_deploy_check_warns_when_pooled_without_a_direct_url(settings):
    from leadcrm.checks import pooled_has_direct_url

    settings.DATABASE_POOLED, settings.DATABASE_DIRECT_URL = True, ""
    [warning] = pooled_has_direct_url(None)
    assert warning.id == "leadcrm.W020" and "LISTEN" in warning.msg
    settings.DATABASE_DIRECT_URL = "postgres://leadcrm_app@db:5432/leadcrm"
    assert pooled_has_direct_url(None) == []
    settings.DATABASE_POOLED, settings.DATABASE_DIRECT_URL = False, ""
    assert pooled_has_direct_url(None) == []
