"""Tracking: signed tokens in email links, and what opens, clicks, unsubscribes, bounces and complaints do.

A token is the message id signed with a salt (django.core.signing): a message id is random, and without the
secret key nobody can make a token for one, so an altered or forged token names no message (a 404).
Every event stamps the message (the first time) and lands on the lead's timeline as an activity, which scoring
and sequence branches read.
"""

import base64
import uuid

from django.core import signing
from django.db import transaction
from django.utils import timezone

from leadcrm import events
from leadcrm.errors import NotFound
from leads.models import ActivityType, Lead
from leads.services import normalize_email, record_activity, update_lead

from ..models import Message, MessageStatus
from .sequences import exit_enrollments

SALT = "nurturing.tracking"
_SIGNER = signing.Signer(salt=SALT, sep=".")


def make_token(message_id) -> str:
    raw = base64.urlsafe_b64encode(uuid.UUID(str(message_id)).bytes).rstrip(b"=").decode()
    return _SIGNER.sign(raw)


def read_token(token: str) -> uuid.UUID | None:
    """The message id in a token, or None for anything not signed by us."""
    if not isinstance(token, str) or len(token) > 200:
        return None
    try:
        raw = _SIGNER.unsign(token)
        return uuid.UUID(bytes=base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (signing.BadSignature, ValueError, TypeError):
        return None


def message_for(token: str) -> Message | None:
    message_id = read_token(token)
    if message_id is None:
        return None
    return (Message.objects.select_related("lead", "organization").filter(pk=message_id)
            .exclude(status=MessageStatus.SKIPPED).first())


def _stamp(message: Message, field: str, now) -> bool:
    """Set the message's first-time stamp; True when this was the first."""
    stamped = Message.objects.filter(pk=message.pk, **{f"{field}__isnull": True}).update(**{field: now})
    if stamped:
        setattr(message, field, now)
    return bool(stamped)


def _properties(message: Message, **extra) -> dict:
    return {"message": str(message.pk), "subject": message.subject, **extra}


def record_open(message: Message) -> bool:
    """The pixel was loaded. Only the first open is an activity (mail clients and proxies reload images)."""
    now = timezone.now()
    with transaction.atomic():
        if not _stamp(message, "opened_at", now):
            return False
        record_activity(organization_id=message.organization_id, lead=message.lead, type=ActivityType.EMAIL_OPEN,
                        properties=_properties(message), occurred_at=now)
    return True


def record_click(message: Message, index: int) -> str | None:
    """The URL behind the message's n-th tracked link (None when it has no such link), recording the click (and
    an open, for mail clients that block images)."""
    links = message.links if isinstance(message.links, list) else []
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(links):
        return None
    url = links[index]
    now = timezone.now()
    with transaction.atomic():
        if _stamp(message, "opened_at", now):
            record_activity(organization_id=message.organization_id, lead=message.lead,
                            type=ActivityType.EMAIL_OPEN, properties=_properties(message, implied_by="click"),
                            occurred_at=now)
        _stamp(message, "clicked_at", now)
        record_activity(organization_id=message.organization_id, lead=message.lead, type=ActivityType.EMAIL_CLICK,
                        properties=_properties(message, url=url), occurred_at=now)
    return url


def unsubscribe(message: Message, *, how: str = "link") -> bool:
    """The lead asked to get no more email: marked unsubscribed and taken out of every sequence. True the first
    time; repeating it changes nothing."""
    now = timezone.now()
    with transaction.atomic():
        lead = Lead.objects.for_org(message.organization_id).select_for_update().get(pk=message.lead_id)
        _stamp(message, "unsubscribed_at", now)
        if lead.unsubscribed:
            return False
        update_lead(lead=lead, data={"unsubscribed": True})
        record_activity(organization_id=message.organization_id, lead=lead, type=ActivityType.UNSUBSCRIBE,
                        properties=_properties(message, how=how), occurred_at=now)
        events.emit(events.EMAIL_UNSUBSCRIBED, organization_id=message.organization_id, lead_id=lead.pk, how=how,
                    message_id=message.pk)
        exit_enrollments(organization_id=message.organization_id, lead_ids=[lead.pk], reason="unsubscribed", now=now)
    return True


class UnknownRecipient(NotFound):
    """A bounce or complaint naming a message or email the organization never sent to."""

    default_code = "unknown_recipient"


EMAIL_EVENTS = ("bounce", "complaint")


def record_email_event(*, organization_id, event: str, message_id=None, email: str = "") -> Lead:
    """A bounce (the address does not take mail: the lead is marked bounced) or a complaint (marked as spam: the
    lead is unsubscribed and must not be contacted), from the mail provider's webhook. Names the message sent, or
    the recipient's email (then the latest email sent to it)."""
    messages = Message.objects.for_org(organization_id).exclude(status=MessageStatus.SKIPPED)
    if message_id is not None:
        message = messages.filter(pk=message_id).select_related("lead").first()
    else:
        email = normalize_email(email)
        message = (messages.filter(lead__email=email).select_related("lead").order_by("-created_at").first()
                   if email else None)
        if message is None and email:
            lead = Lead.objects.for_org(organization_id).filter(email=email).first()
            if lead is not None:
                return _mark(organization_id, lead, None, event)
    if message is None:
        raise UnknownRecipient("No email to this recipient was sent by this organization.")
    return _mark(organization_id, message.lead, message, event)


def _mark(organization_id, lead: Lead, message: Message | None, event: str) -> Lead:
    now = timezone.now()
    with transaction.atomic():
        lead = Lead.objects.for_org(organization_id).select_for_update().get(pk=lead.pk)
        properties = _properties(message) if message is not None else {}
        if event == "bounce":
            if message is not None:
                _stamp(message, "bounced_at", now)
            if not lead.bounced:
                update_lead(lead=lead, data={"bounced": True})
            record_activity(organization_id=organization_id, lead=lead, type=ActivityType.EMAIL_BOUNCE,
                            properties=properties, occurred_at=now)
            reason = "bounced"
        else:
            if message is not None:
                _stamp(message, "unsubscribed_at", now)
            newly = not lead.unsubscribed
            update_lead(lead=lead, data={"unsubscribed": True, "do_not_contact": True})
            if newly:
                events.emit(events.EMAIL_UNSUBSCRIBED, organization_id=organization_id, lead_id=lead.pk,
                            how="complaint", message_id=message.pk if message is not None else None)
            record_activity(organization_id=organization_id, lead=lead, type=ActivityType.UNSUBSCRIBE,
                            properties={**properties, "how": "complaint"}, occurred_at=now)
            reason = "complained"
        exit_enrollments(organization_id=organization_id, lead_ids=[lead.pk], reason=reason, now=now)
    return lead
