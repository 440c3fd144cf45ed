"""Celery tasks of the agenda (thin: the work is in services)."""

from celery import shared_task
from django.db import OperationalError

from . import services


@shared_task(
    name="agenda.tasks.send_reminders",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=1,
    max_retries=5,
)
def send_reminders():
    """Beat: notify the owners of tasks that came due, once each."""
    return services.send_due_reminders()
