"""Celery tasks of distribution (thin: the work is in services). Routed to the `routing` queue."""

import smtplib
from datetime import timedelta

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
from .models import Notification

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


@shared_task(name="routing.tasks.email_notification", acks_late=True, autoretry_for=(OSError, smtplib.SMTPException),
             retry_backoff=5, max_retries=6)
def email_notification(notification_id, organization_id=None):
    """Email a notification once: the row is locked while sending and stamped when sent."""
    if organization_id is None:  # queued by an older release
        found = rls.lookup_ids("routing_notification_organization", int(notification_id))
        if not found:
            return False
        organization_id = found[0]
    with rls.scope(organization_id), transaction.atomic():
        notification = (Notification.objects.select_for_update(of=("self",)).select_related("user", "lead")
                        .filter(pk=notification_id, emailed_at__isnull=True).first())
        if notification is None or not notification.user.email:
            return False
        link = site_url(
            reverse("leads:detail", args=[notification.lead_id]) if notification.lead_id else reverse("queue"))
        # The message names the lead, whose name may hold a line break: the subject takes it as one line.
        send_mail(subject=header_text(notification.message, 150),
                  message=f"{notification.message}\n\nOpen it: {link}\n", from_email=None,
                  recipient_list=[notification.user.email])
        notification.emailed_at = timezone.now()
        notification.save(update_fields=["emailed_at"])
    return True
