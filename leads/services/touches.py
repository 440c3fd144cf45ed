"""Logging a touch by hand (a call, an email, a meeting or a note, with how it went) on a lead's timeline."""

from django.db import transaction

from leadcrm.errors import Invalid

from .. import touches
from ..models import Activity, Lead
from .capture import record_activity
from .privacy import LeadErased


def log_touch(*, organization_id, lead: Lead, type: str, outcome: str = "", note: str = "", occurred_at=None,
              actor=None) -> Activity:
    """Record the touch as an activity (its outcome and note in `properties`), at `occurred_at` or now. The
    activity event follows as for any activity: scoring counts it and the first touch stops the SLA clock."""
    note = (note or "").strip()
    errors = touches.problems(type=type, outcome=outcome, note=note, occurred_at=occurred_at)
    if errors:
        raise Invalid(errors=errors)
    if lead.erased_at is not None:  # a note about an erased person would hold their data again
        raise LeadErased("This lead was erased on request; nothing more is logged about it.")
    properties = {}
    if outcome:
        properties["outcome"] = outcome
    if note:
        properties["note"] = note
    with transaction.atomic():
        return record_activity(organization_id=organization_id, lead=lead, type=type, properties=properties,
                               occurred_at=occurred_at, actor=actor)
