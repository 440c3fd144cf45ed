"""The "someone is doing this now" locks of long work (leadcrm/locks.py): held across the work's many transactions
without any session state on the work's own connection (which a pooler may hand to another client between them)."""

import time

import pytest
from django.db import connection, transaction

from leadcrm import locks
from leads.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)


def advisory_locks_of_this_session() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_lock_is_held_across_the_works_transactions_and_freed_at_the_end(org):
    with locks.try_lock(locks.IMPORT, "job-1") as acquired:
        assert acquired
        for n in range(2):  # the work's own transactions come and go
            with transaction.atomic():
                Lead.objects.create(organization=org, email=f"lead{n}@acme.test")
            assert locks.is_held(locks.IMPORT, "job-1")
        with locks.try_lock(locks.IMPORT, "job-1") as again:  # a second delivery of the same task
            assert not again
        with locks.try_lock(locks.IMPORT, "job-2") as other:
            assert other
        assert advisory_locks_of_this_session() == 0  # nothing left on the connection the work runs on
    assert not locks.is_held(locks.IMPORT, "job-1")
    with locks.try_lock(locks.IMPORT, "job-1") as acquired:
        assert acquired


def test_a_lock_whose_holder_died_is_free(org):
    with locks.try_lock(locks.RECALCULATION, org.pk):
        with connection.cursor() as cursor:  # the holder's session ends, as when its worker is killed
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = %s::oid AND objid = hashtext(%s)::oid",
                [locks.RECALCULATION, str(org.pk)],
            )
        # pg_terminate_backend only signals: the backend, and its lock, are gone a moment later
        deadline = time.monotonic() + 10
        while locks.is_held(locks.RECALCULATION, org.pk):
            assert time.monotonic() < deadline, "the dead holder's lock was not freed"
            time.sleep(0.05)
        with locks.try_lock(locks.RECALCULATION, org.pk) as acquired:
            assert acquired


def test_asking_whether_a_lock_is_held_takes_nothing(org):
    with transaction.atomic():
        assert not locks.is_held(locks.IMPORT, "job-3")
        with locks.try_lock(locks.IMPORT, "job-3") as acquired:  # a worker starting meanwhile still gets it
            assert acquired
