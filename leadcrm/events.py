"""A small in-process domain event dispatcher.

Services emit events after their transaction commits; other apps subscribe in AppConfig.ready(),
so `leads` never imports the stages built on it. Handlers take ids and usually enqueue a task.
"""

import logging
from collections import defaultdict
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)

LEAD_CAPTURED = "lead.captured"  # organization_id, lead_id, created (bool), channel
LEAD_UPDATED = "lead.updated"  # organization_id, lead_id, fields, actor_id
ACTIVITY_RECORDED = "activity.recorded"  # organization_id, lead_id, activity_id, type
LEADS_IMPORTED = "leads.imported"  # organization_id, import_id (set-based: consumers re-process in bulk)
LEAD_STAGE_CHANGED = "lead.stage_changed"  # organization_id, lead_id, from_stage, to_stage
LEAD_MQL = "lead.mql"  # organization_id, lead_ids (reached the MQL threshold, or moved there by hand)
LEAD_CONVERTED = "lead.converted"  # organization_id, lead_id, account_id, deal_id
DEAL_WON = "deal.won"  # organization_id, deal_id, lead_id
DEAL_LOST = "deal.lost"  # organization_id, deal_id, lead_id
LEADS_MERGED = "leads.merged"  # organization_id, keep_id, merged_ids; emit_now, before the merged leads go
LEAD_ASSIGNED = "lead.assigned"  # organization_id, lead_id, owner_id (None: to a pool), assignment_id, reason
MEMBER_ADDED = "member.added"  # organization_id, user_id, role; emit_now
EMAIL_UNSUBSCRIBED = "email.unsubscribed"  # organization_id, lead_id, how, message_id (None: no message named)
ORG_CREATED = "organization.created"  # organization_id; delivered inside the creating transaction (emit_now)

_handlers: dict[str, list[Callable]] = defaultdict(list)


def subscribe(event: str, handler: Callable) -> None:
    if handler not in _handlers[event]:
        _handlers[event].append(handler)


def emit_now(event: str, **payload) -> None:
    """Deliver at once, inside the caller's transaction, for consumers whose writes belong to it.
    A failing handler fails the caller."""
    for handler in list(_handlers[event]):
        handler(**payload)


def emit(event: str, **payload) -> None:
    """Deliver to every subscriber once the surrounding transaction commits (at once outside one)."""

    def deliver():
        for handler in list(_handlers[event]):
            try:
                handler(**payload)
            except Exception:  # one consumer's failure must not break capture or the others
                logger.exception("handler %r failed for %s", handler, event)

    transaction.on_commit(deliver)
