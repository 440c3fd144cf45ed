"""Everything that changes distribution state; import it from here."""

from .assign import (
    OPEN_STAGES,
    REP_ROLES,
    TOUCH_TYPES,
    TOUCHED_STAGES,
    ClaimRefused,
    claim,
    ensure_profiles,
    open_lead_counts,
    reassign,
    record_manual_owner_change,
    record_touch,
    rep_profiles_for,
    route_batch,
    route_lead,
    route_leads,
)
from .config import (
    ConfigError,
    clean_rep,
    clean_rule,
    clean_team,
    delete_rule,
    delete_team,
    move_rule,
    save_rule,
    save_team,
    set_available,
    update_rep,
)
from .notify import mark_read, notify
from .sla import check_deadlines
from .sweep import unrouted_mqls

__all__ = [
    "OPEN_STAGES", "REP_ROLES", "TOUCH_TYPES", "TOUCHED_STAGES", "ClaimRefused", "ConfigError", "check_deadlines",
    "claim", "clean_rep", "clean_rule", "clean_team", "delete_rule", "delete_team", "ensure_profiles", "mark_read",
    "move_rule", "notify", "open_lead_counts", "reassign", "rep_profiles_for", "record_manual_owner_change",
    "record_touch", "route_batch", "route_lead", "route_leads", "save_rule", "save_team", "set_available",
    "unrouted_mqls", "update_rep",
]
