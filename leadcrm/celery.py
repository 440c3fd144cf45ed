import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")

app = Celery("leadcrm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect
def drop_unusable_connections(task=None, **_):
    """Workers keep their database connections between tasks (CELERY_DB_REUSE_MAX); like Django after each
    request, drop one that broke or outlived CONN_MAX_AGE, so a restarted database costs one retry, not all.
    A task run eagerly (in the caller's process and transaction) leaves the caller's connection alone."""
    from django.db import close_old_connections

    if task is not None and getattr(task.request, "is_eager", False):
        return
    close_old_connections()
