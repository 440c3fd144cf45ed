"""Celery tasks of scoring (thin: the work is in services). Routed to the `scoring` queue."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from leadcrm.models import Organization

from . import predictive, services

# A deadlock with a concurrent writer, or a dropped connection, is worth another try: the tasks are idempotent.
RETRY_ON_DATABASE_ERRORS = {"autoretry_for": (OperationalError,), "retry_backoff": 2, "max_retries": 5}


@shared_task(name="scoring.tasks.score_lead", acks_late=True, **RETRY_ON_DATABASE_ERRORS)
def score_lead(organization_id, lead_id):
    """Instant scoring after a capture, activity or edit. Idempotent: it recomputes from the facts. A lead deleted
    since matches nothing."""
    services.score_lead(organization_id=organization_id, lead_id=lead_id)


@shared_task(name="scoring.tasks.score_leads", acks_late=True, **RETRY_ON_DATABASE_ERRORS)
def score_leads(organization_id, lead_ids):
    """Re-score the leads a bulk change touched, in one set-based statement. Ids of leads deleted since match
    nothing."""
    services.score_lead_set(organization_id=organization_id, lead_ids=lead_ids)


@shared_task(name="scoring.tasks.recalculate", acks_late=True, **RETRY_ON_DATABASE_ERRORS)
def recalculate(organization_id):
    """Re-score the whole org after a rule or settings change; safe to run twice or concurrently."""
    if Organization.objects.filter(pk=organization_id).exists():  # it may have been deleted since
        services.recalculate_organization(organization_id=organization_id)


@shared_task(name="scoring.tasks.apply_decay")
def apply_decay():
    """Nightly beat task: orgs with a half-life are re-scored, so behaviour points fade."""
    return services.apply_decay()  # finds the orgs with decay on, then re-scores each under its own org


@shared_task(name="scoring.tasks.expire_windows", acks_late=True, **RETRY_ON_DATABASE_ERRORS)
def expire_windows():
    """Nightly beat task: leads whose counted activities left a rule's window are re-scored."""
    return services.expire_windows()


def enqueue_stalled_recalculations() -> int:
    """A sweeper (leadcrm.claims): enqueue again the re-scoring of orgs whose task was lost (a second one queued
    meanwhile does nothing: it finds the scores current or the lock taken)."""
    organization_ids = services.stalled_recalculations()
    for organization_id in organization_ids:
        recalculate.delay(str(organization_id))
    return len(organization_ids)


@shared_task(name="scoring.tasks.train_model", acks_late=True)
def train_model(organization_id, version_id):
    """Train a queued version of the org's predictive model (or one whose worker died), then score every lead
    with it. A repeat while it trains finds its lock taken, and after it finds it done: either does nothing."""
    predictive.train(organization_id=organization_id, version_id=version_id)


def enqueue_abandoned_training() -> int:
    """A sweeper (leadcrm.claims): enqueue again the training runs whose task never ran or whose worker died (a
    running one holds its lock and is left alone)."""
    abandoned = predictive.abandoned_runs(older_than=timedelta(seconds=settings.SWEEP_AFTER_SECONDS))
    for version_id, organization_id in abandoned:
        train_model.delay(str(organization_id), str(version_id))
    return len(abandoned)


@shared_task(name="scoring.tasks.retrain_changed", acks_late=True, **RETRY_ON_DATABASE_ERRORS)
def retrain_changed():
    """Nightly beat task: a new model for each org with one whose outcomes changed since it was trained."""
    return len(predictive.retrain_changed())
