"""Reactions to other apps' domain events: enrolment by stage or form, and exits."""

from leads.models import Activity, ActivityType

from . import services

CONSENT_FIELDS = {"unsubscribed", "bounced", "do_not_contact"}


def stage_changed(*, organization_id, lead_id, to_stage, **_):
    """Reaching an exit stage ends the lead's enrolments there; reaching an entry stage enrols it."""
    services.exit_on_stage(organization_id=organization_id, lead_id=lead_id, to_stage=to_stage)
    services.enroll_on_stage(organization_id=organization_id, lead_id=lead_id, to_stage=to_stage)


def form_submitted(*, organization_id, lead_id, activity_id=None, type=None, **_):
    if type != ActivityType.FORM_SUBMISSION or activity_id is None:
        return
    form_id = (Activity.objects.for_org(organization_id).filter(pk=activity_id)
               .values_list("properties__form_id", flat=True).first())
    if form_id:
        services.enroll_on_form(organization_id=organization_id, lead_id=lead_id, form_id=form_id)


def lead_updated(*, organization_id, lead_id, fields, **_):
    if CONSENT_FIELDS & set(fields):
        services.exit_if_unreachable(organization_id=organization_id, lead_id=lead_id)
