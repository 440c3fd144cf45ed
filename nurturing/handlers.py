"""Reactions to other apps' domain events: enrolment by stage or form, and exits.

Each is safe to run twice (the outbox retries a handler that failed): exits only touch running enrolments, and
an enrolment made at or after the fact that caused it is not made again.
"""

from collections import defaultdict
from datetime import datetime
from uuid import UUID

from leads.models import Activity, ActivityType, Lead

from . import services

CONSENT_FIELDS = {"unsubscribed", "bounced", "do_not_contact"}


def stage_changed(*, organization_id, payloads):
    """Reaching an exit stage ends the leads' enrolments there; reaching an entry stage enrols them. The stage
    changes delivered together cost one statement per stage when no sequence starts there (the usual case)."""
    leads_by_stage = defaultdict(list)
    for payload in payloads:
        leads_by_stage[payload["to_stage"]].append(payload["lead_id"])
    for to_stage, lead_ids in leads_by_stage.items():
        services.exit_on_stage(organization_id=organization_id, lead_ids=lead_ids, to_stage=to_stage)
        if not services.stage_sequences(organization_id, to_stage).exists():
            continue
        entered = dict(Lead.objects.for_org(organization_id).filter(pk__in=lead_ids)
                       .values_list("pk", "stage_entered_at"))
        for lead_id in lead_ids:
            services.enroll_on_stage(organization_id=organization_id, lead_id=lead_id, to_stage=to_stage,
                                     since=_entered(entered.get(UUID(str(lead_id))), to_stage))


def _entered(stage_entered_at, stage: str) -> datetime | None:
    try:
        return datetime.fromisoformat((stage_entered_at or {})[stage])
    except (KeyError, TypeError, ValueError):
        return None


def form_submitted(*, organization_id, lead_id, activity_id=None, type=None, **_):
    if type != ActivityType.FORM_SUBMISSION or activity_id is None:
        return
    activity = (Activity.objects.for_org(organization_id).filter(pk=activity_id)
                .values_list("properties__form_id", "occurred_at").first())
    if activity and activity[0]:
        services.enroll_on_form(organization_id=organization_id, lead_id=lead_id, form_id=activity[0],
                                since=activity[1])


def lead_updated(*, organization_id, lead_id, fields, **_):
    if CONSENT_FIELDS & set(fields):
        services.exit_if_unreachable(organization_id=organization_id, lead_id=lead_id)
