"""Tests of campaigns. Helpers make campaigns, leads, memberships and deals with exact times, so every number on a
campaign page can be computed by hand."""

import itertools
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from campaigns import services
from campaigns.models import CampaignMember
from leads.models import Account, Deal, Lead, LifecycleStage

_numbers = itertools.count()
T0 = timezone.now().replace(microsecond=0) - timedelta(days=30)


def at(days: float):
    return T0 + timedelta(days=days)


def make_campaign(org, name=None, **data):
    return services.save_campaign(organization_id=org.pk, data={"name": name or f"Campaign {next(_numbers)}", **data})


def make_lead(org, **fields) -> Lead:
    fields.setdefault("email", f"lead{next(_numbers)}@example.test")
    fields.setdefault("lifecycle_stage", LifecycleStage.LEAD)
    return Lead.objects.create(organization_id=org.pk, **fields)


def join(campaign, lead, days, status="targeted", source="manual"):
    return CampaignMember.objects.create(organization_id=campaign.organization_id, campaign=campaign, lead=lead,
                                         status=status, source=source, joined_at=at(days))


def make_deal(org, lead, amount, *, created=0, won=None, currency="USD"):
    account, _ = Account.objects.get_or_create(organization=org, name=f"Account of {lead.email}")
    deal = Deal.objects.create(organization=org, account=account, lead=lead, name=f"Deal {next(_numbers)}",
                               amount=Decimal(amount), currency=currency,
                               status="won" if won is not None else "open",
                               closed_at=at(won) if won is not None else None)
    Deal.objects.filter(pk=deal.pk).update(created_at=at(created))
    return deal
