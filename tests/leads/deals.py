"""Deals in pipelines for tests: an account, a deal in a stage of the org's default pipeline."""

from datetime import timedelta
from decimal import Decimal
from itertools import count

from django.utils import timezone

from leads.models import Account, Deal, DealStageChange, Pipeline, Stage

_numbers = count(1)


def default_pipeline(org) -> Pipeline:
    return Pipeline.objects.for_org(org).get(is_default=True)


def stage(org, name, pipeline=None) -> Stage:
    return Stage.objects.for_org(org).get(pipeline=pipeline or default_pipeline(org), name=name)


def make_deal(
    org,
    *,
    stage_name="Qualification",
    owner=None,
    amount="100.00",
    currency="EUR",
    expected_close=None,
    days_in_stage=0,
    name=None,
    pipeline=None,
) -> Deal:
    """An open (or, in Won / Lost, closed) deal that entered its stage `days_in_stage` days ago."""
    number = next(_numbers)
    account, _ = Account.objects.get_or_create(organization=org, name=f"Account {number}")
    where = stage(org, stage_name, pipeline)
    entered = timezone.now() - timedelta(days=days_in_stage)
    deal = Deal.objects.create(
        organization=org,
        account=account,
        name=name or f"Deal {number}",
        amount=Decimal(amount),
        currency=currency,
        expected_close=expected_close,
        owner=owner,
        pipeline=where.pipeline,
        stage=where,
        stage_entered_at=entered,
        status=where.kind,
        closed_at=entered if where.kind != "open" else None,
    )
    DealStageChange.objects.filter(deal=deal).update(entered_at=entered)
    return deal
