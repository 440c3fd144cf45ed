"""Reactions to other apps' domain events: enrolment by stage or form, and exits.

Each is safe to run twice (the outbox retries a handler that failed): exits only touch running enrolments, and
an enrolment made at or after the fact that caused it is not made again.
"""

from datetime import datetime

from leads.models import Activity, ActivityType, Lead

from . import services

CONSENT_FIELDS = {"unsubscribed", "bounced", "do_not_contact"}


def stage_changed(*, organization_id, lead_id, to_stage, **_):
    """Reaching an exit stage ends the lead's enrolments there; reaching an entry stage enrols it."""
    services.exit_on_stage(organization_id=organization_id, lead_id=lead_id, to_stage=to_stage)
    entered = (Lead.objects.for_org(organization_id).filter(pk=lead_id).values_list("stage_entered_at", flat=True)
               .first() or {}).get(to_stage)
    try:
        since = datetime.fromisoformat(entered) if entered else None
    except (TypeError, ValueError):
        since = None
    services.enroll_on_stage(organization_id=organization_id, lead_id=lead_id, to_stage=to_stage, since=since)


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
