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
