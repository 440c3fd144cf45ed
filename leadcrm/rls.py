"""PostgreSQL row-level security: the second wall between tenants (DESIGN §3).

Every table with an `organization_id` column (and the organization table itself) has RLS enabled and forced, with
two policies:

- `tenant_isolation_v2`, for every role: a row is visible and writable only when its organization is the one named
  by the connection's `app.organization_id` setting. The setting is `<org id>:<signature>`, signed with a key held
  in a table the app role cannot read (`leadcrm_scope_key`, written by migrate from DATABASE_SCOPE_KEY or
  SECRET_KEY) and checked by `leadcrm_current_organization()`. Anything else (empty, `*`, an org id alone, a forged
  signature) is no org at all. So a statement injected into the app role's session can set the setting, but not to
  another org: it does not know the key.
- `owner_access_v1`, for the table's owner only: every row (migrations, management commands, the test process's
  fixtures, and the SECURITY DEFINER functions below). A superuser owner bypasses RLS anyway.

Web and worker processes log in as the app role itself (DATABASE_URL; NOSUPERUSER NOBYPASSRLS, owns nothing, member
of no other role), so `RESET ROLE` or `SET ROLE` gains nothing. manage.py commands and the test process log in as the
owner (DATABASE_OWNER_URL) and take the app role for request and task code with `SET LOCAL ROLE`.

A scope is wanted per connection (a stack: `scope()`, `enter()`/`leave()`, `set_organization()`):

- OWNER — the login role as it is: every org for the owner; nothing for a process logged in as the app role;
- NOBODY — the app role, no org: a request or task until its org is known (so a forgotten org shows nothing);
- an organization id — the app role, that org.

There is no "every org" scope for the app role. The few lookups that must cross orgs to find one (an API key by its
prefix, a user's memberships, a public form by slug, a tracking token, the beat sweeps' due work) call narrow
SECURITY DEFINER functions (`definer_function()` in each app's migrations) that return only org ids or what picks
the org; the work itself then runs under that org. `grep -rn "rls.lookup("` lists the callers.

The scope lives in the transaction, never in the session, so the app runs behind PgBouncer in transaction pooling
(where the next transaction may run on a server connection another client just used): an execute wrapper on every
connection sends `set_config('app.organization_id', <signed>, true)` (and `set_config('role', ..., true)`, i.e.
SET LOCAL ROLE, where the owner's login takes the app role) with the first statement of each transaction that
needs it, pipelined with it in one round trip:

- a statement outside a transaction (autocommit) and its scope go together in one implicit transaction, which
  ends with the statement and takes the scope along;
- in a transaction (`atomic()`), the scope goes with the first statement (psycopg's BEGIN rides in the same
  pipeline) and again only when the scope changes within the transaction or a savepoint was rolled back to;
- a statement already in its state costs nothing: for the app role's login, every unscoped statement (NOBODY).

The extra statements are counted on the connection (`rls_statements`), not in its queries log, so query-count
assertions stay about the code under test; tests/test_pipeline_budget.py holds them to a budget.
"""

import hashlib
import re
import uuid
from contextlib import contextmanager
from functools import lru_cache

import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DatabaseError, ProgrammingError, connections, migrations, transaction
from django.utils.crypto import salted_hmac

SETTING = "app.organization_id"
POLICY = "tenant_isolation_v2"
OWNER_POLICY = "owner_access_v1"
KEY_TABLE = "leadcrm_scope_key"
CURRENT_ORGANIZATION = "leadcrm_current_organization"
OWNER = "owner"
NOBODY = ""

# The organization column compared with the current org: every match on it can use the org-leading indexes, and
# the function runs once per statement (an init plan), not once per row.
_PREDICATE = f"({{column}} = (SELECT {CURRENT_ORGANIZATION}()))"

# Verifies the signed setting; the key table is readable by the owner only, so the check runs as the owner.
_CURRENT_FUNCTION = f"""
SELECT split_part(s, ':', 1)::uuid FROM {KEY_TABLE} k, current_setting('{SETTING}', true) s
WHERE s ~ '^[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}:[0-9a-f]{{64}}$'
  AND encode(sha256(k.key || sha256(k.key || convert_to(split_part(s, ':', 1), 'UTF8'))), 'hex')
      = split_part(s, ':', 2)
"""

# A query's own conditions run after the policy's, and so cannot be served by an index, unless every function in
# them is LEAKPROOF. Comparisons, ranges and IN are; LIKE is not, which would leave `?search=` scanning every lead
# of the org instead of reading its trigram index. LIKE fails only on a malformed pattern (an escape at its end), and
# every pattern of ours is the query's own constant, so it tells nothing about the rows it is run on. Only a
# superuser may mark a function; where the migrating role is not one, search works the same, by scanning.
LEAKPROOF_FUNCTIONS = ("pg_catalog.textlike(text, text)",)

_process_default = OWNER
_IDLE, _INTRANS = 0, 2  # psycopg.pq.TransactionStatus: no transaction open / one open and healthy


def app_role() -> str:
    role = getattr(settings, "DATABASE_APP_ROLE", "")
    if role and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ImproperlyConfigured("DATABASE_APP_ROLE must be a plain lower-case PostgreSQL role name.")
    return role


def scope_key() -> bytes:
    """The key that signs the org setting: DATABASE_SCOPE_KEY, else derived from SECRET_KEY. migrate stores it in the
    database; web and worker processes must run with the same one."""
    secret = getattr(settings, "DATABASE_SCOPE_KEY", "") or settings.SECRET_KEY
    return salted_hmac("leadcrm.rls.scope", "key", secret=secret, algorithm="sha256").digest()


@lru_cache(maxsize=4096)
def _signed(organization_id: str, key: bytes) -> str:
    inner = hashlib.sha256(key + organization_id.encode()).digest()
    return f"{organization_id}:{hashlib.sha256(key + inner).hexdigest()}"


def signed(organization_id: str) -> str:
    """The setting's value that scopes a transaction to this org."""
    return _signed(str(uuid.UUID(str(organization_id))), scope_key())


def set_process_default(scope: str) -> None:
    """Web and worker processes run each transaction fail-closed (NOBODY) outside a scope; other processes keep
    OWNER. Takes effect from the next transaction."""
    global _process_default
    _process_default = scope


def _normalise(scope) -> str:
    if scope in (OWNER, NOBODY):
        return scope
    return str(uuid.UUID(str(getattr(scope, "pk", scope))))  # raises on anything that is not an org id


def _stack(connection) -> list:
    if not hasattr(connection, "rls_stack"):
        connection.rls_stack = []
    return connection.rls_stack


def current(using=DEFAULT_DB_ALIAS) -> str:
    return _current(connections[using])


def _current(connection) -> str:
    stack = _stack(connection)
    return stack[-1] if stack else _process_default


def _switches_role(connection) -> bool:
    """Whether this connection logs in as someone else than the app role (the owner), and so must take the app role
    for scoped work."""
    role = app_role()
    return bool(role) and connection.settings_dict.get("USER") != role


def _state(connection, scope: str) -> str:
    """What a scope means on this connection: OWNER (the login as it is), NOBODY or an org id. For a login that is
    the app role, OWNER is NOBODY."""
    if scope == OWNER and not _switches_role(connection):
        return NOBODY
    return scope


def _baseline(connection) -> str:
    """The state every transaction starts in: nothing is ever set for the session."""
    return OWNER if _switches_role(connection) else NOBODY


def _statement(connection, state: str) -> tuple[str, list]:
    """One statement putting this transaction in `state`: set_config(..., true) is SET LOCAL, undone when the
    transaction ends (a savepoint rolled back to undoes it too). `role` as a setting is SET LOCAL ROLE (`none`:
    back to the login role)."""
    value = "" if state in (OWNER, NOBODY) else signed(state)
    if not _switches_role(connection):
        return "SELECT set_config(%s, %s, true)", [SETTING, value]
    return ("SELECT set_config('role', %s, true), set_config(%s, %s, true)",
            ["none" if state == OWNER else app_role(), SETTING, value])


def _before_each_statement(execute, sql, params, many, context):
    """Every statement runs in the wanted scope, set in its own transaction.

    - Outside a transaction (autocommit), a statement that needs a scope is sent with it in one pipeline: the
      server runs both in one implicit transaction, in one round trip, and forgets the scope at its end.
    - In a transaction, the scope is sent with the transaction's first statement (psycopg's BEGIN rides in the
      same pipeline), and again only when it changes within the transaction, or after a rollback to a savepoint.

    A statement needs nothing when the transaction already is in its state: for a process logged in as the app
    role, every unscoped statement (NOBODY) costs nothing extra."""
    connection = context["connection"]
    raw = connection.connection
    status = raw.info.transaction_status
    if status == _IDLE:
        in_effect = _baseline(connection)
    elif status == _INTRANS:
        in_effect = getattr(connection, "rls_in_effect", None)
    else:  # a failed transaction takes no statement but a rollback (to a savepoint): nothing to set
        result = execute(sql, params, many, context)
        connection.rls_in_effect = None  # the savepoint may have undone what was set after it
        return result
    wanted = _state(connection, _current(connection))
    if in_effect == wanted:
        result = execute(sql, params, many, context)
    else:
        result = _run_scoped(connection, wanted, execute, sql, params, many, context)
    if not raw.autocommit:
        # What the transaction is in now; after ROLLBACK TO SAVEPOINT, unknown (the savepoint may have undone it).
        rolled_back = sql.lstrip()[:8].upper() == "ROLLBACK"
        connection.rls_in_effect = None if rolled_back else wanted
    return result


def _run_scoped(connection, state, execute, sql, params, many, context):
    raw = connection.connection
    named = isinstance(context["cursor"].cursor, psycopg.ServerCursor)
    # A pipeline takes one statement per query: SQL of several (`DROP ...; CREATE ...`) goes on its own, as does a
    # named cursor (QuerySet.iterator()), which psycopg cannot pipeline.
    alone = named or ";" in sql.strip().rstrip(";") or raw._pipeline is not None
    if alone and raw.autocommit:
        if named and getattr(settings, "DATABASE_POOLED", False):
            raise ProgrammingError("QuerySet.iterator() outside transaction.atomic() would leave its cursor on a "
                                   "server connection the pooler gives to others: iterate inside a transaction.")
        with transaction.atomic(using=connection.alias):  # a transaction of its own, for the scope to last in
            return _before_each_statement(execute, sql, params, many, context)
    statement, values = _statement(connection, state)
    connection.rls_statements = getattr(connection, "rls_statements", 0) + 1
    # The raw connection: these statements are the wall's bookkeeping, not the view's queries (query-count
    # assertions stay about the view; rls_statements counts them). Server-side parameters: the signed value never
    # appears in the statement's text, which other sessions of the same role can read in pg_stat_activity.
    with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
        if alone:
            cursor.execute(statement, values)
            return execute(sql, params, many, context)
        with raw.pipeline():
            cursor.execute(statement, values)
            return execute(sql, params, many, context)


def on_connection_created(sender, connection, **kwargs) -> None:
    """Hook the scope onto every statement of the connection. Nothing is set for the session: a pooler (PgBouncer
    in transaction mode) may hand the server connection to another client after any transaction."""
    if connection.vendor != "postgresql":
        return
    connection.rls_in_effect = None
    if _before_each_statement not in connection.execute_wrappers:
        connection.execute_wrappers.append(_before_each_statement)


@contextmanager
def scope(organization, using=DEFAULT_DB_ALIAS):
    """Run the block with the given scope (an org, NOBODY or OWNER), then restore the previous one."""
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
    return depth


def leave(depth: int, using=DEFAULT_DB_ALIAS) -> None:
    del _stack(connections[using])[depth:]


def set_organization(organization, using=DEFAULT_DB_ALIAS) -> None:
    """The org became known inside a request or task scope: the rest of that scope acts for it."""
    connection = connections[using]
    stack = _stack(connection)
    if not stack:
        raise RuntimeError("set_organization() needs an enclosing rls.scope() (a request or a task)")
    stack[-1] = _normalise(organization)


def lookup(function: str, *args, using=DEFAULT_DB_ALIAS) -> list[tuple]:
    """The rows of one of the SECURITY DEFINER functions that find an org across orgs (see definer_function)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", function):
        raise ValueError(function)
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT * FROM {function}({', '.join(['%s'] * len(args))})", list(args))
        return cursor.fetchall()


def lookup_ids(function: str, *args, using=DEFAULT_DB_ALIAS) -> list:
    """The first column of lookup(): the org ids a sweep has due work in, say."""
    return [row[0] for row in lookup(function, *args, using=using) if row[0] is not None]


def definer_function(name: str, arguments: str, returns: str, body: str) -> migrations.RunPython:
    """A migration operation: a SQL function that runs as its owner (every org's rows), for the app role to find an
    org by something that is not one. Keep it narrow: return org ids (or what picks the org), never a tenant's data;
    the search path is fixed, with pg_temp last, so no caller's object can stand in for a table."""

    def create(apps, schema_editor):
        connection = schema_editor.connection
        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            schema = connection.ops.quote_name(_schema(cursor))
            cursor.execute(
                f"CREATE OR REPLACE FUNCTION {name}({arguments}) RETURNS {returns} LANGUAGE sql STABLE "
                f"SECURITY DEFINER SET search_path = {schema}, pg_temp AS $body${body}$body$")
            cursor.execute(f"REVOKE ALL ON FUNCTION {name}({arguments}) FROM PUBLIC")
            role = app_role()
            if role:
                _ensure_role(cursor, role)
                cursor.execute(f'GRANT EXECUTE ON FUNCTION {name}({arguments}) TO "{role}"')

    def drop(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}({arguments})")

    return migrations.RunPython(create, drop, elidable=False)


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


def _quiet(cursor, statement: str) -> None:
    """A statement on the cluster's shared role, which a concurrent migrate of another database may run at the same
    moment (`tuple concurrently updated`): the outcome is checked afterwards."""
    try:
        with transaction.atomic(using=cursor.db.alias):
            cursor.execute(statement)
    except DatabaseError:
        pass


def _ensure_role(cursor, role: str) -> None:
    """The app role as web and worker processes log in with it: LOGIN (with DATABASE_APP_PASSWORD when set; local
    trust otherwise), NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE, and member of no role (so it cannot take the
    owner's policy). The owner may SET ROLE to it (the test process and management commands do)."""
    cursor.execute("SELECT rolsuper, rolbypassrls, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = %s",
                   [role])
    row = cursor.fetchone()
    if row is None:  # roles are shared by the cluster's databases: a concurrent migrate may create it first
        _quiet(cursor, f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE')
    elif not row[3]:
        _quiet(cursor, f'ALTER ROLE "{role}" LOGIN')
    cursor.execute("SELECT rolsuper, rolbypassrls, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = %s",
                   [role])
    row = cursor.fetchone()
    if row is None:
        raise ImproperlyConfigured(f"The database role {role} is missing and could not be created.")
    if row[0] or row[1] or row[2]:
        raise ImproperlyConfigured(f"The database role {role} must be NOSUPERUSER NOBYPASSRLS NOCREATEROLE.")
    password = getattr(settings, "DATABASE_APP_PASSWORD", "")
    if password:
        cursor.execute("SELECT current_user = %s", [role])
        if not cursor.fetchone()[0]:
            literal = "'" + password.replace("'", "''") + "'"
            _quiet(cursor, f'ALTER ROLE "{role}" PASSWORD {literal}')
    cursor.execute("SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
                   "WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = %s)", [role])
    granted = [name for (name,) in cursor.fetchall()]
    if granted:
        raise ImproperlyConfigured(f"The database role {role} must be a member of no role (it is of "
                                   f"{', '.join(granted)}).")
    cursor.execute("SELECT pg_has_role(current_user, %s, 'MEMBER'), current_user = %s", [role, role])
    member, same = cursor.fetchone()
    if not member and not same:
        cursor.execute(f'GRANT "{role}" TO CURRENT_USER')


def _ensure_scope_check(cursor, quote) -> None:
    """The key table (the owner's alone) with this deployment's key, and the function the policy asks for the
    current org."""
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {KEY_TABLE} (id boolean PRIMARY KEY DEFAULT true CHECK (id), "
                   "key bytea NOT NULL)")
    cursor.execute(f"REVOKE ALL ON {KEY_TABLE} FROM PUBLIC")
    key = scope_key()
    cursor.execute(f"SELECT key FROM {KEY_TABLE}")
    stored = cursor.fetchone()
    if stored is None or bytes(stored[0]) != key:
        cursor.execute(f"INSERT INTO {KEY_TABLE} (id, key) VALUES (true, %s) ON CONFLICT (id) DO UPDATE "
                       "SET key = EXCLUDED.key", [key])
    cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = %s AND pronamespace = current_schema()::regnamespace",
                   [CURRENT_ORGANIZATION])
    found = cursor.fetchone()
    if found is None or found[0] != _CURRENT_FUNCTION:
        cursor.execute(
            f"CREATE OR REPLACE FUNCTION {CURRENT_ORGANIZATION}() RETURNS uuid LANGUAGE sql STABLE SECURITY DEFINER "
            f"SET search_path = {quote(_schema(cursor))}, pg_temp AS $body${_CURRENT_FUNCTION}$body$")
    cursor.execute(f"REVOKE ALL ON FUNCTION {CURRENT_ORGANIZATION}() FROM PUBLIC")


def apply_policies(using=DEFAULT_DB_ALIAS, **_) -> list[str]:
    """Idempotent: enable + force RLS and create the policies on every tenant table that lacks them, and grant the
    app role its DML and its definer functions. Returns the tables it changed."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    role = app_role()
    quote = connection.ops.quote_name
    changed = []
    with scope(OWNER, using=using), transaction.atomic(using=using), connection.cursor() as cursor:
        _ensure_scope_check(cursor, quote)
        cursor.execute(
            "SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity, c.relowner::regrole::text, "
            "ARRAY(SELECT polname FROM pg_policy p WHERE p.polrelid = c.oid), "
            "(SELECT array_agg(r::regrole::text) FROM pg_policy p, unnest(p.polroles) r "
            " WHERE p.polrelid = c.oid AND p.polname = %s) "
            "FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'",
            [OWNER_POLICY],
        )
        state = {name: (forced, owner, policies, owner_roles)
                 for name, forced, owner, policies, owner_roles in cursor.fetchall()}
        for table, column in tenant_tables(cursor):
            forced, owner, policies, owner_roles = state.get(table, (False, None, [], None))
            quoted = quote(table)
            touched = False
            if not forced:
                cursor.execute(f"ALTER TABLE {quoted} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
                touched = True
            for old in policies:
                if old.startswith("tenant_isolation") and old != POLICY:  # an earlier version of this policy
                    cursor.execute(f"DROP POLICY {quote(old)} ON {quoted}")
                    touched = True
            if POLICY not in policies:
                predicate = _PREDICATE.format(column=quote(column))
                cursor.execute(f"CREATE POLICY {POLICY} ON {quoted} USING {predicate} WITH CHECK {predicate}")
                touched = True
            if OWNER_POLICY not in policies:
                cursor.execute(f"CREATE POLICY {OWNER_POLICY} ON {quoted} TO CURRENT_USER USING (true) "
                               "WITH CHECK (true)")
                touched = True
            elif owner and owner_roles != [owner]:  # the tables changed hands: the policy follows their owner
                cursor.execute(f"ALTER POLICY {OWNER_POLICY} ON {quoted} TO {owner}")
                touched = True
            if touched:
                changed.append(table)
        _mark_leakproof(cursor)
        if role:
            _ensure_role(cursor, role)
            schema = quote(_schema(cursor))
            cursor.execute(f'GRANT USAGE ON SCHEMA {schema} TO "{role}"')
            cursor.execute(f'REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC, "{role}"')
            cursor.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO "{role}"')
            cursor.execute(f'REVOKE ALL ON {KEY_TABLE} FROM "{role}"')
            cursor.execute(f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO "{role}"')
            # The definer functions this schema's migrations made (the role may have been renamed since).
            cursor.execute("SELECT oid::regprocedure::text FROM pg_proc WHERE prosecdef "
                           "AND pronamespace = current_schema()::regnamespace "
                           "AND proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)")
            for (function,) in cursor.fetchall():
                cursor.execute(f'GRANT EXECUTE ON FUNCTION {function} TO "{role}"')
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
