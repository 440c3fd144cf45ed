"""Celery tasks of the project package (thin: the work is in leadcrm.events)."""

from celery import shared_task

from . import claims, events


@shared_task(name="leadcrm.tasks.deliver_outbox", acks_late=True)
def deliver_outbox():
    """Beat (every OUTBOX_TICK_SECONDS): run event handlers that failed, or never ran because the process that
    committed the event stopped first. Overlapping runs share the rows (SKIP LOCKED)."""
    return events.deliver_due()


@shared_task(name="leadcrm.tasks.sweep", acks_late=True)
def sweep():
    """Beat (every SWEEP_TICK_SECONDS): every registered sweeper re-enqueues work of its kind whose task was lost
    (imports, unrouted MQLs, stalled re-scoring); each claims what it finds, so overlapping sweeps share it."""
    return claims.run_sweepers()
