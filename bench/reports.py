"""Reports benchmark: every report over a 1,000,000-lead / 10,000,000-activity org, beside `SELECT count(*)` over
the same rows in the same run.

    make bench-reports              (= python bench/reports.py: 1,000,000 leads, about 10,000,000 activities)
    python bench/reports.py --leads 20000 --repeat 3

Builds a throwaway org set-based in SQL (INSERT ... SELECT over generate_series, in batches): leads created over
two years in the order they are stored, with the spread of fields of bench/scoring_bulk.py and about 10 activities
each; a lifecycle stage per lead (15% subscribers, 55% leads, the rest MQL or further) with the stage history
that leads there; a third of the org's scoring rules recorded as scoring each lead; for MQLs and further an owner
among 12 reps in two teams, the routing state (MQL, assigned and first-touch times, 80% touched, half within a
30-minute SLA) and an assignment; 20 campaigns with weekly costs, 30% of leads joined to one by UTM; a won deal
for every customer, a lost or open one for opportunities. Then VACUUM (ANALYZE).

Then, for two date ranges (the reports' default of the last 90 days, and all two years), each report and each
of its breakdowns through the API (`GET /api/v1/reports/<name>/`, API-key authentication, JSON), median of the
repetitions after one unmeasured round, beside the bound: `SELECT count(*)` over the rows the report reads
(leads created in the range; their routing rows; deals closed in the range; assignments made in it; campaign
members joined in it). Goal: every report under 1 s.
`--explain` prints EXPLAIN (ANALYZE, BUFFERS) of every report statement once. The org is deleted afterwards
unless `--keep`; `--org SLUG` re-uses one kept earlier.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")

import django  # noqa: E402

django.setup()

import scoring_bulk as generator  # noqa: E402  (bench/scoring_bulk.py: leads and activities)
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from campaigns.models import Campaign  # noqa: E402
from leadcrm import services as core_services  # noqa: E402
from leadcrm.models import Organization, Role  # noqa: E402
from leads import imports  # noqa: E402
from leads.models import Account, Activity, Lead, Segment  # noqa: E402
from routing.models import RepProfile, Team, TeamMember  # noqa: E402

REPS, CAMPAIGNS = 12, 20
# Activities per lead cycle through these counts (mean 10).
PER_LEAD = [0, 2, 4, 6, 8, 10, 12, 14, 18, 26]
STAGES = ["subscriber", "lead", "mql", "sal", "sql", "opportunity", "customer"]

# Extra per-lead randoms beside the generator's r1..r8: s (stage), c (campaign), t (source), q (score).
LEADS_SQL_FROM = """
FROM (
    SELECT i, random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5, random() AS r6,
           random() AS r7, random() AS r8, random() AS s, random() AS c, random() AS t, random() AS q,
           %(anchor)s::timestamptz - interval '730 days' * (1 - i::float8 / %(leads)s) AS created
    FROM generate_series(%(first)s::int, %(last)s::int) AS i
) g0, LATERAL (SELECT CASE WHEN s < 0.15 THEN 1 WHEN s < 0.70 THEN 2 WHEN s < 0.82 THEN 3 WHEN s < 0.87 THEN 4
                           WHEN s < 0.92 THEN 5 WHEN s < 0.96 THEN 6 ELSE 7 END AS rank) g1
"""
# A stage reached n steps after "lead" was entered 2n days (and some hours) after the lead was created.
STAGE_HISTORY = """(SELECT jsonb_object_agg(name, created + (n - 2) * interval '2 days' + q * interval '20 hours')
    FROM unnest(%(stages)s::text[]) WITH ORDINALITY AS u(name, n) WHERE n >= 2 AND n <= rank)"""
LEAD_EXPRESSIONS = {
    **generator.LEAD_EXPRESSIONS,
    "lifecycle_stage": "(%(stages)s::text[])[rank]",
    "stage_entered_at": f"CASE WHEN rank = 1 THEN '{{}}'::jsonb ELSE {STAGE_HISTORY} END",
    "source_type": "(ARRAY['organic', 'inbound', 'outbound', 'referral', 'paid'])[1 + floor(t * 5)::int]",
    "source": "(ARRAY['google', 'linkedin', 'newsletter', 'webinar', 'partner', 'direct', 'events', 'content'])"
              "[1 + floor(r7 * 8)::int]",
    "utm_campaign": "CASE WHEN c < 0.3 THEN 'camp-' || (1 + floor(c * 1000)::int %% %(campaigns)s) ELSE '' END",
    "owner_id": "CASE WHEN rank >= 3 THEN (%(reps)s::int[])[1 + i %% %(rep_count)s] END",
    "score": "floor(q * q * 130)::int",
    "grade": "(ARRAY['A', 'B', 'C', 'D', 'F'])[1 + floor(r3 * 5)::int]",
    "created_at": "created", "updated_at": "created", "last_activity_at": "created",
}

ROUTING_SQL = """
WITH routed AS (
    SELECT l.id, l.organization_id, l.owner_id, (l.stage_entered_at ->> 'mql')::timestamptz AS mql_at,
           (SELECT tm.team_id FROM routing_teammember tm JOIN routing_repprofile p ON p.id = tm.rep_id
            WHERE p.organization_id = l.organization_id AND p.user_id = l.owner_id LIMIT 1) AS team_id,
           random() AS a, random() AS b
    FROM leads_lead l
    WHERE l.organization_id = %(org)s AND l.owner_id IS NOT NULL
), timed AS (
    SELECT *, mql_at + a * interval '10 minutes' AS assigned_at FROM routed
), routing AS (
    INSERT INTO routing_leadrouting (organization_id, lead_id, team_id, pooled, mql_at, first_assigned_at,
                                     assigned_at, first_touch_at, sla_due_at, first_sla_due_at, reassignments,
                                     updated_at)
    SELECT organization_id, id, team_id, false, mql_at, assigned_at, assigned_at,
           CASE WHEN b < 0.8 THEN assigned_at + b * b * interval '75 minutes' END,
           assigned_at + interval '30 minutes', assigned_at + interval '30 minutes', 0, assigned_at
    FROM timed
)
INSERT INTO routing_assignment (id, organization_id, lead_id, rep_id, team_id, rule_name, strategy, reason,
                                sla_due_at, created_at)
SELECT gen_random_uuid(), organization_id, id, owner_id, team_id, 'Round robin', 'round_robin', 'rule',
       assigned_at + interval '30 minutes', assigned_at
FROM timed
"""
# Customers have a won deal; opportunities an open one, or a lost one closed two weeks after it opened.
DEALS_SQL = """
INSERT INTO leads_deal (id, organization_id, account_id, lead_id, name, amount, currency, status, lost_reason,
                        owner_id, created_at, updated_at, closed_at)
SELECT gen_random_uuid(), l.organization_id, (%(accounts)s::uuid[])[1 + floor(random() * %(account_count)s)::int],
       l.id, 'Deal ' || l.email, round((1000 + random() * 49000)::numeric, 2), 'USD', o.status,
       CASE WHEN o.status = 'lost' THEN (ARRAY['Price', 'Timing', 'Competitor', 'No budget'])[1 + floor(o.r * 8)::int]
            ELSE '' END,
       l.owner_id, o.opened, o.opened,
       CASE o.status WHEN 'won' THEN (l.stage_entered_at ->> 'customer')::timestamptz
                     WHEN 'lost' THEN o.opened + interval '14 days' END
FROM leads_lead l, LATERAL (
    SELECT (l.stage_entered_at ->> 'opportunity')::timestamptz AS opened, r,
           CASE WHEN l.lifecycle_stage = 'customer' THEN 'won' WHEN r < 0.5 THEN 'lost' ELSE 'open' END AS status
    FROM (SELECT random() AS r, l.id) x
) o
WHERE l.organization_id = %(org)s AND l.lifecycle_stage IN ('opportunity', 'customer')
"""
MEMBERS_SQL = """
INSERT INTO campaigns_campaignmember (organization_id, campaign_id, lead_id, status, source, joined_at, updated_at)
SELECT l.organization_id, c.id, l.id, 'responded', 'utm', l.created_at, l.created_at
FROM leads_lead l JOIN campaigns_campaign c ON c.organization_id = l.organization_id
     AND lower(c.utm_campaign) = lower(l.utm_campaign)
WHERE l.organization_id = %(org)s AND l.utm_campaign <> ''
"""
# Each lead is scored by a third of the org's rules, as stored by scoring (`score_rules`).
SCORE_RULES_SQL = """
UPDATE leads_lead l SET score_rules = ARRAY(
    SELECT r.id FROM scoring_scoringrule r
    WHERE r.organization_id = l.organization_id AND random() < 0.33 AND l.id IS NOT NULL ORDER BY r.id)
WHERE l.organization_id = %(org)s
"""
COSTS_SQL = """
INSERT INTO campaigns_campaigncost (id, organization_id, campaign_id, date, amount, note, created_at)
SELECT gen_random_uuid(), c.organization_id, c.id, (%(anchor)s::date - w * 7),
       round((200 + random() * 800)::numeric, 2), '', %(anchor)s
FROM campaigns_campaign c CROSS JOIN generate_series(0, 104) AS w
WHERE c.organization_id = %(org)s
"""

REPORTS = [  # (name, query strings, what the bound counts)
    ("funnel", [{}, *({"breakdown": b} for b in ("source_type", "source", "campaign", "owner", "team"))], "leads"),
    ("funnel", [{"breakdown": "segment", "segment": None}], "leads"),
    ("speed-to-lead", [{}, {"breakdown": "team"}, {"breakdown": "rep"}], "routing"),
    ("sales-cycle", [{}, {"breakdown": "source"}, {"breakdown": "campaign"}, {"breakdown": "lost_reason"}], "deals"),
    ("reps", [{}], "assignments"),
    ("sources", [{"breakdown": "source"}, {"breakdown": "source_type"}], "leads"),
    ("campaigns", [{"attribution": m} for m in ("first_touch", "last_touch", "linear")], "members"),
    ("score-calibration", [{"breakdown": "band"}, {"breakdown": "grade"}, {"breakdown": "rule"}], "leads"),
]
BOUNDS = {
    "leads": "SELECT count(*) FROM leads_lead WHERE organization_id = %(org)s AND created_at >= %(since)s"
             " AND created_at < %(until)s",
    "routing": "SELECT count(*) FROM routing_leadrouting r JOIN leads_lead l ON l.id = r.lead_id"
               " WHERE r.organization_id = %(org)s AND l.organization_id = %(org)s AND l.created_at >= %(since)s"
               " AND l.created_at < %(until)s",
    "deals": "SELECT count(*) FROM leads_deal WHERE organization_id = %(org)s AND status IN ('won', 'lost')"
             " AND closed_at >= %(since)s AND closed_at < %(until)s",
    "assignments": "SELECT count(*) FROM routing_assignment WHERE organization_id = %(org)s"
                   " AND created_at >= %(since)s AND created_at < %(until)s",
    "members": "SELECT count(*) FROM campaigns_campaignmember WHERE organization_id = %(org)s"
               " AND joined_at >= %(since)s AND joined_at < %(until)s",
}


# ----------------------------------------------------------------------------------------------- building

def create_org() -> Organization:
    slug = f"bench-reports-{os.getpid()}"
    return core_services.create_organization(slug=slug, name="Reports benchmark",
                                             owner_email=f"{slug}@bench.invalid", owner_password=None)


def build_team(organization) -> list[int]:
    """Twelve reps in two teams; returns their user ids."""
    reps = [core_services.add_member(organization=organization, email=f"rep{n}@{organization.slug}.bench.invalid",
                                     password=None, role=Role.REP).user_id for n in range(REPS)]
    profiles = {p.user_id: p for p in RepProfile.objects.filter(organization=organization)}
    for number, half in enumerate((reps[:REPS // 2], reps[REPS // 2:])):
        team = Team.objects.create(organization=organization, name=f"Team {number + 1}")
        TeamMember.objects.bulk_create(TeamMember(organization=organization, team=team, rep=profiles[user_id])
                                       for user_id in half)
    return reps


def build(organization: Organization, leads: int, anchor) -> None:
    org = organization.pk
    reps = build_team(organization)
    Campaign.objects.bulk_create(
        Campaign(organization=organization, name=f"Campaign {n}", utm_campaign=f"camp-{n}", currency="USD")
        for n in range(1, CAMPAIGNS + 1))
    accounts = [str(account.pk) for account in Account.objects.bulk_create(
        Account(organization=organization, name=f"Account {n}") for n in range(200))]
    params = {"org": str(org), "domain": f"{organization.slug}.bench.invalid", "now": anchor, "anchor": anchor,
              "per_lead": PER_LEAD, "leads": leads, "stages": STAGES, "campaigns": CAMPAIGNS, "reps": reps,
              "rep_count": len(reps), "accounts": accounts, "account_count": len(accounts)}
    columns, select = imports._insert_sql(Lead, LEAD_EXPRESSIONS, params)
    sql = generator.BATCH_SQL.format(columns=columns, select=select, source=LEADS_SQL_FROM)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.53)")
        for first in range(0, leads, generator.BATCH_LEADS):
            last = min(leads, first + generator.BATCH_LEADS) - 1
            with transaction.atomic():
                cursor.execute(sql, {**params, "first": first, "last": last})
            print(f"\r  built {last + 1:,} leads ({time.perf_counter() - started:.0f} s)", end="", flush=True)
        with transaction.atomic():
            for statement in (ROUTING_SQL, DEALS_SQL, MEMBERS_SQL, COSTS_SQL, SCORE_RULES_SQL):
                cursor.execute(statement, params)
        for table in ("leads_lead", "leads_activity", "routing_leadrouting", "routing_assignment", "leads_deal",
                      "campaigns_campaignmember", "campaigns_campaigncost"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    print(f", {Activity.objects.for_org(org).count():,} activities, in {time.perf_counter() - started:.0f} s")


def cleanup(organization: Organization) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        for table in ("campaigns_campaignmember", "campaigns_campaigncost", "routing_assignment",
                      "routing_leadrouting", "leads_deal", "scoring_scoresnapshot", "leads_activity", "leads_lead"):
            cursor.execute(f"DELETE FROM {table} WHERE organization_id = %s", [organization.pk])
    users = [m.user for m in organization.memberships.select_related("user")]
    organization.delete()
    for user in users:
        user.delete()


# ----------------------------------------------------------------------------------------------- measuring

class Explainer:
    def __call__(self, execute, sql, params, many, context):
        if sql.lstrip().upper().startswith(("SELECT", "WITH")) and "count(" in sql.lower():
            execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params, False, context)
            print("\n".join(row[0] for row in context["cursor"].fetchall()), end="\n\n")
        return execute(sql, params, many, context)


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def measure(client, organization, segment, start, end, repeat: int, explain: bool) -> list[tuple]:
    from reports.selectors import time_range

    since, until = time_range(start, end)
    bound_params = {"org": organization.pk, "since": since, "until": until}
    rows = []
    for name, variants, bound_name in REPORTS:
        for query in variants:
            query = {**query, "start": start.isoformat(), "end": end.isoformat()}
            if "segment" in query:
                query["segment"] = str(segment.pk)

            def report(name=name, query=query):
                response = client.get(f"/api/v1/reports/{name}/", query)
                assert response.status_code == 200, (name, query, response.content[:300])

            def bound(bound_name=bound_name):
                with connection.cursor() as cursor:
                    cursor.execute(BOUNDS[bound_name], bound_params)
                    return cursor.fetchone()[0]

            report(), bound()  # warm-up
            if explain:
                print(f"--- {name} {query}")
                with connection.execute_wrapper(Explainer()):
                    report()
            ours = statistics.median(timed(report) for _ in range(repeat))
            bound_ms = statistics.median(timed(bound) for _ in range(repeat))
            label = query.get("breakdown") or query.get("attribution") or "-"
            rows.append((name, label, ours, bound_ms, bound()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads to build (activities: about 10 each)")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds; medians are reported")
    parser.add_argument("--explain", action="store_true", help="print the plans of every report statement")
    parser.add_argument("--keep", action="store_true", help="keep the org (to re-use with --org)")
    parser.add_argument("--org", help="the slug of an org a previous --keep run built: skip building")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    anchor = timezone.now().replace(minute=0, second=0, microsecond=0)
    if args.org:
        organization = Organization.objects.get(slug=args.org)
    else:
        organization = create_org()
        print(f"building {args.leads:,} leads in org {organization.slug} ...")
        build(organization, args.leads, anchor)
    try:
        _, key = core_services.create_api_key(organization=organization, name="bench")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        segment, _ = Segment.objects.get_or_create(
            organization=organization, name="US software",
            defaults={"definition": {"all": [{"field": "country", "op": "eq", "value": "US"},
                                             {"field": "industry", "op": "eq", "value": "Software"}]}})
        leads = Lead.objects.for_org(organization).count()
        activities = Activity.objects.for_org(organization).count()
        print(f"org {organization.slug}: {leads:,} leads, {activities:,} activities; median of {args.repeat}")
        today = timezone.localdate()
        for title, start in (("the default range, last 90 days", today - timedelta(days=90)),
                             ("all two years", today - timedelta(days=731))):
            rows = measure(client, organization, segment, start, today, args.repeat, args.explain)
            print(f"\n{title} ({start} to {today}):")
            print(f"  {'report':<18} {'breakdown':<12} {'ms':>7} {'count(*) ms':>12} {'rows':>10} {'ratio':>7}")
            for name, label, ours, bound_ms, count in rows:
                print(f"  {name:<18} {label:<12} {ours:>7.0f} {bound_ms:>12.0f} {count:>10,} {ours / bound_ms:>6.1f}x"
                      f"{'' if ours < 1000 else '  over 1 s'}")
            slowest = max(rows, key=lambda row: row[2])
            print(f"  slowest: {slowest[0]} ({slowest[1]}) {slowest[2]:.0f} ms — goal < 1,000 ms: "
                  f"{'met' if slowest[2] < 1000 else 'NOT met'}")
    finally:
        if args.keep or args.org:
            print(f"kept org {organization.slug}")
        else:
            cleanup(organization)


if __name__ == "__main__":
    main()
