"""Distribution's part of a privacy request: assignments and routing state (kept: speed-to-lead reports count
them) and the reps' notifications, whose text names the lead (erased)."""

from leadcrm import privacy

from .models import Assignment, LeadRouting, Notification

ERASED_NOTICE = "A lead (details erased on request)"


def export(organization_id, lead_id) -> dict:
    assignments = (Assignment.objects.for_org(organization_id).filter(lead_id=lead_id).order_by("created_at")
                   .values("created_at", "rep__email", "previous_rep__email", "team__name", "rule_name", "strategy",
                           "reason", "sla_due_at"))
    routing = (LeadRouting.objects.for_org(organization_id).filter(lead_id=lead_id)
               .values("team__name", "pooled", "mql_at", "first_assigned_at", "assigned_at", "first_touch_at",
                       "sla_due_at", "reassignments", "escalated_at").first())
    notifications = (Notification.objects.for_org(organization_id).filter(lead_id=lead_id).order_by("created_at")
                     .values("created_at", "user__email", "kind", "message", "read_at"))
    return {"assignments": list(assignments), "routing": routing, "notifications": list(notifications)}


def erase(organization_id, lead_id) -> None:
    Notification.objects.for_org(organization_id).filter(lead_id=lead_id).update(message=ERASED_NOTICE)


def register() -> None:
    privacy.register("routing", exporter=export, eraser=erase)
