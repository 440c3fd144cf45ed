"""First-touch deadlines: a beat task finds running clocks that ran out and re-assigns or escalates the lead."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from leadcrm import claims, rls
from leadcrm.models import Membership, Role
from leads.models import Activity, Lead

from ..models import AssignmentReason, LeadRouting, NotificationKind, Strategy
from .assign import TOUCH_TYPES, TOUCHED_STAGES, pick, previous_reps, record

BATCH = 500


def _first_touch(lead, since):
    """When the lead was first touched since `since`, or None."""
    touched_at = (Activity.objects.for_org(lead.organization_id)
                  .filter(lead=lead, type__in=TOUCH_TYPES, occurred_at__gte=since)
                  .order_by("occurred_at").values_list("occurred_at", flat=True).first())
    if touched_at is None and lead.lifecycle_stage in TOUCHED_STAGES:
        return since
    return touched_at


def _escalation_target(lead, routing):
    if routing.team is not None and routing.team.manager_id:
        return routing.team.manager_id
    for role in (Role.MANAGER, Role.ADMIN):
        user_id = (Membership.objects.filter(organization_id=lead.organization_id, role=role)
                   .order_by("created_at").values_list("user_id", flat=True).first())
        if user_id:
            return user_id
    return None


def _escalate(lead, routing, now) -> str:
    manager_id = _escalation_target(lead, routing)
    LeadRouting.objects.filter(pk=routing.pk).update(escalated_at=now, sla_due_at=None)
    if manager_id is not None:
        record(lead, rep_id=manager_id, reason=AssignmentReason.ESCALATION, now=now, restart_sla=False,
               notification_kind=NotificationKind.ESCALATED)
    return "escalated"


def handle_missed_deadline(lead, routing, now) -> str:
    """One lead whose clock ran out (both rows locked): touched after all, re-assigned, or escalated."""
    touched_at = _first_touch(lead, routing.assigned_at or routing.sla_due_at)
    if touched_at is not None:
        LeadRouting.objects.filter(pk=routing.pk).update(first_touch_at=touched_at, sla_due_at=None)
        return "touched"
    rule = routing.rule
    if lead.owner_id is None:
        LeadRouting.objects.filter(pk=routing.pk).update(sla_due_at=None)
        return "unowned"
    out_of_turns = rule is None or not rule.active or routing.reassignments >= rule.max_reassignments
    if out_of_turns or rule.strategy == Strategy.REP:
        return _escalate(lead, routing, now)
    choice = pick(rule, lead=lead, now=now, exclude=previous_reps(lead), reason=AssignmentReason.SLA)
    if choice is None or choice.rep_id is None:  # nobody else in the team can take it
        return _escalate(lead, routing, now)
    record(lead, rep_id=choice.rep_id, reason=AssignmentReason.SLA, pick=choice, now=now,
           counts_as_reassignment=True)
    return "reassigned"


def check_deadlines(*, now=None, limit=BATCH) -> dict[str, int]:
    """Process up to `limit` missed deadlines, org by org, the most overdue first. Each org's are claimed in one
    statement (SKIP LOCKED, leased for ROUTING_SLA_LEASE_SECONDS), so overlapping ticks on several hosts share the
    work instead of doubling it, and a tick that dies leaves its leads to a later one; then each lead is handled in
    its own transaction."""
    now = now or timezone.now()
    lease = timedelta(seconds=settings.ROUTING_SLA_LEASE_SECONDS)
    outcomes: dict[str, int] = {}
    # The orgs with a missed deadline (a definer function: leadcrm/rls.py), then each org's clocks under its scope.
    for organization_id in rls.lookup_ids("routing_organizations_with_missed_deadlines", now):
        if limit <= 0:
            break
        with rls.scope(organization_id):
            claimed = claims.claim(LeadRouting.objects.for_org(organization_id), due="sla_due_at", limit=limit,
                                   now=now, lease=lease)
            limit -= len(claimed)
            for row in claimed:
                outcome = _handle_claimed(organization_id, row, leased_until=now + lease, now=now)
                if outcome:
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def _handle_claimed(organization_id, row, *, leased_until, now) -> str | None:
    """One claimed clock, under its lead's lock; left alone when touched or re-assigned since the claim."""
    with transaction.atomic():
        lead = Lead.objects.for_org(organization_id).select_for_update(of=("self",)).filter(routing__pk=row.pk).first()
        routing = (LeadRouting.objects.for_org(organization_id).select_related("rule", "team")
                   .filter(pk=row.pk, sla_due_at=leased_until).first())
        if lead is None or routing is None:
            return None
        routing.sla_due_at = row.due_at  # the deadline that was missed, not the lease
        return handle_missed_deadline(lead, routing, now)
