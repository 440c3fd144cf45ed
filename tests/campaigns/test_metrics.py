"""Campaign numbers and attribution against a small data set computed by hand.

  lead   joins (day)                 stage                       deals
  L1     A 1, B 2, C 3               customer                    3000 created day 4, won day 5
  L2     B 1, C 6 (after its win)    lead                        600 created day 2, won day 3
  L3     A 1                         mql                         999 open, created day 2
  L4     A 1                         disqualified, was SQL       —
  L5     D (EUR) 1                   lead                        800 USD won day 3, 200 EUR won day 4
  costs: A 500 + 1500, C 1000, B and D nothing.
"""

from decimal import Decimal

import pytest

from campaigns import selectors

from . import at, join, make_campaign, make_deal, make_lead

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(org):
    from campaigns import services

    a, b, c = (make_campaign(org, name) for name in "ABC")
    d = make_campaign(org, "D", currency="EUR")
    l1 = make_lead(org, lifecycle_stage="customer", stage_entered_at={"lead": "x", "customer": "y"})
    l2 = make_lead(org)
    l3 = make_lead(org, lifecycle_stage="mql", stage_entered_at={"mql": "x"})
    l4 = make_lead(org, lifecycle_stage="disqualified", stage_entered_at={"sql": "x", "disqualified": "y"})
    l5 = make_lead(org)
    join(a, l1, 1), join(b, l1, 2), join(c, l1, 3)
    join(b, l2, 1), join(c, l2, 6)
    join(a, l3, 1), join(a, l4, 1), join(d, l5, 1)
    make_deal(org, l1, 3000, created=4, won=5)
    make_deal(org, l2, 600, created=2, won=3)
    make_deal(org, l3, 999, created=2)
    make_deal(org, l5, 800, created=2, won=3)
    make_deal(org, l5, 200, created=2, won=4, currency="EUR")
    services.add_cost(campaign=a, date=at(0).date(), amount=Decimal("500"))
    services.add_cost(campaign=a, date=at(1).date(), amount=Decimal("1500"))
    services.add_cost(campaign=c, date=at(0).date(), amount=Decimal("1000"))
    return {"A": a, "B": b, "C": c, "D": d}


def metrics(org, campaign):
    return selectors.campaign_metrics(selectors.with_metrics(org.pk).get(pk=campaign.pk))


def money(value):
    return Decimal(value).quantize(Decimal("0.01"))


def test_metrics_of_each_campaign(org, data):
    a = metrics(org, data["A"])
    assert (a["cost"], a["members"], a["mqls"], a["sqls"], a["deals"], a["won_revenue"]) == (
        Decimal("2000"), 3, 3, 2, 2, Decimal("3000"))
    assert a["roi"] == Decimal("0.5")
    assert (a["cost_per_lead"], a["cost_per_mql"]) == (money("666.67"), money("666.67"))

    b = metrics(org, data["B"])
    assert (b["cost"], b["members"], b["mqls"], b["sqls"], b["deals"], b["won_revenue"]) == (0, 2, 1, 1, 2, 3600)
    assert b["roi"] is None and b["cost_per_lead"] == 0  # nothing spent: no ROI to show

    c = metrics(org, data["C"])
    # L2's deal was created (and won) before L2 joined C: not C's.
    assert (c["members"], c["deals"], c["won_revenue"], c["roi"]) == (2, 1, Decimal("3000"), Decimal("2"))

    d = metrics(org, data["D"])
    assert d["won_revenue"] == Decimal("200")  # the USD deal is not counted in a EUR campaign


def test_attribution_first_last_and_linear(org, data):
    shares = selectors.attribution(org.pk, [c.pk for c in data.values()])
    by_name = {name: shares[str(campaign.pk)] for name, campaign in data.items()}
    assert by_name["A"] == {"first_touch": money(3000), "last_touch": money(0), "linear": money(1000)}
    assert by_name["B"] == {"first_touch": money(600), "last_touch": money(600), "linear": money(1600)}
    # L2 joined C after its win: C gets nothing of it.
    assert by_name["C"] == {"first_touch": money(0), "last_touch": money(3000), "linear": money(1000)}
    assert by_name["D"] == {"first_touch": money(200), "last_touch": money(200), "linear": money(200)}


def test_linear_shares_of_three_campaigns_are_rounded_to_cents(org):
    campaigns = [make_campaign(org) for _ in range(3)]
    lead = make_lead(org)
    for day, campaign in enumerate(campaigns):
        join(campaign, lead, day)
    make_deal(org, lead, 100, created=5, won=6)
    shares = selectors.attribution(org.pk, [c.pk for c in campaigns])
    assert [shares[str(c.pk)]["linear"] for c in campaigns] == [money("33.33")] * 3


def test_another_orgs_deals_and_members_never_count(org, other_org, data):
    rival = make_campaign(other_org, "A")
    lead = make_lead(other_org)
    join(rival, lead, 0)
    make_deal(other_org, lead, 5000, created=1, won=2)
    assert metrics(org, data["A"])["won_revenue"] == Decimal("3000")
    assert metrics(other_org, rival)["attribution"]["first_touch"] == money(5000)


def test_the_list_query_does_not_grow_with_campaigns(org, data, django_assert_num_queries):
    with django_assert_num_queries(1):
        rows = list(selectors.with_metrics(org.pk).order_by("name"))
    assert [(r.name, r.member_count, r.won_revenue) for r in rows] == [
        ("A", 3, 3000), ("B", 2, 3600), ("C", 2, 3000), ("D", 1, 200)]
