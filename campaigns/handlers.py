"""Reactions to other apps' domain events: leads join campaigns by UTM, and conversions mark memberships."""

from . import services
from .models import MemberSource


def joined_on_capture(*, organization_id, lead_id, channel=None, utm_campaign=None, **_):
    if utm_campaign == "":  # the lead names no campaign: nothing to join (None: an event that did not say)
        return
    source = MemberSource.FORM if channel == "form" else MemberSource.UTM
    services.join_by_utm(organization_id=organization_id, lead_id=lead_id, utm_campaign=utm_campaign, source=source)


def joined_on_import(*, organization_id, import_id, **_):
    services.join_imported(organization_id=organization_id, import_id=import_id)


def converted(*, organization_id, lead_id, **_):
    if lead_id is not None:
        services.mark_converted(organization_id=organization_id, lead_id=lead_id)
