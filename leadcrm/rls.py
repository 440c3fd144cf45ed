"""PostgreSQL row-level security: the second wall between tenants (DESIGN §3).

Every table with an `organization_id` column (and the organization table itself) has RLS enabled and forced,
with one policy: a row is visible and writable only when its organization is the connection's current one, held
in the `app.organization_id` setting. The setting is a UUID (that org), empty (nothing: the fail-closed state of
a request or task whose org is not known yet) or `*` (every org: the explicit unscoped context).

Web requests and Celery tasks run as the application role (DATABASE_APP_ROLE, NOSUPERUSER NOBYPASSRLS, owns no
table), which cannot switch the policies off. A scope is kept per connection and applied to the session
(`SET ROLE` + `set_config`) when it changes, and again on a new connection:

- OWNER — the login role as it is, every org: migrations, management commands, the test process's fixtures;
- NOBODY — the app role, no org: a request or task until its org is known (so a forgotten org shows nothing);
- an organization id — the app role, that org;
- ALL — the app role, every org: `unscoped()`, for the few lookups that must find the org first (an API key by
  its prefix, a user's memberships, a public form by slug, a tracking token) and the beat sweeps that discover
  due work across orgs. Grep for `rls.unscoped(` to list them all.

The session setting outlives transactions (the request is not one transaction), so the org is set when it
becomes known and put back when the request or task ends.
"""

import re
import uuid
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.backends.base.base import NO_DB_ALIAS

SETTING = "app.organization_id"
POLICY = "tenant_isolation_v1"
OWNER = "owner"
NOBODY = ""
ALL = "*"

# The organization column compared with the current org: every match on it can use the org-leading indexes, and
# the setting is read once per statement (an init plan), not once per row.
_CURRENT = f"current_setting('{SETTING}', true)"
_PREDICATE = f"((SELECT {_CURRENT} = '*') OR {{column}} = (SELECT NULLIF(NULLIF({_CURRENT}, ''), '*')::uuid))"

# A query's own conditions run after the policy's, and so cannot be served by an index, unless every function in
# them is LEAKPROOF. Comparisons, ranges and IN are; LIKE is not, which would leave `?search=` scanning every lead
# of the org instead of reading its trigram index. LIKE fails only on a malformed pattern (an escape at its end), and
# every pattern of ours is the query's own constant, so it tells nothing about the rows it is run on. Only a
# superuser may mark a function; where the migrating role is not one, search works the same, by scanning.
LEAKPROOF_FUNCTIONS = ("pg_catalog.textlike(text, text)",)

_process_default = OWNER
_INERROR = 3  # psycopg.pq.TransactionStatus.INERROR: a failed transaction takes no statement until rolled back


def app_role() -> str:
    role = getattr(settings, "DATABASE_APP_ROLE", "")
    if role and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ImproperlyConfigured("DATABASE_APP_ROLE must be a plain lower-case PostgreSQL role name.")
    return role


def set_process_default(scope: str) -> None:
    """Web and worker processes start each connection fail-closed (NOBODY); other processes keep OWNER."""
    global _process_default
    _process_default = scope
    for connection in connections.all(initialized_only=True):
        _apply(connection)


def _normalise(scope) -> str:
    if scope in (OWNER, NOBODY, ALL):
        return scope
    return str(uuid.UUID(str(getattr(scope, "pk", scope))))  # raises on anything that is not an org id


def _stack(connection) -> list:
    if not hasattr(connection, "rls_stack"):
        connection.rls_stack = []
    return connection.rls_stack


def current(using=DEFAULT_DB_ALIAS) -> str:
    stack = _stack(connections[using])
    return stack[-1] if stack else _process_default


def _statement(scope: str, role: str) -> str:
    if scope == OWNER or not role:
        switch = "RESET ROLE"
    else:
        switch = f'SET ROLE "{role}"'
    value = ALL if scope == OWNER else scope  # a login role that is itself the app role still works as OWNER
    return f"{switch}; SELECT set_config('{SETTING}', '{value}', false)"


def _apply(connection) -> None:
    """Bring the session in line with the wanted scope; only a change costs a round trip."""
    wanted = _stack(connection)[-1] if _stack(connection) else _process_default
    if getattr(connection, "rls_applied", None) == wanted or connection.connection is None:
        return
    raw = connection.connection
    if raw.info.transaction_status == _INERROR:
        connection.rls_applied = None  # applied before the next statement, after the rollback
        return
    # The raw connection: these statements are the wall's bookkeeping, not the view's queries (query-count
    # assertions stay about the view).
    with raw.cursor() as cursor:
        cursor.execute(_statement(wanted, app_role()))
    connection.rls_applied = wanted


def _before_each_statement(execute, sql, params, many, context):
    _apply(context["connection"])
    return execute(sql, params, many, context)


def on_connection_created(sender, connection, **kwargs) -> None:
    """A new session starts as the login role with no org: apply the wanted scope at once, in autocommit, so no
    later rollback can undo it."""
    if connection.vendor != "postgresql":
        return
    connection.rls_applied = None
    if _before_each_statement not in connection.execute_wrappers:
        connection.execute_wrappers.append(_before_each_statement)
    if connection.alias != NO_DB_ALIAS:  # the maintenance connection (creating the test database) reads no table
        _apply(connection)


@contextmanager
def scope(organization, using=DEFAULT_DB_ALIAS):
    """Run the block with the given scope (an org, NOBODY, ALL or OWNER), then restore the previous one."""
    depth = enter(organization, using=using)
    try:
        yield
    finally:
        leave(depth, using=using)


def enter(organization, using=DEFAULT_DB_ALIAS) -> int:
    """scope() for code with separate start and end hooks (Celery's task_prerun/postrun): returns the token that
    leave() takes."""
    stack = _stack(connections[using])
    depth = len(stack)
    stack.append(_normalise(organization))
    _apply(connections[using])
    return depth


def leave(depth: int, using=DEFAULT_DB_ALIAS) -> None:
    del _stack(connections[using])[depth:]
    _apply(connections[using])


def unscoped(using=DEFAULT_DB_ALIAS):
    """Every org's rows, still as the app role. Only for lookups that find the org (or sweeps that find due work
    in every org): keep the block to that lookup."""
    return scope(ALL, using=using)


def organization_of(model, pk, using=DEFAULT_DB_ALIAS):
    """The org of one row, found across orgs: for a task queued with only the row's id."""
    with unscoped(using=using):
        return model._default_manager.filter(pk=pk).values_list("organization_id", flat=True).first()


def set_organization(organization, using=DEFAULT_DB_ALIAS) -> None:
    """The org became known inside a request or task scope: the rest of that scope acts for it."""
    connection = connections[using]
    stack = _stack(connection)
    if not stack:
        raise RuntimeError("set_organization() needs an enclosing rls.scope() (a request or a task)")
    stack[-1] = _normalise(organization)
    _apply(connection)


# ----------------------------------------------------------------------------------------------- schema


def tenant_tables(cursor) -> list[tuple[str, str]]:
    """(table, organization column) for every table the policy covers: each with organization_id, and the
    organization table itself keyed on its id."""
    from .models import Organization

    cursor.execute(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND column_name = 'organization_id' AND table_name IN (SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE') ORDER BY table_name"
    )
    return [(Organization._meta.db_table, "id")] + [(name, "organization_id") for (name,) in cursor.fetchall()]


def _ensure_role(cursor, role: str) -> None:
    cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [role])
    row = cursor.fetchone()
    if row is None:
        try:  # roles are shared by the cluster's databases: a concurrent migrate may create it first
            with transaction.atomic(using=cursor.db.alias):
                cursor.execute(f'CREATE ROLE "{role}" NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE')
        except DatabaseError:
            pass  # checked again just below
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [role])
        row = cursor.fetchone()
        if row is None:
            raise ImproperlyConfigured(f"The database role {role} is missing and could not be created.")
    if row[0] or row[1]:
        raise ImproperlyConfigured(f"The database role {role} must be NOSUPERUSER NOBYPASSRLS.")
    cursor.execute("SELECT pg_has_role(current_user, %s, 'MEMBER'), current_user = %s", [role, role])
    member, same = cursor.fetchone()
    if not member and not same:
        cursor.execute(f'GRANT "{role}" TO CURRENT_USER')


def apply_policies(using=DEFAULT_DB_ALIAS, **_) -> list[str]:
    """Idempotent: enable + force RLS and create the policy on every tenant table that lacks them, and grant the
    app role its DML. Returns the tables it changed."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    role = app_role()
    changed = []
    with scope(OWNER, using=using), transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity, "
            "EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = %s), "
            "ARRAY(SELECT polname FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname <> %s) "
            "FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'",
            [POLICY, POLICY],
        )
        state = {name: (forced, has_policy, others) for name, forced, has_policy, others in cursor.fetchall()}
        for table, column in tenant_tables(cursor):
            forced, has_policy, others = state.get(table, (False, False, []))
            quoted = connection.ops.quote_name(table)
            if not forced:
                cursor.execute(f"ALTER TABLE {quoted} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
            for old in others:
                if old.startswith("tenant_isolation"):  # an earlier version of this policy
                    cursor.execute(f"DROP POLICY {connection.ops.quote_name(old)} ON {quoted}")
            if not has_policy:
                predicate = _PREDICATE.format(column=connection.ops.quote_name(column))
                cursor.execute(f"CREATE POLICY {POLICY} ON {quoted} USING {predicate} WITH CHECK {predicate}")
            if not (forced and has_policy):
                changed.append(table)
        _mark_leakproof(cursor)
        if role:
            _ensure_role(cursor, role)
            cursor.execute(f'GRANT USAGE ON SCHEMA {connection.ops.quote_name(_schema(cursor))} TO "{role}"')
            cursor.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA '
                           f'{connection.ops.quote_name(_schema(cursor))} TO "{role}"')
            cursor.execute(f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA '
                           f'{connection.ops.quote_name(_schema(cursor))} TO "{role}"')
    return changed


def leaky_functions(cursor) -> list[str]:
    """The LEAKPROOF_FUNCTIONS this database does not have marked leakproof."""
    cursor.execute("SELECT f FROM unnest(%s::text[]) f WHERE NOT (SELECT proleakproof FROM pg_proc "
                   "WHERE oid = f::regprocedure)", [list(LEAKPROOF_FUNCTIONS)])
    return [name for (name,) in cursor.fetchall()]


def _mark_leakproof(cursor) -> None:
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if cursor.fetchone()[0]:
        for function in leaky_functions(cursor):
            cursor.execute(f"ALTER FUNCTION {function} LEAKPROOF")


def _schema(cursor) -> str:
    cursor.execute("SELECT current_schema()")
    return cursor.fetchone()[0]
