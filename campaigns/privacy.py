"""Campaigns' part of a privacy request: the lead's memberships (kept when erased: they hold nothing personal
and campaign reports count them)."""

from leadcrm import privacy

from .models import CampaignMember


def export(organization_id, lead_id) -> list:
    return list(CampaignMember.objects.for_org(organization_id).filter(lead_id=lead_id).order_by("joined_at")
                .values("campaign__name", "status", "source", "joined_at"))


def register() -> None:
    privacy.register("campaign_memberships", exporter=export)
