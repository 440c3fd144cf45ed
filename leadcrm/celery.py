import inspect
import os
import time

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


@signals.worker_init.connect
def fail_closed_by_default(**_):
    """A worker's connections see no tenant's rows outside a task that names its organization."""
    from . import rls

    rls.set_process_default(rls.NOBODY)


@signals.task_prerun.connect
def enter_organization(task=None, args=(), kwargs=None, **_):
    """Row-level security for every task: the org of its `organization_id` argument, else none at all (a task that
    has to find its org, or sweeps every org, finds them through a definer function: rls.lookup)."""
    from . import rls

    task.request.rls_depth = rls.enter(task_organization(task, args, kwargs or {}) or rls.NOBODY)


@signals.task_postrun.connect
def leave_organization(task=None, **_):
    from . import rls

    depth = getattr(task.request, "rls_depth", None)
    if depth is not None:
        rls.leave(depth)


def task_organization(task, args, kwargs):
    if "organization_id" in kwargs:
        return kwargs["organization_id"]
    try:
        bound = inspect.signature(task.run).bind_partial(*args, **kwargs)
    except TypeError:
        return None
    return bound.arguments.get("organization_id")


_relay = None


@signals.worker_ready.connect
def start_outbox_relay(**_):
    """Each worker runs the outbox relay in a thread of its main process (the pool's processes run the tasks)."""
    global _relay
    from django.conf import settings

    from .relay import Relay

    if settings.OUTBOX_RELAY and _relay is None:
        _relay = Relay().start()


@signals.worker_shutdown.connect
def stop_outbox_relay(**_):
    if _relay is not None:
        _relay.close()


@signals.task_prerun.connect
def start_task_clock(task_id=None, task=None, args=(), kwargs=None, **_):
    """Task latency by task name (leadcrm.metrics), and the task's id and org on every log line it writes."""
    from . import logs

    task.request.metrics_started = time.perf_counter()
    task.request.log_context = logs.enter_task(task_id, task_organization(task, args, kwargs or {}))


@signals.task_postrun.connect
def stop_task_clock(task=None, state=None, **_):
    from . import logs, metrics

    started = getattr(task.request, "metrics_started", None)
    if started is not None:
        metrics.TASK_LATENCY.labels(task.name, state or "UNKNOWN").observe(time.perf_counter() - started)
        task.request.metrics_started = None
    logs.leave_task(getattr(task.request, "log_context", None))
    task.request.log_context = None


@signals.worker_ready.connect
def serve_metrics(**_):
    """The main process serves its pool's task metrics (PROMETHEUS_MULTIPROC_DIR) when WORKER_METRICS_PORT is set."""
    from django.conf import settings

    from . import metrics

    if settings.WORKER_METRICS_PORT:
        metrics.serve_worker_metrics(settings.WORKER_METRICS_PORT)
