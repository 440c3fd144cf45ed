"""Deployment checks of our own, run by `manage.py check --deploy` beside Django's."""

from django.conf import settings
from django.core import checks
from django.db import connections

from . import rls

DEVELOPMENT_SECRET_KEY = "dev-only-insecure-key-set-SECRET_KEY-in-production"


@checks.register(checks.Tags.security, deploy=True)
def production_secret_key(app_configs, **kwargs):
    # Django's own check accepts this key (it is long and varied), but it is public in the repository.
    if settings.SECRET_KEY == DEVELOPMENT_SECRET_KEY:
        return [checks.Error("SECRET_KEY is the development default.",
                             hint="Set SECRET_KEY in the environment to a long random value.", id="leadcrm.E001")]
    return []


@checks.register(checks.Tags.database)
def search_index_usable(app_configs, databases=None, **kwargs):
    # Run by `check --database default` and by migrate: only a superuser can mark LIKE leakproof (rls.py).
    warnings = []
    for alias in databases or ():
        if connections[alias].vendor != "postgresql":
            continue
        with connections[alias].cursor() as cursor:
            leaky = rls.leaky_functions(cursor)
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            superuser = cursor.fetchone()[0]
        if leaky and not superuser:  # a superuser's migrate marks them
            warnings.append(checks.Warning(
                f"{', '.join(leaky)} is not marked LEAKPROOF in database {alias!r}: under row-level security "
                "lead search cannot use its trigram index and scans every lead of the org.",
                hint="Run migrate once as a superuser, or have one run: "
                     + "; ".join(f"ALTER FUNCTION {name} LEAKPROOF" for name in leaky),
                id="leadcrm.W001"))
    return warnings


@checks.register(checks.Tags.database)
def scope_key_matches(app_configs, databases=None, **kwargs):
    # A process whose DATABASE_SCOPE_KEY (or SECRET_KEY) differs from the last migrate's sees no org's rows at all.
    import uuid

    from django.db import DatabaseError, transaction

    warnings = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        probe = uuid.uuid4()
        try:
            with transaction.atomic(using=alias), connection.cursor() as cursor:
                cursor.execute("SELECT set_config(%s, %s, true)", [rls.SETTING, rls.signed(probe)])
                cursor.execute(f"SELECT {rls.CURRENT_ORGANIZATION}()")
                found = cursor.fetchone()[0]
        except DatabaseError:  # not migrated yet
            continue
        if found != probe:
            warnings.append(checks.Warning(
                f"Database {alias!r} holds another scope key than this process: every org's rows are invisible.",
                hint="Run web, workers and migrate with the same DATABASE_SCOPE_KEY (or SECRET_KEY), then migrate.",
                id="leadcrm.W002"))
    return warnings


@checks.register(checks.Tags.database, deploy=True)
def pooled_has_direct_url(app_configs, **kwargs):
    # Behind PgBouncer in transaction pooling, a LISTEN or a session lock sent through it would stay on whichever
    # server connection ran it (leadcrm/direct.py).
    if getattr(settings, "DATABASE_POOLED", False) and not getattr(settings, "DATABASE_DIRECT_URL", ""):
        return [checks.Warning(
            "DATABASE_POOLED is on but DATABASE_DIRECT_URL is unset: the outbox relay would LISTEN, and imports and "
            "re-scoring would hold their locks, through the pooler.",
            hint="Set DATABASE_DIRECT_URL to PostgreSQL itself (the same user as DATABASE_URL, the server's address).",
            id="leadcrm.W020")]
    return []
