"""Telling people about leads: an in-app notification (the queue badge) and an email sent by a task."""

from django.db import transaction
from django.utils import timezone

from ..models import Notification, NotificationKind

MESSAGES = {
    NotificationKind.ASSIGNED: "New lead for you: {lead}",
    NotificationKind.POOLED: "No rep of {team} could take {lead}: it waits in the pool",
    NotificationKind.ESCALATED: "Escalated to you after missed first-touch deadlines: {lead}",
}


def notify(lead, *, user_id, kind: str, team=None) -> Notification:
    message = MESSAGES[kind].format(lead=str(lead)[:200], team=team.name if team else "the team")
    notification = Notification.objects.create(organization_id=lead.organization_id, user_id=user_id, lead=lead,
                                               kind=kind, message=message)

    def send():
        from ..tasks import email_notification  # tasks import these services

        email_notification.delay(notification.pk, organization_id=str(notification.organization_id))

    transaction.on_commit(send)
    return notification


def mark_read(organization_id, user, notification_ids=None) -> int:
    """Mark the user's unread notifications as read (only the given ones, when ids are given)."""
    unread = Notification.objects.for_org(organization_id).filter(user=user, read_at__isnull=True)
    if notification_ids is not None:
        unread = unread.filter(pk__in=list(notification_ids))
    return unread.update(read_at=timezone.now())
