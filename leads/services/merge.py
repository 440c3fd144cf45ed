"""Merging duplicate leads into one, and tagging leads in bulk."""

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.utils import timezone

from leadcrm import audit, events
from leadcrm.errors import Invalid

from ..models import (
    Activity,
    ActivityType,
    Deal,
    FormSubmission,
    Lead,
    LifecycleStage,
    SegmentMember,
    TombstoneReason,
    Touch,
)
from .capture import MERGEABLE_FIELDS, is_empty
from .tombstones import record_removal

MERGE_LIMIT = 20
# How far along the funnel a stage is, for keeping the furthest of merged leads.
FUNNEL_ORDER = [LifecycleStage.DISQUALIFIED, LifecycleStage.RECYCLED, LifecycleStage.SUBSCRIBER,
                LifecycleStage.LEAD, LifecycleStage.MQL, LifecycleStage.SAL, LifecycleStage.SQL,
                LifecycleStage.OPPORTUNITY, LifecycleStage.CUSTOMER]
FILLABLE = (*MERGEABLE_FIELDS, "bant_budget", "bant_authority", "bant_need", "bant_timeline", "account_id")


class MergeRefused(Invalid):
    """The leads named cannot be merged; the API names the `merge` field, as the request does."""

    default_code = "merge_refused"

    def __init__(self, message: str):
        super().__init__(message, errors={"merge": [message]})


def _touch_time(touch: dict) -> str:
    return (touch or {}).get("at") or ""


def _combine(keep: Lead, others: list[Lead]) -> None:
    """Give `keep` the best value of each field: its own when filled, else the most recently updated other's."""
    others = sorted(others, key=lambda lead: lead.updated_at, reverse=True)
    everyone = [keep, *others]
    for field in FILLABLE:
        attribute = "owner_id" if field == "owner" else field
        if is_empty(getattr(keep, attribute)):
            value = next((getattr(o, attribute) for o in others if not is_empty(getattr(o, attribute))), None)
            if value is not None:
                setattr(keep, attribute, value)
    for flag in ("unsubscribed", "do_not_contact", "bounced", "consent_opt_in"):  # never lose an opt-out
        setattr(keep, flag, any(getattr(lead, flag) for lead in everyone))
    keep.consent_at = min((lead.consent_at for lead in everyone if lead.consent_at), default=None)
    keep.tags = list(dict.fromkeys(tag for lead in everyone for tag in lead.tags))
    custom = {}
    for lead in reversed(everyone):  # keep's own values win
        custom.update({k: v for k, v in lead.custom_fields.items() if not is_empty(v)})
    keep.custom_fields = custom
    keep.lifecycle_stage = max((lead.lifecycle_stage for lead in everyone), key=FUNNEL_ORDER.index)
    entered = {}
    for lead in everyone:
        for stage, at in lead.stage_entered_at.items():
            entered[stage] = min(entered.get(stage, at), at)
    keep.stage_entered_at = entered
    touched = [lead for lead in everyone if lead.first_touch]
    if touched:
        keep.first_touch = min(touched, key=lambda lead: _touch_time(lead.first_touch)).first_touch
        keep.last_touch = max(touched, key=lambda lead: _touch_time(lead.last_touch)).last_touch
    keep.last_activity_at = max((lead.last_activity_at for lead in everyone if lead.last_activity_at), default=None)
    keep.created_at = min(lead.created_at for lead in everyone)


def merge_leads(*, organization_id, keep_id, merge_ids, actor=None) -> Lead:
    """Merge leads into `keep_id`: every activity, submission, list membership and deal moves to it, each field
    keeps its best value, the others are deleted and a merge activity records who they were."""
    merge_ids = list(dict.fromkeys(merge_ids))
    if not merge_ids or len(merge_ids) > MERGE_LIMIT:
        raise MergeRefused(f"Name 1 to {MERGE_LIMIT} leads to merge.")
    if keep_id in merge_ids:
        raise MergeRefused("The lead to keep cannot also be merged away.")
    with transaction.atomic():
        leads = {lead.pk: lead for lead in Lead.objects.for_org(organization_id)
                 .filter(pk__in=[keep_id, *merge_ids]).order_by("pk").select_for_update()}
        missing = [str(pk) for pk in [keep_id, *merge_ids] if pk not in leads]
        if missing:
            raise Lead.DoesNotExist(f"No such leads: {', '.join(missing)}")
        if any(lead.erased_at for lead in leads.values()):
            raise MergeRefused("An erased lead cannot be merged.")
        keep = leads[keep_id]
        others = [leads[pk] for pk in merge_ids]
        _combine(keep, others)
        email = keep.email or next((o.email for o in others if o.email), "")

        Activity.objects.for_org(organization_id).filter(lead_id__in=merge_ids).update(lead=keep)
        FormSubmission.objects.for_org(organization_id).filter(lead_id__in=merge_ids).update(lead=keep)
        Touch.objects.for_org(organization_id).filter(lead_id__in=merge_ids).update(lead=keep)
        Deal.objects.for_org(organization_id).filter(lead_id__in=merge_ids).update(lead=keep)
        SegmentMember.objects.bulk_create(
            [SegmentMember(organization_id=organization_id, segment_id=segment_id, lead=keep)
             for segment_id in SegmentMember.objects.for_org(organization_id).filter(lead_id__in=merge_ids)
             .values_list("segment_id", flat=True)],
            ignore_conflicts=True,
        )
        events.emit_now(events.LEADS_MERGED, organization_id=organization_id, keep_id=keep.pk,
                        merged_ids=merge_ids)  # other apps move their rows before the merged leads go
        record_removal(organization_id=organization_id, leads=others, reason=TombstoneReason.MERGED,
                       merged_into=keep.pk)
        Lead.objects.for_org(organization_id).filter(pk__in=merge_ids).delete()
        keep.email = email
        keep.save()
        Activity.objects.create(
            organization_id=organization_id, lead=keep, type=ActivityType.MERGE,
            **audit.actor_fields(actor),
            occurred_at=timezone.now(),
            properties={"merged": [{"id": str(o.pk), "email": o.email, "name": o.full_name, "phone": o.phone}
                                   for o in others]},
        )
        events.emit(events.LEAD_UPDATED, organization_id=organization_id, lead_id=keep.pk, fields=["merge"])
    return keep


BULK_EVENT_SIZE = 5_000  # lead ids per leads.changed event: the consumers' work comes in bounded pieces


def emit_leads_changed(*, organization_id, lead_ids, fields) -> None:
    """One home for "these leads changed in bulk": consumers (scoring re-scores them) take the ids set-based."""
    lead_ids = [str(lead_id) for lead_id in lead_ids]
    events.emit_many([(events.LEADS_CHANGED, {"organization_id": organization_id,
                                              "lead_ids": lead_ids[start:start + BULK_EVENT_SIZE],
                                              "fields": list(fields)})
                      for start in range(0, len(lead_ids), BULK_EVENT_SIZE)])


def tag_leads(*, organization_id, leads, add=(), remove=()) -> int:
    """Add and remove tags on a queryset of the org's leads in one UPDATE; returns how many rows changed.
    The changed leads are re-scored (tags are a scoring condition)."""
    add, remove = list(dict.fromkeys(add)), list(dict.fromkeys(remove))
    try:
        ids_sql, ids_params = leads.filter(organization_id=organization_id).values("id").query.sql_with_params()
    except EmptyResultSet:  # e.g. an empty list of ids: Django knows it matches nothing and writes no SQL
        return 0
    sql = f"""
        UPDATE leads_lead l
        SET tags = ARRAY(SELECT t FROM unnest(l.tags || %s::varchar[]) WITH ORDINALITY AS x(t, n)
                         WHERE NOT t = ANY(%s::varchar[]) GROUP BY t ORDER BY min(n)),
            updated_at = %s
        WHERE l.organization_id = %s AND l.id IN ({ids_sql})
          AND (NOT l.tags @> %s::varchar[] OR l.tags && %s::varchar[])
        RETURNING l.id
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, [add, remove, timezone.now(), organization_id, *ids_params, add, remove])
            changed = [row[0] for row in cursor.fetchall()]
        emit_leads_changed(organization_id=organization_id, lead_ids=changed, fields=["tags"])
    return len(changed)
