"""The sweepers on the claim primitive: lost work is re-enqueued once per lease, from one beat entry."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from leadcrm import rls, tasks
from leads import import_files, imports
from leads.models import ImportJob
from scoring import services as scoring
from scoring.models import ScoringSettings

pytestmark = pytest.mark.django_db
STALE = timedelta(seconds=60)


def _job(org, *, age, status="queued"):
    job = ImportJob.objects.create(organization=org, filename="leads.csv", file=import_files.upload(b"email\n"),
                                   status=status)
    ImportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - age)
    return job


def test_an_abandoned_import_is_re_enqueued_once_per_lease(org):
    abandoned = _job(org, age=timedelta(minutes=2))
    _job(org, age=timedelta(seconds=10))  # its task may still be on its way
    _job(org, age=timedelta(minutes=2), status="done")

    assert imports.abandoned_imports(older_than=STALE) == [(abandoned.pk, org.pk)]
    assert imports.abandoned_imports(older_than=STALE) == []  # its new task has a lease's time to start
    ImportJob.objects.filter(pk=abandoned.pk).update(swept_until=timezone.now() - timedelta(seconds=1))
    assert imports.abandoned_imports(older_than=STALE) == [(abandoned.pk, org.pk)]  # that task was lost too


def test_a_stalled_re_scoring_is_re_enqueued_after_its_task_had_time_to_start(org):
    with rls.scope(org.pk):
        scoring.request_recalculation(organization_id=org.pk)

    assert org.pk not in scoring.stalled_recalculations()  # just requested: its task is on its way
    ScoringSettings.objects.filter(organization=org).update(recalc_swept_until=timezone.now() - timedelta(seconds=1))
    assert scoring.stalled_recalculations() == [org.pk]
    assert scoring.stalled_recalculations() == []  # enqueued again: leased for SWEEP_AFTER_SECONDS
    ScoringSettings.objects.filter(organization=org).update(scored_version=10**6)  # caught up
    ScoringSettings.objects.filter(organization=org).update(recalc_swept_until=None)
    assert scoring.stalled_recalculations() == []


def test_one_beat_entry_runs_every_sweeper(org):
    sweeps = [entry for entry in settings.CELERY_BEAT_SCHEDULE.values() if entry["task"] == "leadcrm.tasks.sweep"]
    assert len(sweeps) == 1 and sweeps[0]["schedule"] == settings.SWEEP_TICK_SECONDS
    assert not [entry for entry in settings.CELERY_BEAT_SCHEDULE.values() if ".sweep_" in entry["task"]]

    assert tasks.sweep.apply().get() == {"imports": 0, "unrouted MQLs": 0, "re-scoring": 0,
                                         "predictive training": 0}
