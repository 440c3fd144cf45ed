"""Everything that changes campaigns: the campaigns themselves, their cost entries and their members.

Joining is set-based: one INSERT … SELECT … ON CONFLICT per call, however many leads join. A lead that joins a
campaign again keeps its first `joined_at`; its status only moves forward (targeted → responded → converted).
"""

from decimal import Decimal

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from leadcrm import currency
from leadcrm.errors import Conflict, Invalid
from leads.models import Touch
from leads.services import segments_using

from .models import Campaign, CampaignCost, CampaignMember, MemberSource, MemberStatus

CAMPAIGN_FIELDS = ("name", "channel", "status", "start", "end", "budget", "currency", "utm_campaign")


class CampaignError(Invalid):
    """Settings that make no sense; `errors` maps each field to its messages."""

    default_code = "invalid_campaign"

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors=errors)


# ------------------------------------------------------------------------------------------- campaigns


def clean_campaign(organization_id, data: dict, instance: Campaign | None = None) -> dict:
    """The data merged over the instance's values, or CampaignError naming each field that is wrong."""
    values = {field: getattr(instance, field) for field in CAMPAIGN_FIELDS} if instance else {}
    values.update({field: data[field] for field in CAMPAIGN_FIELDS if field in data})
    errors: dict[str, list[str]] = {}
    name = (values.get("name") or "").strip()
    if not name:
        errors["name"] = ["Give the campaign a name."]
    values["name"] = name
    start, end = values.get("start"), values.get("end")
    if start and end and end < start:
        errors["end"] = ["The end date is before the start date."]
    budget = values.get("budget")
    if budget is not None and Decimal(budget) < 0:
        errors["budget"] = ["The budget cannot be negative."]
    currency_code = currency.normalise(values.get("currency") or "USD")
    if currency_code is None:
        errors["currency"] = [currency.MESSAGE]
    values["currency"] = currency_code or (values.get("currency") or "")
    utm = (values.get("utm_campaign") or "").strip()
    values["utm_campaign"] = utm
    if utm:
        taken = Campaign.objects.for_org(organization_id).filter(utm_campaign__iexact=utm)
        if instance is not None:
            taken = taken.exclude(pk=instance.pk)
        other = taken.values_list("name", flat=True).first()
        if other is not None:
            errors["utm_campaign"] = [f"The campaign “{other}” already uses this utm_campaign."]
    if errors:
        raise CampaignError(errors)
    return values


def save_campaign(*, organization_id, data: dict, instance: Campaign | None = None) -> Campaign:
    values = clean_campaign(organization_id, data, instance)
    with transaction.atomic():
        campaign = instance or Campaign(organization_id=organization_id)
        for field, value in values.items():
            setattr(campaign, field, value)
        campaign.save()
    return campaign


class CampaignInUse(Conflict):
    """A campaign that segments test membership of is not deleted from under them."""

    default_code = "campaign_in_use"


def delete_campaign(*, campaign: Campaign) -> None:
    with transaction.atomic():
        users = list(segments_using(campaign.organization_id, "campaign", campaign.pk).select_for_update()
                     .values_list("name", flat=True)[:5])
        if users:
            raise CampaignInUse("Segments test membership of this campaign: " + ", ".join(users)
                                + ". Change them first.")
        campaign.delete()


# ------------------------------------------------------------------------------------------- costs


def add_cost(*, campaign: Campaign, date, amount, note: str = "") -> CampaignCost:
    errors = {}
    if amount is None or Decimal(amount) < 0:
        errors["amount"] = ["A cost cannot be negative."]
    if date is None:
        errors["date"] = ["Say when the money was spent."]
    if errors:
        raise CampaignError(errors)
    return CampaignCost.objects.create(organization_id=campaign.organization_id, campaign=campaign, date=date,
                                       amount=amount, note=(note or "").strip()[:200])


def delete_cost(*, cost: CampaignCost) -> None:
    cost.delete()


# ------------------------------------------------------------------------------------------- members

_MEMBER = CampaignMember._meta.db_table
_RANK = "CASE {0} WHEN 'targeted' THEN 0 WHEN 'responded' THEN 1 ELSE 2 END"
# Joining again keeps the first joined_at and only ever moves the status forward.
_UPSERT = (
    f" ON CONFLICT (organization_id, campaign_id, lead_id) DO UPDATE SET status = EXCLUDED.status,"
    f" updated_at = EXCLUDED.updated_at"
    f" WHERE {_RANK.format(_MEMBER + '.status')} < {_RANK.format('EXCLUDED.status')}"
)
_COLUMNS = "(organization_id, campaign_id, lead_id, status, source, joined_at, updated_at)"


def add_members(*, campaign: Campaign, leads: QuerySet, status: str = MemberStatus.TARGETED,
                source: str = MemberSource.MANUAL) -> int:
    """Add the leads of `leads` (a queryset of the campaign's org's leads) in one statement; returns how many
    joined or moved forward."""
    lead_ids = leads.filter(organization_id=campaign.organization_id).order_by().values("id")
    sql, params = lead_ids.query.sql_with_params()
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_MEMBER} {_COLUMNS}"
            f" SELECT %s, %s, picked.id, %s, %s, %s, %s FROM ({sql}) picked{_UPSERT}",
            [campaign.organization_id, campaign.pk, status, source, now, now, *params],
        )
        return cursor.rowcount


def remove_members(*, campaign: Campaign, leads: QuerySet) -> int:
    removed, _ = (CampaignMember.objects.for_org(campaign.organization_id)
                  .filter(campaign=campaign, lead_id__in=leads.order_by().values("id")).delete())
    return removed


def set_member_status(*, campaign: Campaign, leads: QuerySet, status: str) -> int:
    return (CampaignMember.objects.for_org(campaign.organization_id)
            .filter(campaign=campaign, lead_id__in=leads.order_by().values("id"))
            .update(status=status, updated_at=timezone.now()))


_CAMPAIGN = Campaign._meta.db_table
_TOUCH = Touch._meta.db_table


def _join_by_utm(*, organization_id, source: str, touches_sql: str, params: list) -> int:
    """The leads of the org's touches picked by `touches_sql` (a condition on the touch `t`) join, as responders,
    the campaigns whose utm_campaign those touches carry (any case), in one statement; joined when touched."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_MEMBER} {_COLUMNS}"
            f" SELECT DISTINCT ON (c.id, t.lead_id) c.organization_id, c.id, t.lead_id, %s, %s, t.occurred_at, %s"
            f" FROM {_TOUCH} t JOIN {_CAMPAIGN} c ON c.organization_id = t.organization_id"
            f"  AND lower(c.utm_campaign) = lower(t.utm_campaign) AND c.utm_campaign <> ''"
            f" WHERE t.organization_id = %s AND t.utm_campaign <> '' AND {touches_sql}"
            f" ORDER BY c.id, t.lead_id, t.occurred_at{_UPSERT}",
            [MemberStatus.RESPONDED, source, now, organization_id, *params],
        )
        return cursor.rowcount


def join_by_utm(*, organization_id, lead_id, utm_campaign=None, source: str = MemberSource.UTM) -> int:
    """A captured lead joins, as a responder, the campaign its touch names by utm_campaign (forms carry their
    campaign's utm_campaign as a hidden value, so a form tied to a campaign works the same way). Without
    `utm_campaign` (an event recorded before touches said it), every campaign the lead's touches name."""
    if utm_campaign is None:
        return _join_by_utm(organization_id=organization_id, source=source, touches_sql="t.lead_id = %s",
                            params=[lead_id])
    return _join_by_utm(organization_id=organization_id, source=source,
                        touches_sql=("t.id = (SELECT id FROM " + _TOUCH + " WHERE organization_id = %s AND lead_id = %s"
                                     " AND lower(utm_campaign) = lower(%s) ORDER BY occurred_at DESC LIMIT 1)"),
                        params=[organization_id, lead_id, utm_campaign])


def join_imported(*, organization_id, import_id) -> int:
    """The leads an import created or updated join the campaigns their rows named, in one statement."""
    return _join_by_utm(organization_id=organization_id, source=MemberSource.IMPORT,
                        touches_sql="t.import_id = %s", params=[import_id])


def mark_converted(*, organization_id, lead_id) -> int:
    """The lead converted or won a deal: its memberships become `converted`."""
    return (CampaignMember.objects.for_org(organization_id).filter(lead_id=lead_id)
            .exclude(status=MemberStatus.CONVERTED).update(status=MemberStatus.CONVERTED, updated_at=timezone.now()))
