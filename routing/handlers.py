"""Reactions to other apps' domain events."""

from leads.models import LifecycleStage

from . import services, tasks

ROUTING_BATCH = 500  # leads per routing task, so one big re-score never makes one long task


def route_new_mqls(*, organization_id, payloads):
    """The MQLs of the events delivered together, routed in tasks of up to ROUTING_BATCH leads."""
    lead_ids = list(dict.fromkeys(str(lead_id) for payload in payloads for lead_id in payload["lead_ids"]))
    for start in range(0, len(lead_ids), ROUTING_BATCH):
        tasks.route_leads.delay(str(organization_id), lead_ids[start:start + ROUTING_BATCH])


def touch_on_activity(*, organization_id, lead_id, type, **_):
    if type in services.TOUCH_TYPES:
        services.record_touch(organization_id=organization_id, lead_id=lead_id)


def touch_on_stage(*, organization_id, lead_id, to_stage, **_):
    if to_stage in services.TOUCHED_STAGES and to_stage != LifecycleStage.RECYCLED:
        services.record_touch(organization_id=organization_id, lead_id=lead_id)


def owner_edited(*, organization_id, lead_id, fields, actor_id=None, api_key="", **_):
    if "owner" in fields:
        services.record_manual_owner_change(organization_id=organization_id, lead_id=lead_id, actor_id=actor_id,
                                            api_key=api_key)


def profile_for_member(*, organization_id, role, **_):
    if role in services.REP_ROLES:
        services.ensure_profiles(organization_id)
