"""Telling people about leads: an in-app notification (the queue badge) and an email sent by a task."""

from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from ..models import Notification, NotificationKind

MESSAGES = {
    NotificationKind.ASSIGNED: "New lead for you: {lead}",
    NotificationKind.POOLED: "No rep of {team} could take {lead}: it waits in the pool",
    NotificationKind.ESCALATED: "Escalated to you after missed first-touch deadlines: {lead}",
}


@dataclass
class Notice:
    """One notification to write: who hears about which lead, and why."""

    lead: object
    user_id: int
    kind: str
    team: object = None


def notify_many(organization_id, notices: list[Notice]) -> list[Notification]:
    """Write the notifications in one statement; once committed, each person gets one email listing theirs (a rep
    handed 300 leads by one batch gets one email, not 300)."""
    notifications = Notification.objects.bulk_create([
        Notification(organization_id=organization_id, user_id=notice.user_id, lead=notice.lead, kind=notice.kind,
                     message=MESSAGES[notice.kind].format(lead=str(notice.lead)[:200],
                                                          team=notice.team.name if notice.team else "the team"))
        for notice in notices])
    notification_ids = [notification.pk for notification in notifications]

    def send():
        from ..tasks import email_notifications  # tasks import these services

        # One task for the batch: it writes each person one email listing theirs.
        email_notifications.delay(notification_ids, organization_id=str(organization_id))

    if notification_ids:
        transaction.on_commit(send)
    return notifications


def notify_rows(organization_id, *, kind: str, rows: list[tuple]) -> list[int]:
    """notify_many for many at once without building model instances: `rows` of (user id, lead id or None,
    message), written by one INSERT … SELECT FROM unnest; each person gets one email listing theirs once committed.
    Returns the notification ids."""
    if not rows:
        return []
    user_ids, lead_ids, messages = (list(column) for column in zip(*rows, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO routing_notification (organization_id, user_id, lead_id, kind, message, created_at)"
            " SELECT %s, u, l, %s, left(m, 300), %s FROM unnest(%s::int[], %s::uuid[], %s::text[]) AS r(u, l, m)"
            " RETURNING id", [organization_id, kind, timezone.now(), user_ids, lead_ids, messages])
        notification_ids = [row[0] for row in cursor.fetchall()]

    def send():
        from ..tasks import email_notifications

        email_notifications.delay(notification_ids, organization_id=str(organization_id))

    transaction.on_commit(send)
    return notification_ids


def notify(lead, *, user_id, kind: str, team=None) -> Notification:
    return notify_many(lead.organization_id, [Notice(lead=lead, user_id=user_id, kind=kind, team=team)])[0]


def mark_read(organization_id, user, notification_ids=None) -> int:
    """Mark the user's unread notifications as read (only the given ones, when ids are given)."""
    unread = Notification.objects.for_org(organization_id).filter(user=user, read_at__isnull=True)
    if notification_ids is not None:
        unread = unread.filter(pk__in=list(notification_ids))
    return unread.update(read_at=timezone.now())
