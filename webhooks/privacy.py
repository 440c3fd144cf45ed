"""Webhooks' part of a privacy request: the deliveries about the lead, whose bodies hold the lead as it was."""

from leadcrm import privacy

from .models import Delivery

ERASED_BODY = {"erased": True}


def export(organization_id, lead_id) -> list:
    return list(Delivery.objects.for_org(organization_id).filter(lead_id=lead_id).order_by("created_at")
                .values("event_type", "created_at", "status", "endpoint__url", "payload"))


def erase(organization_id, lead_id) -> None:
    """The bodies go (a replay would send them again); the rows stay, so the delivery history still adds up."""
    Delivery.objects.for_org(organization_id).filter(lead_id=lead_id).update(payload=ERASED_BODY)


def register() -> None:
    privacy.register("webhook_deliveries", exporter=export, eraser=erase)
