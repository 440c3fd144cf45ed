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
LEAD_UPDATED = "lead.updated"  # organization_id, lead_id, fields
ACTIVITY_RECORDED = "activity.recorded"  # organization_id, lead_id, activity_id, type
LEADS_IMPORTED = "leads.imported"  # organization_id, import_id (set-based: consumers re-process in bulk)

_handlers: dict[str, list[Callable]] = defaultdict(list)


def subscribe(event: str, handler: Callable) -> None:
    if handler not in _handlers[event]:
        _handlers[event].append(handler)


def emit(event: str, **payload) -> None:
    """Deliver to every subscriber once the surrounding transaction commits (at once outside one)."""

    def deliver():
        for handler in list(_handlers[event]):
            try:
                handler(**payload)
            except Exception:  # one consumer's failure must not break capture or the others
                logger.exception("handler %r failed for %s", handler, event)

    transaction.on_commit(deliver)
