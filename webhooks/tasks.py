"""Celery tasks of the `webhooks` queue: thin, idempotent (a delivery is claimed before it is sent).

Sending works on due deliveries of every org at once (one claim, one recording statement per batch), so these
tasks run unscoped: still the application role, every org's rows (leadcrm.rls).
"""

from celery import shared_task
from django.conf import settings

from leadcrm import rls

from . import services


@shared_task(acks_late=True)
def deliver(delivery_id):
    with rls.unscoped():
        services.send_delivery(delivery_id=delivery_id)


@shared_task(acks_late=True)
def drain():
    """Send due deliveries for a while; if some are still due, another drain takes over."""
    with rls.unscoped():
        services.send_due()
        more = services.due_count()
    if more:
        drain.apply_async(retry=False)


@shared_task(acks_late=True)
def sweep():
    """From beat: send what is due (retries, and deliveries whose task was lost or never enqueued), and start
    draining tasks when more is due than one sweep sends."""
    with rls.unscoped():
        services.send_due(budget_seconds=settings.WEBHOOKS_SWEEP_SECONDS * 0.8)
        backlog = services.due_count()
    if backlog:
        services._enqueue_drain(backlog)


@shared_task(acks_late=True)
def purge():
    """From beat, daily: old finished deliveries go (WEBHOOKS_RETENTION_DAYS), in every org."""
    with rls.unscoped():
        services.purge_old_deliveries()
