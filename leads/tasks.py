"""Celery tasks of the leads app (thin: the work is in services / imports)."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from leadcrm import rls

from . import imports, selectors, services

IMPORT_RETRIES = 5


@shared_task(bind=True, name="leads.tasks.run_import", acks_late=True, max_retries=IMPORT_RETRIES)
def run_import(self, import_id, organization_id=None):
    """Load a queued CSV import. Routed to the `imports` queue, so a big file never delays capture.

    Safe to run twice and after a worker was killed: it resumes from the last committed chunk.
    """
    organization_id = organization_id or selectors.organization_of_import(import_id)  # queued by an older release
    if organization_id is None:
        return
    with rls.scope(organization_id):
        try:
            imports.run_import(import_id=import_id)
        except OperationalError as exc:
            if self.request.retries >= IMPORT_RETRIES:
                imports.fail_import(import_id, "The database was unavailable; the import stopped. Upload it again.")
                raise
            raise self.retry(exc=exc, countdown=min(300, 10 * 2 ** self.request.retries)) from exc


def enqueue_abandoned_imports() -> int:
    """A sweeper (leadcrm.claims): enqueue again the imports whose task never ran or whose worker died (a running
    one holds its lock and is left alone)."""
    abandoned = imports.abandoned_imports(older_than=timedelta(seconds=settings.SWEEP_AFTER_SECONDS))
    for import_id, organization_id in abandoned:
        run_import.delay(str(import_id), str(organization_id))
    return len(abandoned)


@shared_task(name="leads.tasks.purge_tombstones", acks_late=True)
def purge_tombstones():
    """Beat, daily: tombstones past SYNC_TOMBSTONE_RETENTION_DAYS go, set-based, each org under its own scope."""
    return services.purge_tombstones()
