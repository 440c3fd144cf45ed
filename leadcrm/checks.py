"""Deployment checks of our own, run by `manage.py check --deploy` beside Django's."""

from django.conf import settings
from django.core import checks

DEVELOPMENT_SECRET_KEY = "dev-only-insecure-key-set-SECRET_KEY-in-production"


@checks.register(checks.Tags.security, deploy=True)
def production_secret_key(app_configs, **kwargs):
    # Django's own check accepts this key (it is long and varied), but it is public in the repository.
    if settings.SECRET_KEY == DEVELOPMENT_SECRET_KEY:
        return [checks.Error("SECRET_KEY is the development default.",
                             hint="Set SECRET_KEY in the environment to a long random value.", id="leadcrm.E001")]
    return []
