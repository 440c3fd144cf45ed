"""Lifecycle stage moves (checked against models.ALLOWED_MOVES), qualification and reasons."""

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from leadcrm import audit, events
from leadcrm.errors import Conflict

from ..models import (
    ALLOWED_MOVES,
    BANT_FIELDS,
    STAGES_WITH_REASON,
    Activity,
    ActivityType,
    Lead,
    LifecycleStage,
    QualificationSettings,
    Reason,
    ReasonKind,
)

# Stages from which reaching the MQL threshold promotes a lead (the hand-off never moves one backwards).
MQL_FROM_STAGES = tuple(stage for stage, moves in ALLOWED_MOVES.items() if LifecycleStage.MQL in moves)

DEFAULT_REASONS = {
    ReasonKind.DISQUALIFIED: ["Not a fit", "No budget", "Competitor", "Student or job seeker", "Invalid contact"],
    ReasonKind.RECYCLED: ["Not ready to buy yet", "Timing: ask again later", "No response from sales"],
    ReasonKind.LOST: ["Price", "Lost to a competitor", "No decision", "Timing", "Missing feature"],
}


class StageMoveRefused(Conflict):
    """A move the lifecycle does not allow, or one missing what it needs; the message says which."""

    default_code = "stage_not_allowed"


def set_up_organization(*, organization_id) -> None:
    """Default reasons and qualification settings of a new org (idempotent)."""
    QualificationSettings.objects.get_or_create(organization_id=organization_id)
    Reason.objects.bulk_create(
        [Reason(organization_id=organization_id, kind=kind, label=label)
         for kind, labels in DEFAULT_REASONS.items() for label in labels],
        ignore_conflicts=True,
    )


def reasons(organization_id, kind: str) -> list[str]:
    return list(Reason.objects.for_org(organization_id).filter(kind=kind, active=True).values_list("label",
                                                                                                    flat=True))


def required_bant(organization_id) -> list[str]:
    settings = QualificationSettings.objects.for_org(organization_id).first()
    return list(settings.bant_required_for_sql) if settings else []


def _label(stage) -> str:
    return LifecycleStage(stage).label


def check_move(lead: Lead, to_stage: str, reason: str = "") -> str:
    """The reason to record, or StageMoveRefused saying why the move is not allowed and what is."""
    if to_stage not in LifecycleStage.values:
        raise StageMoveRefused(f"Unknown stage {to_stage!r}; use one of {', '.join(LifecycleStage.values)}.")
    allowed = ALLOWED_MOVES[lead.lifecycle_stage]
    if to_stage not in allowed:
        names = ", ".join(allowed) if allowed else "none"
        raise StageMoveRefused(
            f"A lead cannot move from {lead.lifecycle_stage} to {to_stage}. Allowed moves from "
            f"{lead.lifecycle_stage}: {names}.")
    reason = (reason or "").strip()
    if to_stage in STAGES_WITH_REASON:
        choices = reasons(lead.organization_id, to_stage)
        if reason not in choices:
            raise StageMoveRefused(f"Moving to {to_stage} needs a reason, one of: {'; '.join(choices)}.")
    if to_stage == LifecycleStage.SQL:
        missing = [field for field in required_bant(lead.organization_id) if not getattr(lead, field)]
        if missing:
            names = ", ".join(Lead._meta.get_field(field).verbose_name for field in missing)
            raise StageMoveRefused(f"Fill in {names} (BANT) before moving the lead to SQL.")
    return reason[:200]


def apply_move(*, lead: Lead, to_stage: str, reason: str, actor=None, properties: dict | None = None) -> Lead:
    """Record a checked move: stage, time entered, reason, a stage-change activity and the event."""
    now = timezone.now()
    previous = lead.lifecycle_stage
    lead.lifecycle_stage = to_stage
    lead.stage_entered_at = {**lead.stage_entered_at, to_stage: now.isoformat()}
    lead.stage_reason = reason if to_stage in STAGES_WITH_REASON else lead.stage_reason
    lead.save(update_fields=["lifecycle_stage", "stage_entered_at", "stage_reason", "updated_at"])
    Activity.objects.create(
        organization_id=lead.organization_id, lead=lead, type=ActivityType.STAGE_CHANGE,
        **audit.actor_fields(actor),
        occurred_at=now, properties={"from": previous, "to": to_stage, "reason": reason, **(properties or {})},
    )
    events.emit(events.LEAD_STAGE_CHANGED, organization_id=lead.organization_id, lead_id=lead.pk,
                from_stage=previous, to_stage=to_stage)
    if to_stage == LifecycleStage.MQL:  # made an MQL by hand: sales gets it as if it had scored its way there
        events.emit(events.LEAD_MQL, organization_id=lead.organization_id, lead_ids=[lead.pk])
    return lead


def move_stage(*, lead: Lead, to_stage: str, reason: str = "", actor=None) -> Lead:
    """Move a lead along the lifecycle; StageMoveRefused if that move is not allowed."""
    with transaction.atomic():
        lead = Lead.objects.for_org(lead.organization_id).select_for_update().get(pk=lead.pk)
        reason = check_move(lead, to_stage, reason)
        return apply_move(lead=lead, to_stage=to_stage, reason=reason, actor=actor)


def update_qualification(*, lead: Lead, data: dict, actor=None) -> Lead:
    """Save BANT answers (only BANT fields)."""
    changed = [field for field in BANT_FIELDS if field in data and getattr(lead, field) != data[field]]
    if changed:
        for field in changed:
            setattr(lead, field, data[field])
        lead.save(update_fields=[*changed, "updated_at"])
        events.emit(events.LEAD_UPDATED, organization_id=lead.organization_id, lead_id=lead.pk, fields=changed)
    return lead


def promote_to_mql(*, organization_id, leads: Q, reason: str) -> list:
    """Move the org's leads matching `leads` that are not yet past MQL to stage MQL, set-based, each with a
    stage-change activity saying why. Returns the ids moved. Never moves a lead backwards."""
    now = timezone.now()
    candidates = (
        Lead.objects.for_org(organization_id)
        .filter(leads, lifecycle_stage__in=MQL_FROM_STAGES)
        .order_by("id").select_for_update().values_list("id", "lifecycle_stage")
    )
    candidates_sql, candidates_params = candidates.query.sql_with_params()
    sql = f"""
        WITH old AS ({candidates_sql}),
        moved AS (
            UPDATE leads_lead l
            SET lifecycle_stage = %s, stage_entered_at = l.stage_entered_at || jsonb_build_object(%s, %s::text),
                updated_at = %s
            FROM old WHERE l.id = old.id
            RETURNING l.id, old.lifecycle_stage AS previous, l.score, l.grade
        )
        INSERT INTO leads_activity (id, organization_id, lead_id, type, properties, occurred_at, created_at)
        SELECT gen_random_uuid(), %s, id, %s,
               jsonb_build_object('from', previous, 'to', %s, 'reason', %s, 'score', score, 'grade', grade), %s, %s
        FROM moved
        RETURNING lead_id, properties ->> 'from'
    """
    params = [
        *candidates_params, LifecycleStage.MQL, LifecycleStage.MQL, now.isoformat(), now,
        organization_id, ActivityType.STAGE_CHANGE, LifecycleStage.MQL, reason, now, now,
    ]
    # No savepoint of its own: the move and its events stand or fall with the caller's transaction.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(sql, params)
        moved = cursor.fetchall()
        events.emit_many([(events.LEAD_STAGE_CHANGED, {"organization_id": organization_id, "lead_id": lead_id,
                                                       "from_stage": previous, "to_stage": LifecycleStage.MQL})
                          for lead_id, previous in moved])
    return [lead_id for lead_id, _ in moved]
