"""A small fixed organization to report on; every expected number in the tests is worked out from it.

Times are in March 2026 (T0 = 1 March 09:00 UTC); reports are asked for 1–31 March.

lead  created   stage         reached (history)          source_type/source    campaign  owner  score grade
L1    T0        customer      mql+1h sal sql opp cust    paid =HYPERLINK("x")  spring    A      85    A
L2    T0+1d     sql           mql sal sql                paid ads              spring    A      55    B
L3    T0+2d     mql           mql                        organic blog          -         B      58    B
L4    T0+3d     lead          -                          organic blog          -         -      12    D
L5    T0+4d     disqualified  mql sal disqualified       referral partner      -         B      40    C
L6    1 Feb     customer      mql (2 Feb 09:00)          inbound events        -         A      90    A   (outside)
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from campaigns.models import Campaign, CampaignCost, CampaignMember
from leadcrm import services as core
from leadcrm.models import Role
from leads.models import Account, Deal, Lead
from routing.models import Assignment, LeadRouting, RepProfile, Team

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RANGE = {"start": "2026-03-01", "end": "2026-03-31"}
FORMULA_SOURCE = '=HYPERLINK("x")'


def minutes(n):
    return timedelta(minutes=n)


def make_lead(org, created, *, stages=None, **fields):
    fields.setdefault("email", f"{fields.get('first_name', 'x')}{Lead.objects.count()}@{org.slug}.test")
    lead = Lead.objects.create(organization=org, stage_entered_at={k: v.isoformat() for k, v in (stages or {}).items()},
                               **fields)
    Lead.objects.filter(pk=lead.pk).update(created_at=created)
    lead.created_at = created
    return lead


def assign(org, lead, rep, at, sla=None):
    """An assignment made at `at`; the lead's first one also sets its routing state's first deadline, as routing
    does."""
    item = Assignment.objects.create(organization=org, lead=lead, rep=rep, reason="rule", sla_due_at=sla)
    Assignment.objects.filter(pk=item.pk).update(created_at=at)
    if Assignment.objects.filter(lead=lead).count() == 1:
        LeadRouting.objects.filter(lead=lead).update(first_sla_due_at=sla)
    return item


def make_deal(org, lead, amount, status, closed, created, reason=""):
    account = Account.objects.get_or_create(organization=org, name=f"{org.slug} account")[0]
    deal = Deal.objects.create(organization=org, account=account, lead=lead, name="deal", amount=Decimal(amount),
                               status=status, closed_at=closed, lost_reason=reason)
    Deal.objects.filter(pk=deal.pk).update(created_at=created)
    return deal


def rep_user(org, name):
    return core.add_member(organization=org, email=f"{name}@{org.slug}.test", password=None, role=Role.REP).user


@pytest.fixture
def data(org):
    a, b, c = rep_user(org, "anna"), rep_user(org, "bert"), rep_user(org, "cleo")
    inbound = Team.objects.create(organization=org, name="Inbound")
    outbound = Team.objects.create(organization=org, name="Outbound")
    day = timedelta(days=1)
    c1, c2, c3, c4, c5 = T0, T0 + day, T0 + 2 * day, T0 + 3 * day, T0 + 4 * day
    l1 = make_lead(org, c1, first_name="l1", lifecycle_stage="customer", source_type="paid", source=FORMULA_SOURCE,
                   utm_campaign="spring", owner=a, score=85, grade="A",
                   stages={"mql": c1 + minutes(60), "sal": c1 + minutes(120), "sql": c1 + day,
                           "opportunity": c1 + 2 * day, "customer": c1 + 10 * day})
    l2 = make_lead(org, c2, first_name="l2", lifecycle_stage="sql", source_type="paid", source="ads",
                   utm_campaign="spring", owner=a, score=55, grade="B",
                   stages={"mql": c2 + minutes(30), "sal": c2 + minutes(90), "sql": c2 + day})
    l3 = make_lead(org, c3, first_name="l3", lifecycle_stage="mql", source_type="organic", source="blog", owner=b,
                   score=58, grade="B", stages={"mql": c3 + minutes(10)})
    l4 = make_lead(org, c4, first_name="l4", lifecycle_stage="lead", source_type="organic", source="blog", score=12,
                   grade="D")
    l5 = make_lead(org, c5, first_name="l5", lifecycle_stage="disqualified", source_type="referral",
                   source="partner", owner=b, score=40, grade="C",
                   stages={"mql": c5 + minutes(20), "sal": c5 + minutes(40), "disqualified": c5 + day})
    l6 = make_lead(org, datetime(2026, 2, 1, 9, tzinfo=UTC), first_name="l6", lifecycle_stage="customer",
                   source_type="inbound", source="events", owner=a, score=90, grade="A",
                   stages={"mql": datetime(2026, 2, 2, 9, tzinfo=UTC)})

    def routing(lead, team, mql, assigned, touch=None):
        created = lead.created_at
        at = created + minutes(assigned)
        LeadRouting.objects.create(organization=org, lead=lead, team=team, mql_at=created + minutes(mql),
                                   first_assigned_at=at, assigned_at=at,
                                   first_touch_at=None if touch is None else created + minutes(touch))

    routing(l1, inbound, 60, 70, 100)
    routing(l2, inbound, 30, 40, 160)
    routing(l3, outbound, 10, 20)
    routing(l5, outbound, 20, 50, 60)
    assign(org, l1, a, c1 + minutes(70), sla=c1 + minutes(130))
    assign(org, l2, a, c2 + minutes(40), sla=c2 + minutes(100))
    assign(org, l3, b, c3 + minutes(20), sla=c3 + minutes(80))
    assign(org, l5, b, c5 + minutes(50))
    assign(org, l5, a, c5 + minutes(300), sla=c5 + minutes(1000))
    assign(org, l6, a, datetime(2026, 2, 1, 10, tzinfo=UTC), sla=datetime(2026, 2, 1, 11, tzinfo=UTC))

    make_deal(org, l1, "1000.00", "won", closed=c1 + 10 * day, created=c1 + 2 * day)
    make_deal(org, l3, "500.00", "lost", closed=T0 + 12 * day, created=c3 + day, reason="Too expensive")
    make_deal(org, l6, "200.00", "won", closed=T0 + 5 * day, created=datetime(2026, 2, 20, tzinfo=UTC))
    make_deal(org, l2, "300.00", "lost", closed=T0 + 20 * day, created=c2 + 5 * day, reason="No budget")

    spring = Campaign.objects.create(organization=org, name="Spring", utm_campaign="spring")
    webinar = Campaign.objects.create(organization=org, name="Webinar")
    old = Campaign.objects.create(organization=org, name="Old")
    CampaignCost.objects.create(organization=org, campaign=spring, date=date(2026, 3, 5), amount=400)
    CampaignCost.objects.create(organization=org, campaign=spring, date=date(2026, 2, 20), amount=999)
    CampaignCost.objects.create(organization=org, campaign=webinar, date=date(2026, 3, 10), amount=100)
    for campaign, lead, joined in ((spring, l1, c1), (spring, l2, c2), (webinar, l1, c1 + 3 * day),
                                   (webinar, l3, c3)):
        CampaignMember.objects.create(organization=org, campaign=campaign, lead=lead, joined_at=joined)
    return {"a": a, "b": b, "c": c, "inbound": inbound, "outbound": outbound, "spring": spring, "webinar": webinar,
            "old": old, "leads": [l1, l2, l3, l4, l5, l6]}


@pytest.fixture
def noise(other_org):
    """Another organization with data in the same month: none of it may be counted."""
    rep = rep_user(other_org, "rival")
    lead = make_lead(other_org, T0, first_name="r", lifecycle_stage="customer", source="blog", owner=rep,
                     score=85, grade="A", stages={"mql": T0, "sql": T0})
    LeadRouting.objects.create(organization=other_org, lead=lead, mql_at=T0, first_assigned_at=T0,
                               first_touch_at=T0 + minutes(5))
    assign(other_org, lead, rep, T0, sla=T0 + minutes(10))
    make_deal(other_org, lead, "9999.00", "won", closed=T0 + timedelta(days=1), created=T0)
    return lead


def grow(org, data, n):
    """n more leads of every kind, in range, so a query-count test can compare two sizes."""
    a = data["a"]
    for i in range(n):
        lead = make_lead(org, T0 + minutes(i), first_name=f"g{i}", lifecycle_stage="sql", source=f"s{i}",
                         utm_campaign=f"c{i}", owner=a, score=i * 7, grade="B", stages={"mql": T0, "sql": T0})
        LeadRouting.objects.create(organization=org, lead=lead, team=data["inbound"], mql_at=T0, first_assigned_at=T0,
                                   first_touch_at=T0 + minutes(i))
        assign(org, lead, a, T0 + minutes(1), sla=T0 + minutes(5))
        make_deal(org, lead, "10.00", "won", closed=T0 + timedelta(days=2), created=T0)
        CampaignMember.objects.create(organization=org, campaign=data["spring"], lead=lead, joined_at=T0)
    assert RepProfile.objects.filter(organization=org).exists()
