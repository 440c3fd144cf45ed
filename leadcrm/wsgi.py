import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")
application = get_wsgi_application()

from leadcrm import rls  # noqa: E402 - after the settings are loaded

rls.set_process_default(rls.NOBODY)  # web connections see no tenant's rows outside a request that knows its org
