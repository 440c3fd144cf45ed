"""Bulk scoring benchmark: re-scoring a whole org beside one hand-written SQL statement doing the same.

    make bench-scoring          (= python bench/scoring_bulk.py, 1,000,000 leads)
    python bench/scoring_bulk.py --leads 20000 --repeat 3

Builds a throwaway org set-based in SQL (INSERT ... SELECT over generate_series, in batches): N leads with
a realistic spread of industry, size, country, title and custom fields, about 5 activities per lead over the
last 180 days (page views, email opens and clicks, forms, downloads, ... ; a few leads have many), and 25
active rules: 10 fit rules and 15 behaviour rules, several with caps and windows. Then, per repetition:

  * ours  - what a rule change runs: `request_recalculation` and `recalculate_organization`, called here in
            process (the Celery task it would enqueue does exactly that): chunks of RECALC_CHUNK leads, each one
            statement storing the nine score columns and a score snapshot, then the MQL promotion;
  * bound - one hand-written statement computing the same fit and behaviour sums (same caps, windows, grade and
            temperature bands) for the whole org and UPDATEing the same nine columns.

Scores are reset before each run, so both write every lead. After each bound run every lead's nine numbers
are compared with those ours stored (it must be zero differences). Prints leads/s of both (median of the
repetitions), the ratio (goal: ours at least 50% of the bound) and where ours spent its time.
`--explain` also prints EXPLAIN (ANALYZE, BUFFERS) of ours' statements for one chunk and for one lead (what
instant scoring runs) and of the bound.
The org is deleted afterwards unless `--keep`; `--org SLUG` re-uses one kept earlier instead of building (and
keeps it).
"""

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.utils import timezone  # noqa: E402

from leadcrm import events  # noqa: E402
from leadcrm import services as core_services  # noqa: E402
from leadcrm.models import Organization  # noqa: E402
from leads import imports  # noqa: E402
from leads.models import Activity, Lead  # noqa: E402
from scoring import services as scoring  # noqa: E402
from scoring import tasks as scoring_tasks  # noqa: E402
from scoring.models import ScoreSnapshot, ScoringRule, ScoringSettings  # noqa: E402

BATCH_LEADS = 50_000  # leads (and their activities) per building transaction
SCORE_COLUMNS = ("fit_gained", "fit_lost", "behavior_gained", "behavior_lost", "fit_score", "behavior_score",
                 "score", "grade", "temperature")
# With these bands and the data below, about 5% of leads reach MQL and 10% are hot.
SETTINGS = {"mql_score": 75, "mql_min_grade": "B", "grade_bands": {"A": 55, "B": 40, "C": 25, "D": 10},
            "temperature_bands": {"warm": 40, "hot": 70}}

# (name, kind, points, condition, max_occurrences, window_days). The bound's SQL below spells each one out.
RULES = [
    ("Target industry", "fit", 20,
     {"field": "industry", "op": "in", "value": ["Software", "Technology", "Financial Services"]}, None, None),
    ("Company of 50 to 5,000", "fit", 15, {"field": "company_size", "op": "between", "value": [50, 5000]}, None, None),
    ("Enterprise size", "fit", 10, {"field": "company_size", "op": "gt", "value": 5000}, None, None),
    ("Core market", "fit", 10, {"field": "country", "op": "in", "value": ["US", "GB", "DE", "CA"]}, None, None),
    ("Decision-maker title", "fit", 15,
     {"field": "job_title", "op": "contains", "value": ["chief", "head", "director", "vp", "founder", "owner"]},
     None, None),
    ("Student or intern", "fit", -20, {"field": "job_title", "op": "contains", "value": ["student", "intern"]},
     None, None),
    ("No company given", "fit", -10, {"field": "company", "op": "is_empty"}, None, None),
    ("Enterprise plan", "fit", 10, {"field": "custom_fields.plan", "op": "eq", "value": "enterprise"}, None, None),
    ("Budget of 10,000 or more", "fit", 10, {"field": "custom_fields.budget", "op": "gte", "value": 10000},
     None, None),
    ("Public sector or education", "fit", -5,
     {"field": "industry", "op": "in", "value": ["Education", "Government"]}, None, None),
    ("Pricing page", "behavior", 10,
     {"activity_type": "page_view", "property": "url", "op": "contains", "value": "/pricing"}, 3, 30),
    ("Demo page", "behavior", 15,
     {"activity_type": "page_view", "property": "url", "op": "contains", "value": "/demo"}, 2, 60),
    ("Blog reader", "behavior", 2,
     {"activity_type": "page_view", "property": "url", "op": "contains", "value": "/blog/"}, 10, 90),
    ("Careers page", "behavior", -5,
     {"activity_type": "page_view", "property": "url", "op": "contains", "value": "/careers"}, 1, None),
    ("Any page view", "behavior", 1, {"activity_type": "page_view"}, 20, 30),
    ("Contact-sales form", "behavior", 25,
     {"activity_type": "form_submission", "property": "form", "op": "eq", "value": "contact-sales"}, 1, None),
    ("Any form", "behavior", 10, {"activity_type": "form_submission"}, 3, None),
    ("Email opened", "behavior", 1, {"activity_type": "email_open"}, 10, 60),
    ("Email clicked", "behavior", 5, {"activity_type": "email_click"}, 5, 60),
    ("Pricing link in an email", "behavior", 5,
     {"activity_type": "email_click", "property": "url", "op": "contains", "value": "/pricing"}, 2, 30),
    ("Whitepaper download", "behavior", 8,
     {"activity_type": "download", "property": "asset", "op": "starts_with", "value": "whitepaper"}, 3, None),
    ("Any download", "behavior", 4, {"activity_type": "download"}, 5, 180),
    ("Webinar attended", "behavior", 20, {"activity_type": "webinar_attended"}, 2, None),
    ("Unsubscribed", "behavior", -25, {"activity_type": "unsubscribe"}, 1, None),
    ("Email bounced", "behavior", -10, {"activity_type": "email_bounce"}, 1, None),
]
INACTIVE_RULE = ("Old trade-show rule", "behavior", 50, {"activity_type": "event_attended"}, None, None)

# The bound: every rule above written out by hand in one statement. Behaviour caps use one window pass per lead
# (a running count per rule over the lead's activities, newest first) instead of a row per (activity, rule).
BOUND_SQL = """
WITH fit AS (
    SELECT id,
        CASE WHEN upper(industry) IN ('SOFTWARE', 'TECHNOLOGY', 'FINANCIAL SERVICES') THEN 20 ELSE 0 END
        + CASE WHEN company_size >= 50 AND company_size <= 5000 THEN 15 ELSE 0 END
        + CASE WHEN company_size > 5000 THEN 10 ELSE 0 END
        + CASE WHEN upper(country) IN ('US', 'GB', 'DE', 'CA') THEN 10 ELSE 0 END
        + CASE WHEN job_title ILIKE ANY (ARRAY['%%chief%%', '%%head%%', '%%director%%', '%%vp%%', '%%founder%%',
                                               '%%owner%%']) THEN 15 ELSE 0 END
        + CASE WHEN lower(coalesce(custom_fields ->> 'plan', '')) = 'enterprise' THEN 10 ELSE 0 END
        + CASE WHEN (CASE WHEN jsonb_typeof(custom_fields -> 'budget') = 'number'
                          THEN (custom_fields ->> 'budget')::numeric
                          WHEN jsonb_typeof(custom_fields -> 'budget') = 'string'
                               AND custom_fields ->> 'budget' ~ '^\\s*-?[0-9]+(\\.[0-9]+)?\\s*$'
                          THEN (custom_fields ->> 'budget')::numeric END) >= 10000 THEN 10 ELSE 0 END
        AS fit_gained,
        CASE WHEN job_title ILIKE ANY (ARRAY['%%student%%', '%%intern%%']) THEN -20 ELSE 0 END
        + CASE WHEN company = '' THEN -10 ELSE 0 END
        + CASE WHEN upper(industry) IN ('EDUCATION', 'GOVERNMENT') THEN -5 ELSE 0 END
        AS fit_lost
    FROM leads_lead WHERE organization_id = %(org)s
    OFFSET 0  -- a fence: each lead's fit is computed once, not again in every expression that uses it
),
flags AS (
    SELECT lead_id, occurred_at, {weight} AS w,
        type = 'page_view' AND url ILIKE '%%/pricing%%' AND occurred_at >= %(now)s - interval '30 days' AS h1,
        type = 'page_view' AND url ILIKE '%%/demo%%' AND occurred_at >= %(now)s - interval '60 days' AS h2,
        type = 'page_view' AND url ILIKE '%%/blog/%%' AND occurred_at >= %(now)s - interval '90 days' AS h3,
        type = 'page_view' AND url ILIKE '%%/careers%%' AS h4,
        type = 'page_view' AND occurred_at >= %(now)s - interval '30 days' AS h5,
        type = 'form_submission' AND lower(coalesce(properties ->> 'form', '')) = 'contact-sales' AS h6,
        type = 'form_submission' AS h7,
        type = 'email_open' AND occurred_at >= %(now)s - interval '60 days' AS h8,
        type = 'email_click' AND occurred_at >= %(now)s - interval '60 days' AS h9,
        type = 'email_click' AND url ILIKE '%%/pricing%%' AND occurred_at >= %(now)s - interval '30 days' AS h10,
        type = 'download' AND coalesce(properties ->> 'asset', '') ILIKE 'whitepaper%%' AS h11,
        type = 'download' AND occurred_at >= %(now)s - interval '180 days' AS h12,
        type = 'webinar_attended' AS h13,
        type = 'unsubscribe' AS h14,
        type = 'email_bounce' AS h15
    FROM (SELECT lead_id, occurred_at, type, properties, coalesce(properties ->> 'url', '') AS url
          FROM leads_activity
          WHERE organization_id = %(org)s
            AND type IN ('page_view', 'form_submission', 'email_open', 'email_click', 'download',
                         'webinar_attended', 'unsubscribe', 'email_bounce')) a
),
counted AS (
    SELECT lead_id, w, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15,
        count(*) FILTER (WHERE h1) OVER newest AS n1, count(*) FILTER (WHERE h2) OVER newest AS n2,
        count(*) FILTER (WHERE h3) OVER newest AS n3, count(*) FILTER (WHERE h4) OVER newest AS n4,
        count(*) FILTER (WHERE h5) OVER newest AS n5, count(*) FILTER (WHERE h6) OVER newest AS n6,
        count(*) FILTER (WHERE h7) OVER newest AS n7, count(*) FILTER (WHERE h8) OVER newest AS n8,
        count(*) FILTER (WHERE h9) OVER newest AS n9, count(*) FILTER (WHERE h10) OVER newest AS n10,
        count(*) FILTER (WHERE h11) OVER newest AS n11, count(*) FILTER (WHERE h12) OVER newest AS n12,
        count(*) FILTER (WHERE h13) OVER newest AS n13, count(*) FILTER (WHERE h14) OVER newest AS n14,
        count(*) FILTER (WHERE h15) OVER newest AS n15
    FROM flags
    WINDOW newest AS (PARTITION BY lead_id ORDER BY occurred_at DESC ROWS UNBOUNDED PRECEDING)
),
behavior AS (
    SELECT lead_id,
        round(coalesce(sum(10 * w) FILTER (WHERE h1 AND n1 <= 3), 0)
            + coalesce(sum(15 * w) FILTER (WHERE h2 AND n2 <= 2), 0)
            + coalesce(sum(2 * w) FILTER (WHERE h3 AND n3 <= 10), 0)
            + coalesce(sum(1 * w) FILTER (WHERE h5 AND n5 <= 20), 0)
            + coalesce(sum(25 * w) FILTER (WHERE h6 AND n6 <= 1), 0)
            + coalesce(sum(10 * w) FILTER (WHERE h7 AND n7 <= 3), 0)
            + coalesce(sum(1 * w) FILTER (WHERE h8 AND n8 <= 10), 0)
            + coalesce(sum(5 * w) FILTER (WHERE h9 AND n9 <= 5), 0)
            + coalesce(sum(5 * w) FILTER (WHERE h10 AND n10 <= 2), 0)
            + coalesce(sum(8 * w) FILTER (WHERE h11 AND n11 <= 3), 0)
            + coalesce(sum(4 * w) FILTER (WHERE h12 AND n12 <= 5), 0)
            + coalesce(sum(20 * w) FILTER (WHERE h13 AND n13 <= 2), 0))::int AS gained,
        round(coalesce(sum(-5 * w) FILTER (WHERE h4 AND n4 <= 1), 0)
            + coalesce(sum(-25 * w) FILTER (WHERE h14 AND n14 <= 1), 0)
            + coalesce(sum(-10 * w) FILTER (WHERE h15 AND n15 <= 1), 0))::int AS lost
    FROM counted GROUP BY lead_id
),
totals AS (
    SELECT f.id, f.fit_gained, f.fit_lost, coalesce(b.gained, 0) AS behavior_gained,
           coalesce(b.lost, 0) AS behavior_lost, f.fit_gained + f.fit_lost AS fit_score,
           coalesce(b.gained, 0) + coalesce(b.lost, 0) AS behavior_score,
           f.fit_gained + f.fit_lost + coalesce(b.gained, 0) + coalesce(b.lost, 0) AS score
    FROM fit f LEFT JOIN behavior b ON b.lead_id = f.id
),
scored AS (
    SELECT t.*,
        CASE WHEN fit_score >= %(grade_a)s THEN 'A' WHEN fit_score >= %(grade_b)s THEN 'B'
             WHEN fit_score >= %(grade_c)s THEN 'C' WHEN fit_score >= %(grade_d)s THEN 'D' ELSE 'F' END AS grade,
        CASE WHEN score >= %(hot)s THEN 'hot' WHEN score >= %(warm)s THEN 'warm' ELSE 'cold' END AS temperature
    FROM totals t
)
UPDATE leads_lead l
SET fit_gained = s.fit_gained, fit_lost = s.fit_lost, behavior_gained = s.behavior_gained,
    behavior_lost = s.behavior_lost, fit_score = s.fit_score, behavior_score = s.behavior_score, score = s.score,
    grade = s.grade, temperature = s.temperature
FROM scored s
WHERE l.id = s.id AND l.organization_id = %(org)s
  AND (l.fit_gained, l.fit_lost, l.behavior_gained, l.behavior_lost, l.fit_score, l.behavior_score, l.score,
       l.grade, l.temperature)
      IS DISTINCT FROM (s.fit_gained, s.fit_lost, s.behavior_gained, s.behavior_lost, s.fit_score,
                        s.behavior_score, s.score, s.grade, s.temperature)
"""
NO_DECAY = "1::float8"
# The same weight as the app's, so the two agree to the last bit when decay is on.
DECAY = ("power(0.5::float8, greatest(0, extract(epoch FROM (%(now)s::timestamptz - occurred_at)))"
         " / 86400.0 / %(half_life)s)")


# ----------------------------------------------------------------------------------------------- building

LEADS_SQL_FROM = """
FROM (
    SELECT i, random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5, random() AS r6,
           random() AS r7, random() AS r8
    FROM generate_series(%(first)s::int, %(last)s::int) AS i
) g
"""
LEAD_EXPRESSIONS = {
    "id": "gen_random_uuid()",
    "organization_id": "%(org)s::uuid",
    "email": "'lead' || i || '@' || %(domain)s",
    "first_name": "(ARRAY['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Margaret', 'Linus'])"
                  "[1 + (i %% 8)]",
    "last_name": "(ARRAY['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Hamilton'])[1 + (i %% 7)]",
    "company": "CASE WHEN r1 < 0.06 THEN '' ELSE 'Company ' || (i %% 40000) END",
    "industry": "(ARRAY['Software', 'Technology', 'Financial Services', 'Finance', 'Healthcare', 'Retail',"
                " 'Manufacturing', 'Education', 'Government', 'Media', 'Consulting', ''])[1 + floor(r2 * 12)::int]",
    "company_size": "CASE WHEN r3 < 0.12 THEN NULL ELSE floor(power(10, 0.5 + r3 * 4.2))::int END",
    "country": "(ARRAY['US', 'US', 'US', 'GB', 'DE', 'FR', 'CA', 'AU', 'NL', 'IN', 'BR', 'JP', ''])"
               "[1 + floor(r4 * 13)::int]",
    "job_title": "(ARRAY['CTO', 'VP Marketing', 'Head of Sales', 'Director of IT', 'Engineer', 'Founder', 'Student',"
                 " 'Marketing Manager', 'Analyst', 'Chief Revenue Officer', 'Owner', 'Intern', 'Developer', ''])"
                 "[1 + floor(r5 * 14)::int]",
    "custom_fields": "CASE WHEN r6 < 0.3 THEN '{}'::jsonb ELSE jsonb_build_object("
                     "'plan', (ARRAY['free', 'pro', 'enterprise'])[1 + floor(r7 * 3)::int],"
                     " 'budget', CASE WHEN r8 < 0.1 THEN to_jsonb('about ' || floor(r8 * 100000)::text)"
                     " ELSE to_jsonb(floor(r8 * 50000)::int) END) END",
    "lifecycle_stage": "CASE WHEN r1 > 0.97 THEN 'customer' WHEN r1 > 0.85 THEN 'subscriber' ELSE 'lead' END",
    "stage_entered_at": "'{}'::jsonb",
    "source_type": "'inbound'",
    "last_activity_at": "%(now)s", "created_at": "%(now)s", "updated_at": "%(now)s",
}
# Activities per lead cycle through these counts (mean 5), so some leads have many and the caps matter.
PER_LEAD = [0, 1, 2, 3, 4, 5, 6, 7, 9, 13]
# Leads and their activities in one statement per batch. Activity times lie on whole days before the anchor,
# between 1 and 21 hours off it, so a window edge (now minus whole days) never falls among them while a run
# lasts: every repetition scores the same facts.
BATCH_SQL = """
WITH leads AS (INSERT INTO leads_lead ({columns}) SELECT {select} {source} RETURNING id),
numbered AS (SELECT id, row_number() OVER () AS n FROM leads)
INSERT INTO leads_activity (id, organization_id, lead_id, type, properties, occurred_at, actor_id, created_at)
SELECT gen_random_uuid(), %(org)s::uuid, lead_id, type,
    CASE type
        WHEN 'page_view' THEN jsonb_build_object('url', 'https://www.example.com' || (ARRAY['/', '/pricing',
            '/pricing/enterprise', '/demo', '/blog/scoring-101', '/blog/lead-routing', '/docs/start', '/careers',
            '/product', '/customers'])[1 + floor(p * 10)::int])
        WHEN 'form_submission' THEN jsonb_build_object('form', (ARRAY['contact-sales', 'newsletter',
            'ebook-download', 'webinar-signup'])[1 + floor(p * 4)::int])
        WHEN 'download' THEN jsonb_build_object('asset', (ARRAY['whitepaper-scoring.pdf', 'Whitepaper-ROI.pdf',
            'case-study-acme.pdf', 'datasheet.pdf'])[1 + floor(p * 4)::int])
        WHEN 'email_click' THEN jsonb_build_object('message', 'm-' || floor(p * 1000)::int, 'url',
            'https://www.example.com' || (ARRAY['/pricing', '/blog/scoring-101', '/product'])[1 + floor(p * 3)::int])
        WHEN 'email_open' THEN jsonb_build_object('message', 'm-' || floor(p * 1000)::int)
        ELSE '{{}}'::jsonb
    END,
    %(anchor)s::timestamptz - floor(d * 180) * interval '1 day' - interval '1 hour' - s * interval '20 hours',
    NULL, %(anchor)s::timestamptz
FROM (
    SELECT lead_id, p, d, s,
        CASE WHEN r < 0.42 THEN 'page_view' WHEN r < 0.60 THEN 'email_open' WHEN r < 0.68 THEN 'email_click'
             WHEN r < 0.73 THEN 'form_submission' WHEN r < 0.78 THEN 'download' WHEN r < 0.87 THEN 'email_sent'
             WHEN r < 0.89 THEN 'webinar_attended' WHEN r < 0.90 THEN 'unsubscribe'
             WHEN r < 0.91 THEN 'email_bounce' WHEN r < 0.95 THEN 'note' ELSE 'call' END AS type
    FROM (SELECT numbered.id AS lead_id, random() AS r, random() AS p, random() AS d, random() AS s
          FROM numbered CROSS JOIN LATERAL generate_series(1, (%(per_lead)s::int[])[1 + numbered.n %% 10])) x
) a
"""


def create_org() -> Organization:
    slug = f"bench-scoring-{os.getpid()}"
    return core_services.create_organization(slug=slug, name="Scoring benchmark",
                                             owner_email=f"{slug}@bench.invalid", owner_password=None)


def build(organization: Organization, leads: int, anchor) -> None:
    """The rules, the settings, then the leads and their activities in batches."""
    org, slug = organization.pk, organization.slug
    ScoringRule.objects.filter(organization_id=org).delete()  # the default rule set; these replace it
    rules = []
    for name, kind, points, condition, cap, window in [*RULES, INACTIVE_RULE]:
        condition = scoring.clean_rule(kind=kind, condition=condition, points=points, max_occurrences=cap,
                                       window_days=window)
        rules.append(ScoringRule(organization_id=org, name=name, kind=kind, points=points, condition=condition,
                                 max_occurrences=cap, window_days=window, active=(name != INACTIVE_RULE[0])))
    ScoringRule.objects.bulk_create(rules)
    ScoringSettings.objects.filter(organization_id=org).update(**SETTINGS)

    started = time.perf_counter()
    params = {"org": str(org), "domain": f"{slug}.bench.invalid", "now": anchor, "anchor": anchor,
              "per_lead": PER_LEAD}
    columns, select = imports._insert_sql(Lead, LEAD_EXPRESSIONS, params)
    sql = BATCH_SQL.format(columns=columns, select=select, source=LEADS_SQL_FROM)
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.31)")
        insert_in_batches(cursor, sql, params, leads, started)
    print(f", {Activity.objects.for_org(org).count():,} activities, in {time.perf_counter() - started:.0f} s")


def insert_in_batches(cursor, sql: str, params: dict, leads: int, started: float) -> None:
    """Run a lead-building statement over `first`..`last` ranges of BATCH_LEADS leads, one transaction each, with
    progress, refreshing the planner's statistics of what it built after each: on a new database they would call
    the lead table empty, and the foreign-key checks of each batch's activities (at its commit) would then walk a
    whole index per row instead of reading the primary key, ever slower as the table grows."""
    for first in range(0, leads, BATCH_LEADS):
        last = min(leads, first + BATCH_LEADS) - 1
        with transaction.atomic():
            cursor.execute(sql, {**params, "first": first, "last": last})
        cursor.execute("ANALYZE leads_lead")
        cursor.execute("ANALYZE leads_activity")
        print(f"\r  built {last + 1:,} leads ({time.perf_counter() - started:.0f} s)", end="", flush=True)


# ----------------------------------------------------------------------------------------------- measuring

def reset(org) -> None:
    """Scores back to their never-scored values, MQL promotions of the last run undone, snapshots removed, then
    VACUUM, so every run starts from the same state and writes every lead."""
    zeroes = ", ".join(f"{c} = 0" for c in SCORE_COLUMNS if c not in ("grade", "temperature"))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE leads_lead l SET lifecycle_stage = a.properties ->> 'from',"
                       " stage_entered_at = l.stage_entered_at - 'mql'"
                       " FROM leads_activity a WHERE a.organization_id = %s AND a.type = 'stage_change'"
                       " AND l.id = a.lead_id AND l.organization_id = %s", [org, org])
        cursor.execute("DELETE FROM leads_activity WHERE organization_id = %s AND type = 'stage_change'", [org])
        cursor.execute("DELETE FROM scoring_scoresnapshot WHERE organization_id = %s", [org])
        cursor.execute(f"UPDATE leads_lead SET {zeroes}, grade = '', temperature = '' WHERE organization_id = %s",
                       [org])
    with connection.cursor() as cursor:
        for table in ("leads_lead", "leads_activity", "scoring_scoresnapshot"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        try:
            cursor.execute("CHECKPOINT")  # neither run pays for writing out the other's pages
        except Exception:  # needs a superuser or pg_checkpoint; the runs are still comparable without it
            pass


class StatementClock:
    """Time per kind of statement of ours, from a database execute wrapper."""

    KINDS = {"scoring_scoresnapshot": "score statements (UPDATE + snapshots)",
             "INSERT INTO leads_activity": "MQL promotion"}

    def __init__(self):
        self.seconds, self.count = defaultdict(float), defaultdict(int)

    def __call__(self, execute, sql, params, many, context):
        kind = next((label for marker, label in self.KINDS.items() if marker in sql),
                    "chunk bounds, progress, settings")
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds[kind] += time.perf_counter() - started
            self.count[kind] += 1


def run_ours(org) -> tuple[float, StatementClock]:
    clock = StatementClock()
    # The Celery task request_recalculation enqueues would call recalculate_organization; it is called here.
    with mock.patch.object(scoring_tasks.recalculate, "delay"), connection.execute_wrapper(clock):
        started = time.perf_counter()
        scoring.request_recalculation(organization_id=org)
        scoring.recalculate_organization(organization_id=org)
        seconds = time.perf_counter() - started
    assert ScoringSettings.objects.get(organization_id=org).recalc_status == "idle"
    return seconds, clock


def bound_params(org, now, half_life) -> dict:
    bands = SETTINGS["grade_bands"]
    return {"org": org, "now": now, "half_life": half_life, "grade_a": bands["A"], "grade_b": bands["B"],
            "grade_c": bands["C"], "grade_d": bands["D"], **SETTINGS["temperature_bands"]}


def bound_sql(half_life) -> str:
    return BOUND_SQL.replace("{weight}", DECAY if half_life else NO_DECAY)


BOUND_SETTINGS = "SET LOCAL jit = off"


def run_bound(org, now, half_life) -> float:
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(BOUND_SETTINGS)
        cursor.execute(bound_sql(half_life), bound_params(org, now, half_life))
    return time.perf_counter() - started


def keep_ours(org) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS pg_temp.bench_ours")
        cursor.execute(f"CREATE TEMP TABLE bench_ours AS SELECT id, {', '.join(SCORE_COLUMNS)} FROM leads_lead"
                       " WHERE organization_id = %s", [org])


def differences(org) -> tuple[int, int, list]:
    """(leads compared, leads whose nine numbers differ between ours and the bound, a few examples)."""
    ours = ", ".join(f"o.{c}" for c in SCORE_COLUMNS)
    bound = ", ".join(f"l.{c}" for c in SCORE_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), count(*) FILTER (WHERE ({ours}) IS DISTINCT FROM ({bound})) FROM leads_lead l"
                       " LEFT JOIN pg_temp.bench_ours o ON o.id = l.id WHERE l.organization_id = %s", [org])
        compared, differing = cursor.fetchone()
        cursor.execute(f"SELECT l.id, ({ours})::text, ({bound})::text FROM leads_lead l"
                       f" LEFT JOIN pg_temp.bench_ours o ON o.id = l.id WHERE l.organization_id = %s"
                       f" AND ({ours}) IS DISTINCT FROM ({bound}) LIMIT 5", [org])
        return compared, differing, cursor.fetchall()


def scoring_now(org, fallback):
    """The `now` ours scored with (its snapshots carry it), so the bound's windows end at the same instant."""
    recorded = ScoreSnapshot.objects.for_org(org).order_by("-recorded_at").values_list("recorded_at", flat=True)
    return recorded.first() or fallback


def outcome(org) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT grade, count(*) FROM leads_lead WHERE organization_id = %s GROUP BY 1 ORDER BY 1",
                       [org])
        grades = ", ".join(f"{grade} {count:,}" for grade, count in cursor.fetchall())
        cursor.execute("SELECT temperature, count(*) FROM leads_lead WHERE organization_id = %s GROUP BY 1"
                       " ORDER BY 1", [org])
        temperatures = ", ".join(f"{t} {count:,}" for t, count in cursor.fetchall())
        cursor.execute("SELECT round(avg(score), 1), max(score), min(score),"
                       " count(*) FILTER (WHERE lifecycle_stage = 'mql') FROM leads_lead WHERE organization_id = %s",
                       [org])
        avg, high, low, mql = cursor.fetchone()
    return (f"scores: mean {avg}, min {low}, max {high}; grades: {grades}; temperature: {temperatures}; "
            f"promoted to MQL: {mql:,}")


# ----------------------------------------------------------------------------------------------- EXPLAIN

class Explainer:
    """Before ours' scoring and promotion statements run, EXPLAIN (ANALYZE, BUFFERS) each inside a savepoint
    that is rolled back, and print the plan; the statement itself then runs as usual."""

    MARKERS = ("scoring_scoresnapshot", "INSERT INTO leads_activity")

    def __init__(self, label: str):
        self.label = label

    def __call__(self, execute, sql, params, many, context):
        if any(marker in sql for marker in self.MARKERS):
            execute("SAVEPOINT bench_explain", None, False, context)
            execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params, False, context)
            plan = "\n".join(row[0] for row in context["cursor"].fetchall())
            execute("ROLLBACK TO SAVEPOINT bench_explain", None, False, context)
            print(f"\n--- EXPLAIN (ANALYZE, BUFFERS) of ours, {self.label}: {sql.strip()[:60]}...\n{plan}")
        return execute(sql, params, many, context)


def explain(org, half_life) -> None:
    reset(org)
    config = scoring.load_config(org)
    leads = Lead.objects.for_org(org).order_by("id").values_list("id", flat=True)
    low = leads.first()
    high = leads[scoring.RECALC_CHUNK - 1:scoring.RECALC_CHUNK].first() or leads.order_by("-id").first()
    with connection.execute_wrapper(Explainer("one chunk")):
        scoring.score_leads(organization_id=org, config=config, scope={"id__gte": low, "id__lte": high})
    busiest = (Activity.objects.for_org(org).values("lead_id").annotate(n=Count("id")).order_by("-n")
               .values_list("lead_id", flat=True).first())
    with connection.execute_wrapper(Explainer("one lead, as instant scoring runs it")):
        scoring.score_lead(organization_id=org, lead_id=busiest)
    reset(org)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(BOUND_SETTINGS)
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + bound_sql(half_life), bound_params(org, config.now, half_life))
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    print(f"\n--- EXPLAIN (ANALYZE, BUFFERS) of the bound (whole org, rolled back)\n{plan}")


# ----------------------------------------------------------------------------------------------- main

def cleanup(organization: Organization) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        for table in ("scoring_scoresnapshot", "leads_touch", "leads_activity", "leads_lead"):
            cursor.execute(f"DELETE FROM {table} WHERE organization_id = %s", [organization.pk])
    users = [m.user for m in organization.memberships.select_related("user")]
    organization.delete()
    for user in users:
        user.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads to build (activities: about 5 each)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the median is reported")
    parser.add_argument("--decay-half-life", type=int, default=None, help="days; behaviour points decay")
    parser.add_argument("--explain", action="store_true", help="print the plans of one chunk, one lead and the bound")
    parser.add_argument("--keep", action="store_true", help="keep the org (to re-use with --org)")
    parser.add_argument("--org", help="the slug of an org a previous --keep run built: skip building, keep it")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    # The throwaway org's promotions must not queue work (routing, webhooks, ...) for real consumers.
    for event in (events.LEAD_MQL, events.LEAD_STAGE_CHANGED):
        events._handlers.pop(event, None)

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
        cursor.execute("SHOW work_mem")
        work_mem = cursor.fetchone()[0]
    print(f"Scoring benchmark: PostgreSQL {version} (work_mem {work_mem}), {os.cpu_count()} CPUs, "
          f"chunk {scoring.RECALC_CHUNK:,} leads")
    organization = Organization.objects.get(slug=args.org) if args.org else create_org()
    org = organization.pk
    try:
        if not args.org:
            build(organization, args.leads, timezone.now())
        ScoringSettings.objects.filter(organization_id=org).update(decay_half_life_days=args.decay_half_life)
        leads = Lead.objects.for_org(org).count()
        activities = Activity.objects.for_org(org).count()
        rules = ScoringRule.objects.for_org(org).filter(active=True)
        print(f"org {organization.slug}: {leads:,} leads, {activities:,} activities, "
              f"{rules.filter(kind='fit').count()} fit + {rules.filter(kind='behavior').count()} behaviour rules, "
              f"decay {f'half-life {args.decay_half_life} days' if args.decay_half_life else 'off'}")
        ours_runs, bound_runs, clocks = [], [], []
        for run in range(args.repeat):
            reset(org)
            seconds, clock = run_ours(org)
            ours_runs.append(seconds)
            clocks.append(clock)
            now = scoring_now(org, timezone.now())
            print(f"run {run + 1}: ours  {seconds:8.1f} s  {leads / seconds:10,.0f} leads/s   {outcome(org)}")
            keep_ours(org)
            reset(org)
            seconds = run_bound(org, now, args.decay_half_life)
            bound_runs.append(seconds)
            compared, differing, examples = differences(org)
            print(f"run {run + 1}: bound {seconds:8.1f} s  {leads / seconds:10,.0f} leads/s   "
                  f"{differing:,} of {compared:,} leads differ from ours")
            for example in examples:
                print(f"    lead {example[0]}: ours {example[1]}, bound {example[2]}")
            if differing:
                raise SystemExit("ours and the bound disagree: fix before reading any timing")
        if args.explain:
            explain(org, args.decay_half_life)
    finally:
        if args.keep or args.org:  # an org given with --org is never deleted here
            print(f"kept org {organization.slug} (re-use with --org {organization.slug})")
        else:
            reset(org)
            cleanup(organization)

    if not ours_runs:  # --repeat 0 --explain: plans only
        return
    ours, bound = statistics.median(ours_runs), statistics.median(bound_runs)
    print(f"\n{'median of ' + str(args.repeat) + ' run(s)':<58}{'seconds':>8}{'leads/s':>11}")
    print(f"{'bound: one hand-written UPDATE for the whole org':<58}{bound:8.1f}{leads / bound:11,.0f}")
    print(f"{'ours: request_recalculation + recalculate_organization':<58}{ours:8.1f}{leads / ours:11,.0f}")
    ratio = bound / ours
    print(f"ours / bound = {ratio:.0%} ({'meets' if ratio >= 0.5 else 'below'} the goal of >= 50%)")
    clock = clocks[min(range(len(ours_runs)), key=lambda i: abs(ours_runs[i] - ours))]
    print("where ours spent its time (run nearest the median):")
    for kind, seconds in sorted(clock.seconds.items(), key=lambda item: -item[1]):
        print(f"  {kind:<44}{seconds:8.1f} s  {clock.count[kind]:6d} statements")
    python = ours - sum(clock.seconds.values())
    print(f"  {'commits, and Python between statements':<44}{python:8.1f} s")


if __name__ == "__main__":
    main()
