"""The sources report's cost: each campaign's cost is shared among the sources of its members, in proportion to
how many members each source brought, to the cent, the shares adding up to the campaign's cost."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.models import Campaign, CampaignCost, CampaignMember
from reports import selectors

from .conftest import RANGE, T0, make_lead

pytestmark = pytest.mark.django_db

MARCH = {"start": date(2026, 3, 1), "end": date(2026, 3, 31)}


def campaign(org, name, costs, members, currency="USD", joined=T0):
    """A campaign with cost entries (amount, date) and members: {source: count} of leads created in March."""
    item = Campaign.objects.create(organization=org, name=name, currency=currency)
    for amount, day in costs:
        CampaignCost.objects.create(organization=org, campaign=item, date=day, amount=Decimal(amount))
    for source, count in members.items():
        for _ in range(count):
            lead = make_lead(org, T0, source=source, source_type="paid")
            CampaignMember.objects.create(organization=org, campaign=item, lead=lead, joined_at=joined)
    return item


def costs(org, **params):
    with CaptureQueriesContext(connection) as queries:
        rows = selectors.sources(org.pk, **MARCH, **params)
    assert len(queries.captured_queries) == 1  # one aggregate query, however many campaigns and sources
    return {row["key"]: row["cost"] for row in rows}


def test_a_campaigns_cost_is_shared_by_members_to_the_cent(org):
    # 2,550.50 × 3/4 = 1,912.875 and × 1/4 = 637.625: rounded down 1,912.87 + 637.62 leaves a cent, which goes to
    # the larger share (the remainders tie), so the shares add up to 2,550.50.
    campaign(org, "Spring", [("2000.00", date(2026, 3, 2)), ("550.50", date(2026, 3, 20))], {"A": 3, "B": 1})
    assert costs(org) == {"A": "1912.88", "B": "637.62"}


def test_thirds_give_the_left_over_cent_once_and_add_up(org):
    campaign(org, "Thirds", [("100.00", date(2026, 3, 2))], {"A": 1, "B": 1, "C": 1})
    found = costs(org)
    assert sorted(found.values()) == ["33.33", "33.33", "33.34"] and found["A"] == "33.34"  # tie: by name
    assert sum(Decimal(value) for value in found.values()) == Decimal("100.00")


def test_costs_of_several_campaigns_add_up_per_source(org):
    campaign(org, "One", [("90.00", date(2026, 3, 2))], {"A": 1, "B": 2})
    campaign(org, "Two", [("10.00", date(2026, 3, 3))], {"B": 1})
    assert costs(org) == {"A": "30.00", "B": "70.00"}


def test_only_costs_dated_and_members_joined_in_the_range_count(org):
    campaign(org, "Feb spend", [("500.00", date(2026, 2, 28)), ("40.00", date(2026, 3, 1))], {"A": 1})
    late = campaign(org, "Late joiners", [("60.00", date(2026, 3, 5))], {"B": 1})
    early = make_lead(org, T0, source="C")
    CampaignMember.objects.create(organization=org, campaign=late, lead=early, joined_at=T0.replace(month=2))
    assert costs(org) == {"A": "40.00", "B": "60.00", "C": "0.00"}


def test_a_campaign_without_members_in_the_range_gives_its_cost_to_no_source(org):
    campaign(org, "Nobody", [("75.00", date(2026, 3, 5))], {})
    make_lead(org, T0, source="web")
    assert costs(org) == {"web": "0.00"}


def test_campaigns_in_another_currency_than_the_reports_are_left_out(org):
    campaign(org, "Dollars", [("10.00", date(2026, 3, 5))], {"A": 1})
    campaign(org, "More dollars", [("20.00", date(2026, 3, 5))], {"A": 1})
    campaign(org, "Euros", [("999.00", date(2026, 3, 5))], {"B": 1}, currency="EUR")
    assert selectors.report_currency(org.pk) == "USD"  # most campaigns use it
    assert costs(org) == {"A": "30.00", "B": "0.00"}


def test_a_source_whose_leads_came_earlier_still_gets_its_cost(org):
    item = campaign(org, "Retarget", [("12.00", date(2026, 3, 5))], {})
    old = make_lead(org, T0.replace(month=1), source="old list")
    CampaignMember.objects.create(organization=org, campaign=item, lead=old, joined_at=T0)
    rows = {row["key"]: row for row in selectors.sources(org.pk, **MARCH)}
    assert rows["old list"]["leads"] == 0 and rows["old list"]["cost"] == "12.00"
    assert rows["old list"]["cost_per_lead"] is None


def test_by_source_type_and_through_the_api(api, org, other_org):
    campaign(org, "Spring", [("2550.50", date(2026, 3, 2))], {"A": 3, "B": 1})
    campaign(other_org, "Rival", [("9999.00", date(2026, 3, 2))], {"A": 5})
    assert costs(org, breakdown="source_type") == {"paid": "2550.50"}
    rows = {row["key"]: row for row in api.get("/api/v1/reports/sources/", RANGE).json()["rows"]}
    assert (rows["A"]["cost"], rows["A"]["cost_per_lead"], rows["B"]["cost"]) == ("1912.88", "637.63", "637.62")
