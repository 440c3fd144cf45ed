"""Celery tasks of distribution (thin: the work is in services). Routed to the `routing` queue."""

import smtplib
from datetime import timedelta
from itertools import groupby
from operator import attrgetter

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import OperationalError, transaction
from django.urls import reverse
from django.utils import timezone

from leadcrm import rls
from leadcrm.links import site_url
from leadcrm.mailheaders import header_text

from . import services
from .models import Notification, NotificationKind

RETRY_ON_DATABASE_ERRORS = {"autoretry_for": (OperationalError,), "retry_backoff": 1, "max_retries": 5}


@shared_task(name="routing.tasks.route_leads", acks_late=True, **RETRY_ON_DATABASE_ERRORS)
def route_leads(organization_id, lead_ids):
    """Route new MQLs. Idempotent: a lead already owned or pooled is left as it is."""
    return services.route_leads(organization_id=organization_id, lead_ids=lead_ids, only_unowned=True)


def enqueue_unrouted_mqls() -> int:
    """A sweeper (leadcrm.claims): route MQLs whose routing task was lost. A lead routed meanwhile is left as it is
    (only_unowned)."""
    from .handlers import ROUTING_BATCH

    found = services.unrouted_mqls(older_than=timedelta(seconds=settings.SWEEP_AFTER_SECONDS))  # each org in turn
    for organization_id, lead_ids in found.items():
        for start in range(0, len(lead_ids), ROUTING_BATCH):
            route_leads.delay(str(organization_id), [str(pk) for pk in lead_ids[start:start + ROUTING_BATCH]])
    return sum(map(len, found.values()))


@shared_task(name="routing.tasks.check_deadlines", acks_late=True, **RETRY_ON_DATABASE_ERRORS)
def check_deadlines():
    """Beat: re-assign or escalate leads whose first-touch deadline passed."""
    return services.check_deadlines()  # finds due leads in every org, then handles each under its own org


EMAIL_RETRIES = {"acks_late": True, "autoretry_for": (OSError, smtplib.SMTPException), "retry_backoff": 5,
                 "max_retries": 6}


def _message(notifications: list[Notification]) -> tuple[str, str]:
    """The subject and body of one email telling one person about their notifications."""

    def link(notification):
        return site_url(reverse("leads:detail", args=[notification.lead_id]) if notification.lead_id
                        else reverse("queue"))

    if len(notifications) == 1:
        [notification] = notifications
        # The message names the lead, whose name may hold a line break: the subject takes it as one line.
        return header_text(notification.message, 150), f"{notification.message}\n\nOpen it: {link(notification)}\n"
    assigned = all(notification.kind == NotificationKind.ASSIGNED for notification in notifications)
    due = all(notification.kind == NotificationKind.TASK_DUE for notification in notifications)
    subject = (f"{len(notifications)} new leads for you" if assigned else f"{len(notifications)} tasks due" if due
               else f"{len(notifications)} lead notifications")
    lines = [f"- {header_text(notification.message, 300)}\n  {link(notification)}" for notification in notifications]
    return subject, "\n".join(lines) + f"\n\nYour queue: {site_url(reverse('queue'))}\n"


@shared_task(name="routing.tasks.email_notifications", **EMAIL_RETRIES)
def email_notifications(notification_ids, organization_id):
    """Email each person their notifications among `notification_ids` in one message, at most once: the unsent ones
    are stamped and committed before any message goes, so a worker killed mid-send loses its messages rather than
    sending them twice; a message that fails is un-stamped with those after it, for the retry. Returns how many
    notifications were emailed."""
    with rls.scope(organization_id):
        with transaction.atomic():
            unsent = list(Notification.objects.filter(pk__in=list(notification_ids), emailed_at__isnull=True,
                                                      user__email__gt="")
                          .select_for_update(of=("self",)).select_related("user").order_by("user_id", "pk"))
            if unsent:
                Notification.objects.filter(pk__in=[n.pk for n in unsent]).update(emailed_at=timezone.now())
        emailed = 0
        for _user_id, mine in groupby(unsent, key=attrgetter("user_id")):
            mine = list(mine)
            subject, body = _message(mine)
            try:
                send_mail(subject=subject, message=body, from_email=None, recipient_list=[mine[0].user.email])
            except EMAIL_RETRIES["autoretry_for"]:
                Notification.objects.filter(pk__in=[n.pk for n in unsent[emailed:]]).update(emailed_at=None)
                raise
            emailed += len(mine)
    return emailed


@shared_task(name="routing.tasks.email_notification", **EMAIL_RETRIES)
def email_notification(notification_id, organization_id=None):
    """One notification's email (as queued by older releases): True when it was sent now."""
    if organization_id is None:
        found = rls.lookup_ids("routing_notification_organization", int(notification_id))
        if not found:
            return False
        organization_id = found[0]
    return email_notifications.run([notification_id], organization_id) == 1
