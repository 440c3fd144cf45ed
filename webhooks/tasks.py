"""Celery tasks of the `webhooks` queue: thin, idempotent (a delivery is claimed before it is sent).

Each finds the orgs it works for first (leadcrm/rls.py: the app role sees one org at a time), then sends each org's
due deliveries under that org (one claim, one recording statement per batch).
"""

from celery import shared_task
from django.conf import settings

from . import services


@shared_task(acks_late=True)
def deliver(delivery_id):
    services.send_delivery(delivery_id=delivery_id)


@shared_task(acks_late=True)
def drain():
    """Send due deliveries for a while; if some are still due, another drain takes over."""
    _, more = services.send_due_in_every_org()
    if more:
        drain.apply_async(retry=False)


@shared_task(acks_late=True)
def sweep():
    """From beat: send what is due (retries, and deliveries whose task was lost or never enqueued), and start
    draining tasks when more is due than one sweep sends."""
    _, backlog = services.send_due_in_every_org(budget_seconds=settings.WEBHOOKS_SWEEP_SECONDS * 0.8)
    if backlog:
        services._enqueue_drain(backlog)


@shared_task(acks_late=True)
def purge():
    """From beat, daily: old finished deliveries go (WEBHOOKS_RETENTION_DAYS), in every org, each under its own."""
    services.purge_old_deliveries()
