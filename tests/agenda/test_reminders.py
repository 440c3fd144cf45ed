"""Due reminders: one in-app notification per due task and one email per owner, exactly once, even when several
beat passes run at the same moment."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from agenda import services
from agenda.models import Task, TaskType
from routing import tasks as routing_tasks
from routing.models import Notification, NotificationKind
from tests.routing import make_lead, make_rep
from tests.routing.test_concurrency import run_at_once


def _tasks(org, owners, count, due):
    leads = [make_lead(org, owner=owners[i % len(owners)], first_name=f"Lead{i}") for i in range(count)]
    return Task.objects.bulk_create(
        [
            Task(organization=org, lead=lead, owner=lead.owner, type=TaskType.CALL, due_at=due, remind_at=due)
            for lead in leads
        ]
    )


@pytest.mark.django_db(transaction=True)
def test_four_concurrent_passes_remind_each_due_task_once(org, other_org):
    ann, bob = make_rep(org, "ann").user, make_rep(org, "bob").user
    now = timezone.now()
    due = _tasks(org, [ann, bob], 40, now - timedelta(minutes=1))
    later = _tasks(org, [ann], 3, now + timedelta(hours=1))
    rival = make_rep(other_org, "rita").user
    rival_due = _tasks(other_org, [rival], 5, now - timedelta(minutes=2))

    sent = run_at_once(4, lambda _: services.send_due_reminders(now=now))

    assert sum(sent) == len(due) + len(rival_due)
    notes = Notification.objects.filter(kind=NotificationKind.TASK_DUE)
    assert Counter(notes.values_list("user_id", flat=True)) == {ann.pk: 20, bob.pk: 20, rival.pk: 5}
    assert notes.filter(organization=org).count() == 40
    assert not Task.objects.filter(pk__in=[t.pk for t in due], reminded_at__isnull=True).exists()
    assert Task.objects.filter(pk__in=[t.pk for t in later], reminded_at__isnull=True).count() == 3
    # a later pass finds nothing more to send
    assert services.send_due_reminders(now=now + timedelta(seconds=30)) == 0
    assert notes.count() == 45


@pytest.mark.django_db
def test_each_owner_gets_one_email_listing_their_due_tasks(org, smtp_server, django_capture_on_commit_callbacks):
    ann = make_rep(org, "ann").user
    now = timezone.now()
    _tasks(org, [ann], 3, now - timedelta(minutes=5))
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.send_due_reminders(now=now) == 3
    assert len(callbacks) == 1  # one email task for the pass
    ids = list(Notification.objects.filter(user=ann).values_list("pk", flat=True))
    assert routing_tasks.email_notifications(ids, str(org.pk)) == 3
    assert routing_tasks.email_notifications(ids, str(org.pk)) == 0  # sent once
    [message] = smtp_server.messages
    assert message["To"] == "ann@acme.test" and message["Subject"] == "3 tasks due"
    assert "Call due: Lead0" in message.get_content()


@pytest.mark.django_db
def test_done_tasks_and_snoozed_ones_are_not_reminded_until_due(org):
    ann = make_rep(org, "ann").user
    now = timezone.now()
    first, second = _tasks(org, [ann], 2, now - timedelta(minutes=1))
    services.complete_task(task=first, outcome="connected", actor=ann)
    services.snooze(task=second, until=now + timedelta(hours=1))
    assert services.send_due_reminders(now=now) == 0
    assert services.send_due_reminders(now=now + timedelta(hours=1, seconds=1)) == 1
    [note] = Notification.objects.filter(user=ann)
    assert note.lead_id == second.lead_id and note.message.startswith("Call due: Lead1")
