"""Reactions to domain events of other apps: each enqueues scoring work, or sets up a new org."""

from . import services, tasks


def score_after_activities(*, organization_id, payloads):
    """Activities delivered together (many captures, when the relay catches up) are scored by one task."""
    lead_ids = list(dict.fromkeys(str(payload["lead_id"]) for payload in payloads))
    if len(lead_ids) == 1:
        tasks.score_lead.delay(str(organization_id), lead_ids[0])
    else:
        tasks.score_leads.delay(str(organization_id), lead_ids)


def score_after_update(*, organization_id, lead_id, bulk=False, **_):
    if bulk:  # one of a bulk edit's leads: the leads.changed event that follows re-scores them all in one statement
        return
    tasks.score_lead.delay(str(organization_id), str(lead_id))


def score_after_bulk_change(*, organization_id, lead_ids, **_):
    tasks.score_leads.delay(str(organization_id), [str(lead_id) for lead_id in lead_ids])


def rescore_after_import(*, organization_id, **_):
    services.request_recalculation(organization_id=organization_id)


def rules_using_activity_type(organization_id, key) -> str:
    """For leads' check before an org's own activity type is deleted."""
    from .models import ScoringRule

    used = ScoringRule.objects.for_org(organization_id).filter(condition__activity_type=key).exists()
    return "scoring rules" if used else ""


def set_up_scoring(*, organization_id):
    services.setup_organization(organization_id=organization_id)
