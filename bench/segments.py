"""Segment benchmark: the count and the first page of a 5-condition segment beside the same queries written by hand.

    make bench-segments             (= python bench/segments.py: 1,000,000 leads, about 5,000,000 activities)
    python bench/segments.py --leads 20000 --repeat 5

Builds a throwaway org set-based in SQL with the generator of bench/scoring_bulk.py (INSERT ... SELECT over
generate_series, in batches; leads with a realistic spread of country, industry, size and title, about 5
activities each over the last 180 days), here with leads created over two years in the order they are stored,
then VACUUM (ANALYZE). The segment has four lead-field conditions and one behaviour condition:

    country in (US, GB, DE, CA)  and  industry in (Software, Technology, Financial Services)
    and  company size between 50 and 5,000  and  job title contains any of (chief, head, director, vp, founder)
    and  viewed a page whose url contains /pricing at least 2 times in the last 90 days

Then, repeatedly and alternating (after one unmeasured warm-up round):

  * count, ours        - selectors.segment_leads(segment).count(): the one SQL statement our code runs;
  * count, bound       - the same count written by hand in SQL;
  * first page, ours   - GET /api/v1/segments/{id}/leads/ through the whole API (API-key authentication, the
                         cursor paginator, one query for 51 rows, LeadSerializer for 50), and separately the
                         ORM query of that page alone;
  * first page, bound  - the same 51 rows, newest first, written by hand.

The behaviour test has two natural hand-written forms (a correlated count per lead, and an IN over activities
grouped per lead); both are timed and the faster is the bound. Every run checks that ours and the bounds agree
(same count, same ids in the same order). Prints the median of each, the ratios (goal: ours within 1.5x of the
bound) and whether the first page meets 200 ms. `--explain` prints EXPLAIN (ANALYZE, BUFFERS) of each statement.
`--jit off` switches PostgreSQL's JIT compilation off for the run (see bench/README.md for why it matters here).
The measured statements run as the app does, under row-level security (the app role, the org set); `--rls off`
runs ours and the bounds as the login role instead, to show what the policy costs (the API request is always
under it).
The org is deleted afterwards unless `--keep`; `--org SLUG` re-uses one kept earlier.
"""

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")

import django  # noqa: E402

django.setup()

import scoring_bulk as generator  # noqa: E402  (bench/scoring_bulk.py: builds the big org)
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from leadcrm import rls  # noqa: E402
from leadcrm import services as core_services  # noqa: E402
from leadcrm.models import Organization  # noqa: E402
from leads import imports, selectors, services  # noqa: E402
from leads.models import Activity, Lead, Segment  # noqa: E402

PAGE_SIZE = 50
DEFINITION = {"all": [
    {"field": "country", "op": "in", "value": ["US", "GB", "DE", "CA"]},
    {"field": "industry", "op": "in", "value": ["Software", "Technology", "Financial Services"]},
    {"field": "company_size", "op": "between", "value": [50, 5000]},
    {"field": "job_title", "op": "contains", "value": ["chief", "head", "director", "vp", "founder"]},
    {"activity": "page_view", "property": "url", "op": "contains", "value": "/pricing", "min_count": 2,
     "within_days": 90},
]}

# The four field conditions, by hand (text compares case-insensitively, as the condition language does).
FIELDS_SQL = """
    l.organization_id = %(org)s
    AND upper(l.country) IN ('US', 'GB', 'DE', 'CA')
    AND upper(l.industry) IN ('SOFTWARE', 'TECHNOLOGY', 'FINANCIAL SERVICES')
    AND l.company_size >= 50 AND l.company_size <= 5000
    AND l.job_title ILIKE ANY (ARRAY['%%chief%%', '%%head%%', '%%director%%', '%%vp%%', '%%founder%%'])
"""
PRICING_VIEWS = """
    a.organization_id = %(org)s AND a.type = 'page_view'
    AND coalesce(a.properties ->> 'url', '') ILIKE '%%/pricing%%'
    AND a.occurred_at >= %(now)s::timestamptz - interval '90 days'
"""
BEHAVIOUR_SQL = {
    "correlated": f"""
        AND (SELECT count(*) FROM leads_activity a WHERE a.lead_id = l.id AND {PRICING_VIEWS}) >= 2""",
    "grouped": f"""
        AND l.id IN (SELECT a.lead_id FROM leads_activity a WHERE {PRICING_VIEWS}
                     GROUP BY a.lead_id HAVING count(*) >= 2)""",
}


def count_sql(form: str) -> str:
    return f"SELECT count(*) FROM leads_lead l WHERE {FIELDS_SQL} {BEHAVIOUR_SQL[form]}"


def page_sql(form: str) -> str:
    return (f"SELECT l.* FROM leads_lead l WHERE {FIELDS_SQL} {BEHAVIOUR_SQL[form]}"
            f" ORDER BY l.created_at DESC, l.id DESC LIMIT {PAGE_SIZE + 1}")


def timed(run):
    started = time.perf_counter()
    result = run()
    return (time.perf_counter() - started) * 1000, result


# ----------------------------------------------------------------------------------------------- ours


def ours_count(segment):
    return selectors.segment_leads(segment).count()


def ours_page_query(segment):
    """The ORM query of the API's first page, as its cursor paginator builds it (page size + 1 rows)."""
    rows = selectors.segment_leads(segment).order_by("-created_at", "-pk")[:PAGE_SIZE + 1]
    return [lead.pk for lead in rows]


def ours_page_api(client, segment):
    response = client.get(f"/api/v1/segments/{segment.pk}/leads/", {"page_size": PAGE_SIZE})
    assert response.status_code == 200, response.content[:300]
    return [row["id"] for row in response.json()["results"]]


def bound(sql: str, params: dict):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class Explainer:
    """Runs EXPLAIN (ANALYZE, BUFFERS) of each statement before it executes, and prints the plan."""

    def __init__(self, label: str):
        self.label = label

    def __call__(self, execute, sql, params, many, context):
        if "leads_lead" in sql:
            execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params, False, context)
            plan = "\n".join(row[0] for row in context["cursor"].fetchall())
            print(f"\n--- EXPLAIN (ANALYZE, BUFFERS): {self.label}\n{plan}")
        return execute(sql, params, many, context)


def explain(segment, params) -> None:
    with connection.execute_wrapper(Explainer("count, ours")):
        ours_count(segment)
    with connection.execute_wrapper(Explainer("first page, ours (the API's query)")):
        ours_page_query(segment)
    for form in BEHAVIOUR_SQL:
        with connection.execute_wrapper(Explainer(f"count, bound ({form})")):
            bound(count_sql(form), params)
        with connection.execute_wrapper(Explainer(f"first page, bound ({form})")):
            bound(page_sql(form), params)


# ----------------------------------------------------------------------------------------------- main


# Leads arrive over two years, in the order they are stored (the generator of bench/scoring_bulk.py gives them all
# the same time, which would make "newest first" a random walk over the table instead of the usual backward one).
CREATED_AT = ("%(anchor)s::timestamptz - interval '730 days' * (1 - i::float8 / %(leads)s)")


def build(organization: Organization, leads: int, anchor) -> None:
    """Leads and their activities, set-based, with the SQL of bench/scoring_bulk.py; then VACUUM (ANALYZE), the
    state autovacuum keeps a table in."""
    org = organization.pk
    params = {"org": str(org), "domain": f"{organization.slug}.bench.invalid", "now": anchor, "anchor": anchor,
              "per_lead": generator.PER_LEAD, "leads": leads}
    expressions = {**generator.LEAD_EXPRESSIONS, "created_at": CREATED_AT, "updated_at": CREATED_AT}
    columns, select = imports._insert_sql(Lead, expressions, params)
    sql = generator.BATCH_SQL.format(columns=columns, select=select, source=generator.LEADS_SQL_FROM)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.47)")
        for first in range(0, leads, generator.BATCH_LEADS):
            last = min(leads, first + generator.BATCH_LEADS) - 1
            with transaction.atomic():
                cursor.execute(sql, {**params, "first": first, "last": last})
            print(f"\r  built {last + 1:,} leads ({time.perf_counter() - started:.0f} s)", end="", flush=True)
        cursor.execute("VACUUM (ANALYZE) leads_lead")
        cursor.execute("VACUUM (ANALYZE) leads_activity")
    print(f", {Activity.objects.for_org(org).count():,} activities, in {time.perf_counter() - started:.0f} s")


def create_org() -> Organization:
    slug = f"bench-segments-{os.getpid()}"
    return core_services.create_organization(slug=slug, name="Segments benchmark",
                                             owner_email=f"{slug}@bench.invalid", owner_password=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads to build (activities: about 5 each)")
    parser.add_argument("--repeat", type=int, default=7, help="measured rounds; medians are reported")
    parser.add_argument("--explain", action="store_true", help="print the plans of ours and of the bounds")
    parser.add_argument("--jit", choices=["server", "on", "off"], default="server",
                        help="PostgreSQL's JIT compilation for every statement of the run (default: as configured)")
    parser.add_argument("--rls", choices=["on", "off"], default="on",
                        help="run ours and the bounds under row-level security as the app does (default), or not")
    parser.add_argument("--keep", action="store_true", help="keep the org (to re-use with --org)")
    parser.add_argument("--org", help="the slug of an org a previous --keep run built: skip building")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        if args.jit != "server":
            cursor.execute(f"SET jit = {args.jit}")
        cursor.execute("SELECT current_setting('server_version'), current_setting('work_mem'),"
                       " current_setting('jit'), current_setting('shared_buffers')")
        version, work_mem, jit, shared_buffers = cursor.fetchone()
    print(f"Segment benchmark: PostgreSQL {version} (work_mem {work_mem}, shared_buffers {shared_buffers}, "
          f"jit {jit}), {os.cpu_count()} CPUs, row-level security {args.rls}")

    organization = Organization.objects.get(slug=args.org) if args.org else create_org()
    org = organization.pk
    try:
        if not args.org:
            build(organization, args.leads, timezone.now())
        Segment.objects.for_org(org).delete()
        segment = services.create_segment(organization_id=org, name="Engaged buyers in core markets",
                                          definition=DEFINITION)
        _, key = core_services.create_api_key(organization=organization, name="bench")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        print(f"org {organization.slug}: {Lead.objects.for_org(org).count():,} leads, "
              f"{Activity.objects.for_org(org).count():,} activities")

        # As requests and tasks run: the app role with the org set (or, with --rls off, the login role).
        with rls.scope(org) if args.rls == "on" else contextlib.nullcontext():
            times = {name: [] for name in ("count ours", "count correlated", "count grouped", "page api",
                                           "page ours", "page correlated", "page grouped")}
            for round_number in range(args.repeat + 1):  # round 0 warms the caches and is not counted
                params = {"org": org, "now": timezone.now()}
                results = {}
                for name, run in (
                    ("count ours", lambda: ours_count(segment)),
                    ("count correlated", lambda p=params: bound(count_sql("correlated"), p)[0][0]),
                    ("count grouped", lambda p=params: bound(count_sql("grouped"), p)[0][0]),
                    ("page api", lambda: ours_page_api(client, segment)),
                    ("page ours", lambda: ours_page_query(segment)),
                    ("page correlated", lambda p=params: [row[0] for row in bound(page_sql("correlated"), p)]),
                    ("page grouped", lambda p=params: [row[0] for row in bound(page_sql("grouped"), p)]),
                ):
                    milliseconds, results[name] = timed(run)
                    if round_number:
                        times[name].append(milliseconds)
                counts = {results[name] for name in ("count ours", "count correlated", "count grouped")}
                pages = {tuple(str(pk) for pk in results[name][:PAGE_SIZE])
                         for name in ("page api", "page ours", "page correlated", "page grouped")}
                if len(counts) != 1 or len(pages) != 1:
                    raise SystemExit(f"ours and the bounds disagree: counts {counts}, {len(pages)} different pages")
                if round_number == 0:
                    print(f"the segment holds {results['count ours']:,} leads; first page: "
                          f"{len(results['page api'])} rows")
            if args.explain:
                explain(segment, {"org": org, "now": timezone.now()})
    finally:
        if args.keep:
            print(f"kept org {organization.slug} (re-use with --org {organization.slug})")
        else:
            generator.cleanup(organization)

    median = {name: statistics.median(values) for name, values in times.items()}
    count_bound = min(median["count correlated"], median["count grouped"])
    page_bound = min(median["page correlated"], median["page grouped"])
    print(f"\nmedian of {args.repeat} rounds, milliseconds")
    rows = [
        ("count, bound: hand-written, correlated count per lead", median["count correlated"]),
        ("count, bound: hand-written, IN (... GROUP BY lead HAVING)", median["count grouped"]),
        ("count, ours: selectors.segment_leads(segment).count()", median["count ours"]),
        ("first page, bound: hand-written, correlated", median["page correlated"]),
        ("first page, bound: hand-written, IN (... GROUP BY)", median["page grouped"]),
        ("first page, ours: the API's ORM query", median["page ours"]),
        ("first page, ours: GET /api/v1/segments/{id}/leads/ (whole request)", median["page api"]),
    ]
    for label, value in rows:
        print(f"  {label:<70}{value:9.1f}")
    print(f"count: ours / bound = {median['count ours'] / count_bound:.2f}x "
          f"({'meets' if median['count ours'] <= 1.5 * count_bound else 'misses'} the goal of <= 1.5x)")
    print(f"first page query: ours / bound = {median['page ours'] / page_bound:.2f}x "
          f"({'meets' if median['page ours'] <= 1.5 * page_bound else 'misses'} the goal of <= 1.5x)")
    print(f"first page through the API: {median['page api']:.0f} ms "
          f"({'meets' if median['page api'] < 200 else 'misses'} the goal of < 200 ms)")


if __name__ == "__main__":
    main()
