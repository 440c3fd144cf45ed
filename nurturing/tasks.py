"""Celery tasks of nurturing (thin: the work is in services). Routed to the `nurturing` queue."""

from celery import shared_task
from django.core.mail import send_mail
from django.db import OperationalError
from django.urls import reverse

from leadcrm.links import site_url
from leadcrm.mailheaders import header_text
from leads.models import Lead

from . import services
from .models import Sequence

RETRY_ON_DATABASE_ERRORS = {"autoretry_for": (OperationalError,), "retry_backoff": 1, "max_retries": 5}


@shared_task(name="nurturing.tasks.tick", acks_late=True)
def tick():
    """Beat (every NURTURE_TICK_SECONDS): run due sequence steps and send their email. Overlapping ticks share
    the work (SKIP LOCKED) and never send a message twice."""
    return services.tick()  # finds due work in every org, then runs each org's under its own org


@shared_task(name="nurturing.tasks.notify_owner", acks_late=True, **RETRY_ON_DATABASE_ERRORS)
def notify_owner(organization_id, lead_id, sequence_id, message=""):
    """A sequence's "notify the owner" step: an email to the lead's owner with a link to the lead."""
    lead = Lead.objects.for_org(organization_id).select_related("owner").filter(pk=lead_id).first()
    sequence = Sequence.objects.for_org(organization_id).filter(pk=sequence_id).first()
    if lead is None or sequence is None or lead.owner is None or not lead.owner.email:
        return False
    link = site_url(reverse("leads:detail", args=[lead.pk]))
    text = message or f"{lead} reached a step of the sequence “{sequence.name}” that asks you to follow up."
    send_mail(subject=header_text(f"Follow up: {lead}", 150), message=f"{text}\n\nOpen the lead: {link}\n",
              from_email=None, recipient_list=[lead.owner.email])
    return True
