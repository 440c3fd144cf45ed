"""The one claim primitive (leadcrm/claims.py), on the outbox table, whose rows are shaped like every leased work:
a due time, attempts, the last error."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F
from django.utils import timezone

from leadcrm import claims
from leadcrm.models import OutboxEvent
from webhooks.models import Delivery, Endpoint

BACKOFF = claims.Backoff(first=timedelta(seconds=5), cap=timedelta(seconds=60))
LEASE = timedelta(seconds=120)


def _rows(count, *, due_in=timedelta(seconds=-1)):
    now = timezone.now()
    return [OutboxEvent.objects.create(event="test.claims", payload={"n": n}, created_at=now,
                                       next_attempt_at=now + due_in - timedelta(milliseconds=n))
            for n in range(count)]


def _ours(rows):
    return OutboxEvent.objects.filter(pk__in=[row.pk for row in rows])


def _claim(queryset, **kwargs):
    return claims.claim(queryset, due="next_attempt_at", limit=kwargs.pop("limit", 100), lease=LEASE, **kwargs)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_claimers_never_get_the_same_row():
    rows = _rows(30)
    both_hold_their_rows = threading.Barrier(2, timeout=20)
    taken, errors = [[], []], []

    def worker(index):
        try:
            while True:
                with transaction.atomic():  # each claim's row locks are held until the barrier: truly concurrent
                    claimed = _claim(_ours(rows), limit=4)
                    try:
                        both_hold_their_rows.wait()
                    except threading.BrokenBarrierError:
                        pass  # the other worker found nothing more and left
                if not claimed:
                    both_hold_their_rows.abort()
                    return
                taken[index] += [row.pk for row in claimed]
        except Exception as exc:  # noqa: BLE001 — reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert taken[0] and taken[1], "both workers got a share"
    assert set(taken[0]).isdisjoint(taken[1])
    assert sorted(taken[0] + taken[1]) == sorted(row.pk for row in rows)  # every row once


@pytest.mark.django_db
def test_a_claimed_row_is_leased_and_claimable_again_once_the_lease_ends():
    rows = _rows(3)
    now = timezone.now()

    first = _claim(_ours(rows), now=now)

    assert [row.pk for row in first] == [row.pk for row in reversed(rows)]  # the longest due first
    assert [row.due_at for row in first] == [row.next_attempt_at for row in reversed(rows)]
    assert set(_ours(rows).values_list("next_attempt_at", flat=True)) == {now + LEASE}
    assert _claim(_ours(rows), now=now + LEASE - timedelta(seconds=1)) == []  # another worker meanwhile
    again = _claim(_ours(rows), now=now + LEASE)  # the worker died: its lease ran out
    assert sorted(row.pk for row in again) == sorted(row.pk for row in rows)


@pytest.mark.django_db
def test_rows_not_yet_due_are_not_claimed_and_the_limit_holds():
    due = _rows(5)
    later = _rows(2, due_in=timedelta(minutes=5))

    claimed = _claim(_ours(due + later), limit=3)

    assert len(claimed) == 3 and {row.pk for row in claimed} <= {row.pk for row in due}
    assert {row.pk for row in _claim(_ours(due + later))} == {row.pk for row in due} - {row.pk for row in claimed}
    assert all(row.next_attempt_at == row_before.next_attempt_at
               for row, row_before in zip(_ours(later).order_by("pk"), later, strict=True))


@pytest.mark.django_db
def test_the_queryset_says_what_is_due_and_an_expression_can_be_the_due_time():
    rows = _rows(4)
    OutboxEvent.objects.filter(pk=rows[0].pk).update(event="other")
    now = timezone.now()
    # Due five minutes after it was created (a sweeper's staleness, say); the lease goes to another column.
    later = now + timedelta(minutes=10)
    OutboxEvent.objects.filter(pk=rows[1].pk).update(created_at=now + timedelta(minutes=20))
    stale = ExpressionWrapper(F("created_at") + timedelta(minutes=5), output_field=DateTimeField())
    claimed = claims.claim(_ours(rows).filter(event="test.claims"), limit=10, lease=LEASE, now=later, due=stale,
                           lease_field="next_attempt_at")

    assert {row.pk for row in claimed} == {rows[2].pk, rows[3].pk}
    assert set(_ours(rows[2:]).values_list("next_attempt_at", flat=True)) == {later + LEASE}


@pytest.mark.django_db
def test_back_off_doubles_after_each_failure_and_stops_at_the_cap():
    row = _rows(1)[0]
    waits = []
    for _ in range(7):
        now = timezone.now()
        changed = claims.reschedule(_ours([row]), [claims.Failure(row.pk, "receiver said no")],
                                    due_field="next_attempt_at", backoff=BACKOFF, now=now)
        row.refresh_from_db()
        assert changed == 1
        waits.append((row.next_attempt_at - now).total_seconds())

    assert waits == [5, 10, 20, 40, 60, 60, 60]
    assert row.attempts == 7 and row.last_error == "receiver said no"
    assert [BACKOFF.after(n).total_seconds() for n in range(1, 8)] == waits  # the same rule in Python


def test_a_schedule_back_off_follows_its_steps_then_gives_up_and_sets_other_columns(org):
    schedule = claims.Backoff(schedule=(timedelta(seconds=5), timedelta(minutes=5)))
    endpoint = Endpoint.objects.create(organization=org, url="https://example.com/hook", events=["lead.mql"],
                                       secret="whsec_test")
    now = timezone.now()
    delivery = Delivery.objects.create(organization=org, endpoint=endpoint, message_id="msg_1", event_type="lead.mql",
                                       payload={}, next_attempt_at=now)
    due_times = []
    for attempt in range(3):
        claims.reschedule(Delivery.objects.for_org(org), [claims.Failure(delivery.pk, f"failure {attempt}",
                                                                         {"last_status_code": 500 + attempt})],
                          due_field="next_attempt_at", backoff=schedule, attempts_field="attempt_count", now=now)
        delivery.refresh_from_db()
        due_times.append(delivery.next_attempt_at)

    assert due_times == [now + timedelta(seconds=5), now + timedelta(minutes=5), None]
    assert (delivery.attempt_count, delivery.last_error, delivery.last_status_code) == (3, "failure 2", 502)
    assert [schedule.gives_up(n) for n in (1, 2, 3)] == [False, False, True]


@pytest.mark.django_db
def test_the_outbox_shape_claim_then_record_which_handlers_still_fail_with_a_shorter_cap_for_transient_ones():
    broker_down, handler_bug = _rows(2)
    transient = claims.Backoff(first=timedelta(seconds=5), cap=timedelta(seconds=15))
    now = timezone.now()

    claimed = claims.claim(_ours([broker_down, handler_bug]), due="next_attempt_at", limit=100, now=now,
                           lease=timedelta(seconds=60))
    for _ in range(3):  # three deliveries in a row fail the same way
        claims.reschedule(_ours([broker_down]), [claims.Failure(broker_down.pk, "Broker down",
                                                                {"pending": ["scoring.handlers.a"]})],
                          due_field="next_attempt_at", backoff=transient, now=now)
        claims.reschedule(_ours([handler_bug]), [claims.Failure(handler_bug.pk, "KeyError",
                                                                {"pending": ["routing.handlers.b"]})],
                          due_field="next_attempt_at", backoff=BACKOFF, now=now)

    assert len(claimed) == 2
    broker_down.refresh_from_db()
    handler_bug.refresh_from_db()
    assert (broker_down.attempts, broker_down.pending, broker_down.next_attempt_at) == (
        3, ["scoring.handlers.a"], now + timedelta(seconds=15))
    assert (handler_bug.attempts, handler_bug.last_error, handler_bug.next_attempt_at) == (
        3, "KeyError", now + timedelta(seconds=20))


@pytest.mark.django_db
def test_reschedule_touches_only_rows_of_its_queryset():
    mine, other = _rows(2)
    before = other.next_attempt_at

    changed = claims.reschedule(_ours([mine]), [claims.Failure(mine.pk), claims.Failure(other.pk)],
                                due_field="next_attempt_at", backoff=BACKOFF)

    other.refresh_from_db()
    assert changed == 1 and (other.attempts, other.next_attempt_at) == (0, before)


@pytest.mark.django_db
def test_one_statement_claims_a_batch(django_assert_max_num_queries):
    rows = _rows(50)
    with django_assert_max_num_queries(3):  # savepoint, the UPDATE … FROM (SELECT … SKIP LOCKED), release
        claimed = _claim(_ours(rows), limit=50)
    assert len(claimed) == 50


def test_sweepers_run_each_on_its_own(monkeypatch):
    monkeypatch.setattr(claims, "_sweepers", {})
    calls = []

    def broken():
        calls.append("broken")
        raise RuntimeError("lost")

    claims.register_sweeper("broken", broken)
    claims.register_sweeper("fine", lambda: calls.append("fine") or 2)

    assert claims.run_sweepers() == {"fine": 2}
    assert calls == ["broken", "fine"]
