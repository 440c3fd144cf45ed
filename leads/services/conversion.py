"""Conversion: a qualified lead becomes an account with a deal; deals move through stages, are won or lost."""

import uuid

from django.db import connection, transaction
from django.db.models.functions import Upper
from django.utils import timezone

from leadcrm import audit, events
from leadcrm.errors import Conflict, Invalid

from ..bulk_sql import insert_sql, quote
from ..models import (
    Account,
    Activity,
    ActivityType,
    Deal,
    DealStageChange,
    DealStatus,
    Lead,
    LifecycleStage,
    Pipeline,
    Stage,
    StageKind,
)
from .lifecycle import StageMoveRefused, apply_move
from .pipelines import enter_stage, set_up_pipelines, stage_of_kind

CONVERTIBLE_STAGES = (LifecycleStage.SQL, LifecycleStage.OPPORTUNITY)
ACCOUNT_FIELDS_FROM_LEAD = {"name": "company", "website": "website", "industry": "industry",
                            "company_size": "company_size", "country": "country"}


class DealClosed(Conflict):
    """The deal is already won or lost."""

    default_code = "deal_closed"


class StageChanged(Conflict):
    """Someone moved the deal since the mover saw it: `current_stage` says where it is now."""

    default_code = "stage_changed"


def _first_stage(organization_id, pipeline_id=None) -> Stage:
    """Where a new deal starts: the first open stage of the given pipeline, or of the org's default one."""
    if pipeline_id is None:
        default = Pipeline.objects.for_org(organization_id).filter(is_default=True).first()
        pipeline_id = (default or set_up_pipelines(organization_id=organization_id)).pk
    return stage_of_kind(pipeline_id, organization_id, StageKind.OPEN)


def _account_for(lead: Lead, *, account_id=None, data: dict | None = None, owner=None) -> Account:
    accounts = Account.objects.for_org(lead.organization_id)
    if account_id is not None:
        return accounts.get(pk=account_id)  # DoesNotExist for another org's account: the caller answers 400
    values = {field: getattr(lead, lead_field) for field, lead_field in ACCOUNT_FIELDS_FROM_LEAD.items()}
    values.update({k: v for k, v in (data or {}).items() if v not in (None, "")})
    name = (values.pop("name") or "").strip()
    if not name:
        raise StageMoveRefused("Name the account: the lead has no company.")
    existing = accounts.annotate(upper_name=Upper("name")).filter(upper_name=name.upper()).first()
    if existing is not None:
        return existing
    return Account.objects.create(organization_id=lead.organization_id, name=name, owner=owner, **values)


def offers_conversion(lead, deals) -> bool:
    """Whether the lead page offers Convert: a qualified lead without an open deal. Once converted, the lead's
    open deal is what is worked; a second one is only offered after it is won or lost."""
    return lead.lifecycle_stage in CONVERTIBLE_STAGES and not any(deal.status == DealStatus.OPEN for deal in deals)


def convert_lead(*, lead: Lead, deal: dict, account: dict | None = None, account_id=None, actor=None):
    """Create (or link) the lead's account and a new open deal; an SQL lead becomes an opportunity.
    Returns (account, deal). StageMoveRefused when the lead is not qualified yet."""
    with transaction.atomic():
        lead = Lead.objects.for_org(lead.organization_id).select_for_update().get(pk=lead.pk)
        if lead.lifecycle_stage not in CONVERTIBLE_STAGES:
            raise StageMoveRefused(
                f"Only a sales-qualified lead (sql) or an opportunity can be converted; this lead is "
                f"{lead.lifecycle_stage}.")
        owner = deal.get("owner") or lead.owner or audit.user_of(actor)
        the_account = _account_for(lead, account_id=account_id, data=account, owner=owner)
        stage = _first_stage(lead.organization_id)
        the_deal = Deal.objects.create(organization_id=lead.organization_id, account=the_account, lead=lead,
                                       pipeline_id=stage.pipeline_id, stage=stage, stage_entered_at=timezone.now(),
                                       **{**deal, "owner": owner})
        # its first history row is the insert trigger's (migration 0025); it records who made the deal
        DealStageChange.objects.for_org(lead.organization_id).filter(deal=the_deal).update(
            entered_by=audit.user_of(actor))
        lead.account = the_account
        lead.save(update_fields=["account", "updated_at"])
        Activity.objects.create(
            organization_id=lead.organization_id, lead=lead, type=ActivityType.DEAL_CREATED,
            **audit.actor_fields(actor),
            occurred_at=timezone.now(), properties={"deal_id": str(the_deal.pk), "name": the_deal.name,
                                                    "amount": str(the_deal.amount), "currency": the_deal.currency,
                                                    "account": the_account.name},
        )
        if lead.lifecycle_stage == LifecycleStage.SQL:
            apply_move(lead=lead, to_stage=LifecycleStage.OPPORTUNITY, reason=f"Converted: deal {the_deal.name}",
                       actor=actor)
        events.emit(events.LEAD_CONVERTED, organization_id=lead.organization_id, lead_id=lead.pk,
                    account_id=the_account.pk, deal_id=the_deal.pk)
    return the_account, the_deal


def _close(deal: Deal, status: str, *, reason: str = "", actor=None, stage: Stage | None = None) -> Deal:
    """Win or lose an open deal: it moves to its pipeline's won or lost stage (or the `stage` of that kind the
    mover picked), its lead's timeline says so, and winning makes the lead a customer."""
    with transaction.atomic():
        deal = Deal.objects.for_org(deal.organization_id).select_for_update().get(pk=deal.pk)
        if deal.status != DealStatus.OPEN:
            raise DealClosed(f"This deal is already {deal.status}.")
        now = timezone.now()
        deal.status, deal.closed_at, deal.lost_reason = status, now, reason
        deal.save(update_fields=["status", "closed_at", "lost_reason", "updated_at"])
        stage = stage or (stage_of_kind(deal.pipeline_id, deal.organization_id, status) if deal.pipeline_id else None)
        if stage is not None:
            enter_stage(deal=deal, stage=stage, actor=actor, reason=reason, at=now)
        if deal.lead_id is None:
            return deal
        lead = Lead.objects.for_org(deal.organization_id).select_for_update().get(pk=deal.lead_id)
        won = status == DealStatus.WON
        Activity.objects.create(
            organization_id=deal.organization_id, lead=lead, occurred_at=now, **audit.actor_fields(actor),
            type=ActivityType.DEAL_WON if won else ActivityType.DEAL_LOST,
            properties={"deal_id": str(deal.pk), "name": deal.name, "amount": str(deal.amount),
                        "currency": deal.currency, **({"reason": reason} if reason else {})},
        )
        if won and lead.lifecycle_stage != LifecycleStage.CUSTOMER:
            # Winning the first deal makes the lead a customer, from any stage (see ALLOWED_MOVES).
            apply_move(lead=lead, to_stage=LifecycleStage.CUSTOMER, reason=f"Won deal {deal.name}", actor=actor)
        events.emit(events.DEAL_WON if won else events.DEAL_LOST, organization_id=deal.organization_id,
                    deal_id=deal.pk, lead_id=lead.pk)
    return deal


def win_deal(*, deal: Deal, actor=None) -> Deal:
    return _close(deal, DealStatus.WON, actor=actor)


def lose_deal(*, deal: Deal, reason: str, actor=None) -> Deal:
    if not (reason or "").strip():
        raise DealClosed("Say why the deal was lost.")
    return _close(deal, DealStatus.LOST, reason=reason.strip()[:200], actor=actor)


def move_deal(*, deal: Deal, stage_id, expected_stage_id, reason: str = "", actor=None) -> Deal:
    """Move a deal to another stage of its pipeline, as its mover saw it: if the deal is no longer in
    `expected_stage_id` (someone moved it first), StageChanged (409) names where it is now and nothing changes.

    A won or lost stage closes the deal as win_deal / lose_deal do (lost needs a reason); moving a closed deal back
    to an open stage reopens it and needs a reason; one closed stage to the other: reopen it first. A stage of
    another pipeline or organization is a 400 at `stage`. Moving to the stage it is in changes nothing."""
    reason = (reason or "").strip()[:200]
    organization_id = deal.organization_id
    with transaction.atomic():
        deal = Deal.objects.for_org(organization_id).select_for_update().get(pk=deal.pk)
        target = Stage.objects.for_org(organization_id).filter(pk=stage_id, pipeline_id=deal.pipeline_id).first() \
            if _is_uuid(stage_id) else None
        if target is None:
            raise Invalid(errors={"stage": ["No such stage in this deal's pipeline."]})
        if str(deal.stage_id) != str(expected_stage_id):
            current = Stage.objects.for_org(organization_id).filter(pk=deal.stage_id).first()
            raise StageChanged(
                f"Someone moved this deal to {current.name if current else 'another stage'} first; nothing changed.",
                extra={"current_stage": {"id": str(current.pk), "name": current.name} if current else None})
        if target.pk == deal.stage_id:
            return deal
        if target.kind == StageKind.LOST and not reason:
            raise Invalid(errors={"reason": ["Say why the deal was lost."]})
        if deal.status != DealStatus.OPEN:
            if target.kind != StageKind.OPEN:
                raise DealClosed(f"This deal is {deal.status}: move it back to an open stage first.")
            if not reason:
                raise Invalid(errors={"reason": [f"Say why this {deal.status} deal is open again."]})
            deal.status, deal.closed_at, deal.lost_reason = DealStatus.OPEN, None, ""
            deal.save(update_fields=["status", "closed_at", "lost_reason", "updated_at"])
        if target.kind == StageKind.OPEN:
            return enter_stage(deal=deal, stage=target, actor=actor, reason=reason)
        return _close(deal, target.kind, reason=reason if target.kind == StageKind.LOST else "", actor=actor,
                      stage=target)


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def update_deal(*, deal: Deal, data: dict) -> Deal:
    """Change an open deal's name, amount, currency, expected close or owner."""
    if deal.status != DealStatus.OPEN:
        raise DealClosed(f"This deal is already {deal.status}; it can no longer change.")
    for field, value in data.items():
        setattr(deal, field, value)
    deal.save(update_fields=[*data, "updated_at"])
    return deal


def record_closed_deals(*, rows_sql: str, params: dict) -> int:
    """History brought in from elsewhere: the won and lost deals of `rows_sql` — a SELECT of (lead_id, name, amount,
    currency, status, closed_at, lost_reason) over the organization `%(org)s`'s leads — recorded as they closed, in
    three set-based statements: each lead's account, found or created from its company as `convert_lead` does (one
    per name, any case), the deal closed at its date with its deal_won / deal_lost activity then, and the lead linked
    to the account. A deal already recorded for the lead with the same outcome and close time is not made twice.
    No events: they happened long ago, so no webhook, nurture or campaign reacts now. Winning makes the lead a
    customer (see ALLOWED_MOVES); the import sets that stage with the close date, as it sets every imported stage.
    Returns the number of deals recorded."""
    lead_table, account_table = quote(Lead._meta.db_table), quote(Account._meta.db_table)
    deal_table, activity_table = quote(Deal._meta.db_table), quote(Activity._meta.db_table)
    joined = (f"FROM ({rows_sql}) r JOIN {lead_table} l ON l.id = r.lead_id AND l.organization_id = %(org)s::uuid"
              f" AND l.company <> ''")
    account_columns, account_select = insert_sql(Account, {
        "id": "gen_random_uuid()", "organization_id": "%(org)s::uuid",
        **{field: f"l.{lead_field}" for field, lead_field in ACCOUNT_FIELDS_FROM_LEAD.items()},
        "owner_id": "l.owner_id", "created_at": "%(now)s", "updated_at": "%(now)s"}, params)
    deal_columns, deal_select = insert_sql(Deal, {
        "id": "n.deal_id", "organization_id": "%(org)s::uuid", "account_id": "n.account_id", "lead_id": "n.lead_id",
        "name": "n.deal_name", "amount": "n.amount", "currency": "n.currency", "status": "n.status",
        "lost_reason": "n.lost_reason", "owner_id": "n.owner_id", "created_at": "n.closed_at",
        "updated_at": "%(now)s", "closed_at": "n.closed_at", "expected_close": "NULL"}, params)
    properties = ("jsonb_strip_nulls(jsonb_build_object('deal_id', n.deal_id::text, 'name', n.deal_name, 'amount',"
                  " n.amount::text, 'currency', n.currency, 'reason', NULLIF(n.lost_reason, ''), 'channel', 'import'))")
    activity_columns, activity_select = insert_sql(Activity, {
        "id": "gen_random_uuid()", "organization_id": "%(org)s::uuid", "lead_id": "n.lead_id",
        "type": f"CASE WHEN n.status = '{DealStatus.WON}' THEN '{ActivityType.DEAL_WON}'"
                f" ELSE '{ActivityType.DEAL_LOST}' END",
        "properties": properties, "occurred_at": "n.closed_at",
        "actor_id": f"%(actor)s::{Activity._meta.get_field('actor').db_type(connection)}", "created_at": "%(now)s"},
        params)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {account_table} ({account_columns})"
            f" SELECT DISTINCT ON (upper(l.company)) {account_select} {joined} ORDER BY upper(l.company), r.closed_at"
            f" ON CONFLICT (organization_id, upper(name)) DO NOTHING", params)
        cursor.execute(
            f"WITH n AS MATERIALIZED ("
            f" SELECT r.lead_id, gen_random_uuid() AS deal_id, a.id AS account_id, l.owner_id, r.status, r.closed_at,"
            f"  COALESCE(NULLIF(r.name, ''), l.company) AS deal_name, COALESCE(r.amount, 0) AS amount,"
            f"  COALESCE(NULLIF(r.currency, ''), %(default_currency)s) AS currency, r.lost_reason"
            f" {joined} JOIN {account_table} a"
            f"  ON a.organization_id = %(org)s::uuid AND upper(a.name) = upper(l.company)"
            f" WHERE NOT EXISTS (SELECT FROM {deal_table} d WHERE d.organization_id = %(org)s::uuid"
            f"  AND d.lead_id = r.lead_id AND d.status = r.status AND d.closed_at = r.closed_at)),"
            f" deals AS (INSERT INTO {deal_table} ({deal_columns}) SELECT {deal_select} FROM n)"
            f" INSERT INTO {activity_table} ({activity_columns}) SELECT {activity_select} FROM n",
            {**params, "default_currency": Deal._meta.get_field("currency").default})
        recorded = cursor.rowcount
        cursor.execute(
            f"UPDATE {lead_table} l SET account_id = a.id FROM ({rows_sql}) r, {account_table} a"
            f" WHERE l.id = r.lead_id AND l.organization_id = %(org)s::uuid AND l.account_id IS NULL"
            f" AND a.organization_id = %(org)s::uuid AND upper(a.name) = upper(l.company) AND l.company <> ''",
            params)
    return recorded
