"""Conversion: a qualified lead becomes an account with a deal; deals are won or lost."""

from django.db import transaction
from django.db.models.functions import Upper
from django.utils import timezone

from leadcrm import audit, events
from leadcrm.errors import Conflict

from ..models import Account, Activity, ActivityType, Deal, DealStatus, Lead, LifecycleStage
from .lifecycle import StageMoveRefused, apply_move

CONVERTIBLE_STAGES = (LifecycleStage.SQL, LifecycleStage.OPPORTUNITY)
ACCOUNT_FIELDS_FROM_LEAD = {"name": "company", "website": "website", "industry": "industry",
                            "company_size": "company_size", "country": "country"}


class DealClosed(Conflict):
    """The deal is already won or lost."""

    default_code = "deal_closed"


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
        the_deal = Deal.objects.create(organization_id=lead.organization_id, account=the_account, lead=lead,
                                       **{**deal, "owner": owner})
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


def _close(deal: Deal, status: str, *, reason: str = "", actor=None) -> Deal:
    with transaction.atomic():
        deal = Deal.objects.for_org(deal.organization_id).select_for_update().get(pk=deal.pk)
        if deal.status != DealStatus.OPEN:
            raise DealClosed(f"This deal is already {deal.status}.")
        now = timezone.now()
        deal.status, deal.closed_at, deal.lost_reason = status, now, reason
        deal.save(update_fields=["status", "closed_at", "lost_reason", "updated_at"])
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


def update_deal(*, deal: Deal, data: dict) -> Deal:
    """Change an open deal's name, amount, currency, expected close or owner."""
    if deal.status != DealStatus.OPEN:
        raise DealClosed(f"This deal is already {deal.status}; it can no longer change.")
    for field, value in data.items():
        setattr(deal, field, value)
    deal.save(update_fields=[*data, "updated_at"])
    return deal
