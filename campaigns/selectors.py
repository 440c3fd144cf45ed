"""Reads of campaigns: lists with their numbers, one campaign's metrics and attribution, a lead's campaigns.

Every number is an aggregate in SQL, a fixed number of queries however many members, costs or deals there are.

- cost: the sum of the cost entries (the budget is the plan, not the spend);
- members; MQLs and SQLs: members that reached that stage or beyond (now, or ever by their stage history);
- deals: deals of member leads created once the lead had joined; won revenue: the won ones among them, in the
  campaign's currency; ROI = (won revenue − cost) / cost, none when nothing was spent;
- attribution of won revenue over the campaigns a lead joined up to the deal's win: first touch (all of it to
  the first joined), last touch (all to the latest joined), linear (equal shares).
"""

from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import Count, DecimalField, F, IntegerField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from leads.models import Deal, DealStatus, LifecycleStage

from .models import Campaign, CampaignCost, CampaignMember

_S = LifecycleStage
MQL_STAGES = [_S.MQL.value, _S.SAL.value, _S.SQL.value, _S.OPPORTUNITY.value, _S.CUSTOMER.value]
SQL_STAGES = [_S.SQL.value, _S.OPPORTUNITY.value, _S.CUSTOMER.value]
CENT = Decimal("0.01")
MONEY = DecimalField(max_digits=16, decimal_places=2)


def _count(queryset):
    return Coalesce(Subquery(queryset.order_by().values("campaign_id").annotate(n=Count("pk")).values("n"),
                             output_field=IntegerField()), Value(0))


def _reached(stages):
    return Q(lead__lifecycle_stage__in=stages) | Q(lead__stage_entered_at__has_any_keys=stages)


def _member_deals(organization_id):
    """Deals of the outer campaign's members, created once the lead had joined."""
    return Deal.objects.for_org(organization_id).filter(
        lead__campaign_memberships__campaign_id=OuterRef("pk"),
        created_at__gte=F("lead__campaign_memberships__joined_at"))


def with_metrics(organization_id, queryset=None):
    """Campaigns annotated with cost, members, mqls, sqls, deals and won_revenue (one query)."""
    queryset = queryset if queryset is not None else Campaign.objects.for_org(organization_id)
    members = CampaignMember.objects.for_org(organization_id).filter(campaign_id=OuterRef("pk"))
    costs = (CampaignCost.objects.for_org(organization_id).filter(campaign_id=OuterRef("pk")).order_by()
             .values("campaign_id").annotate(total=Sum("amount")).values("total"))
    deals = _member_deals(organization_id)
    won = (deals.filter(status=DealStatus.WON, currency=OuterRef("currency")).order_by()
           .values("organization_id").annotate(total=Sum("amount")).values("total"))
    deal_count = deals.order_by().values("organization_id").annotate(n=Count("pk", distinct=True)).values("n")
    return queryset.annotate(
        cost=Coalesce(Subquery(costs, output_field=MONEY), Value(Decimal("0")), output_field=MONEY),
        member_count=_count(members),
        mqls=_count(members.filter(_reached(MQL_STAGES))),
        sqls=_count(members.filter(_reached(SQL_STAGES))),
        deals=Coalesce(Subquery(deal_count, output_field=IntegerField()), Value(0)),
        won_revenue=Coalesce(Subquery(won, output_field=MONEY), Value(Decimal("0")), output_field=MONEY),
    )


def _ratio(numerator, denominator):
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"), ROUND_HALF_UP)


def roi(campaign) -> Decimal | None:
    """(won revenue − cost) / cost of a campaign from with_metrics; none when nothing was spent."""
    return _ratio(campaign.won_revenue - campaign.cost, campaign.cost)


def attribution(organization_id, campaign_ids) -> dict:
    """{campaign id: {"first_touch", "last_touch", "linear"}} of won revenue in each campaign's currency."""
    campaign_ids = [str(pk) for pk in campaign_ids]
    result = {pk: {"first_touch": Decimal("0.00"), "last_touch": Decimal("0.00"), "linear": Decimal("0.00")}
              for pk in campaign_ids}
    if not campaign_ids:
        return result
    member, deal, campaign = CampaignMember._meta.db_table, Deal._meta.db_table, Campaign._meta.db_table
    sql = f"""
        WITH touches AS (
            SELECT d.id AS deal_id, d.amount, d.currency, m.campaign_id,
                   row_number() OVER (PARTITION BY d.id ORDER BY m.joined_at, m.id) AS from_first,
                   row_number() OVER (PARTITION BY d.id ORDER BY m.joined_at DESC, m.id DESC) AS from_last,
                   count(*) OVER (PARTITION BY d.id) AS touches
            FROM {deal} d JOIN {member} m ON m.organization_id = d.organization_id AND m.lead_id = d.lead_id
            WHERE d.organization_id = %(org)s AND d.status = %(won)s AND m.joined_at <= d.closed_at
              AND d.lead_id IN (SELECT lead_id FROM {member}
                                WHERE organization_id = %(org)s AND campaign_id = ANY(%(ids)s::uuid[]))
        )
        SELECT t.campaign_id,
               coalesce(sum(t.amount) FILTER (WHERE t.from_first = 1), 0),
               coalesce(sum(t.amount) FILTER (WHERE t.from_last = 1), 0),
               coalesce(sum(t.amount / t.touches), 0)
        FROM touches t JOIN {campaign} c ON c.id = t.campaign_id AND c.organization_id = %(org)s
        WHERE t.campaign_id = ANY(%(ids)s::uuid[]) AND t.currency = c.currency
        GROUP BY t.campaign_id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"org": organization_id, "won": DealStatus.WON, "ids": campaign_ids})
        for campaign_id, first, last, linear in cursor.fetchall():
            result[str(campaign_id)] = {"first_touch": Decimal(first).quantize(CENT, ROUND_HALF_UP),
                                        "last_touch": Decimal(last).quantize(CENT, ROUND_HALF_UP),
                                        "linear": Decimal(linear).quantize(CENT, ROUND_HALF_UP)}
    return result


def campaign_metrics(campaign) -> dict:
    """The numbers of one campaign annotated by with_metrics, with its ROI, unit costs and attribution."""
    return {
        "cost": campaign.cost, "members": campaign.member_count, "mqls": campaign.mqls, "sqls": campaign.sqls,
        "deals": campaign.deals, "won_revenue": campaign.won_revenue, "roi": roi(campaign),
        "cost_per_lead": _money(_ratio(campaign.cost, campaign.member_count)),
        "cost_per_mql": _money(_ratio(campaign.cost, campaign.mqls)),
        "attribution": attribution(campaign.organization_id, [campaign.pk])[str(campaign.pk)],
    }


def _money(value):
    return None if value is None else value.quantize(CENT, ROUND_HALF_UP)


def members(campaign):
    return (CampaignMember.objects.for_org(campaign.organization_id).filter(campaign=campaign)
            .select_related("lead"))


def costs(campaign):
    return CampaignCost.objects.for_org(campaign.organization_id).filter(campaign=campaign).order_by("-date", "-pk")


def campaigns_of_lead(organization_id, lead_id):
    """The lead's memberships, earliest joined first, with their campaigns."""
    return (CampaignMember.objects.for_org(organization_id).filter(lead_id=lead_id)
            .select_related("campaign").order_by("joined_at", "pk"))
