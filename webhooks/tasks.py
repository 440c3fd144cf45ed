"""Celery tasks of the `webhooks` queue: thin, idempotent (a delivery is claimed before it is sent)."""

from celery import shared_task
from django.conf import settings

from . import services


@shared_task(acks_late=True)
def deliver(delivery_id):
    services.send_delivery(delivery_id=delivery_id)


@shared_task(acks_late=True)
def drain():
    """Send due deliveries for a while; if some are still due, another drain takes over."""
    services.send_due()
    if services.due_count():
        drain.apply_async(retry=False)


@shared_task(acks_late=True)
def sweep():
    """From beat: send what is due (retries, and deliveries whose task was lost or never enqueued), and start
    draining tasks when more is due than one sweep sends."""
    services.send_due(budget_seconds=settings.WEBHOOKS_SWEEP_SECONDS * 0.8)
    backlog = services.due_count()
    if backlog:
        services._enqueue_drain(backlog)
