"""Sync benchmark: an integration copying every lead of a 1,000,000-lead org through the change feed, beside COPY.

    make bench-sync                 (= python bench/sync.py: 1,000,000 leads)
    python bench/sync.py --leads 200000 --repeat 3
    python bench/sync.py --org SLUG --page-size 2000   (a kept org; the largest page the feed takes)

Builds a throwaway org set-based in SQL (INSERT ... SELECT over generate_series, in batches of 50,000): leads with
the spread of fields of bench/scoring_bulk.py (names, company, industry, size, country, title, custom fields),
tags on a third, an owner on half, and `updated_at` over the last year in steps of ten minutes, so a few dozen
leads share each instant, as after imports. Then VACUUM (ANALYZE). Then, after one unmeasured round, per round:

  * ours  - `GET /api/v1/leads/?ordering=updated_at&page_size=500` with an API key, following `next` to the end
            (the change feed: every lead once, in updated_at order), through the whole Django/DRF stack in this
            process, as the app role under row-level security;
  * bound - `COPY (SELECT <the same columns> FROM leads_lead WHERE organization_id = … ORDER BY updated_at, id)
            TO STDOUT`, read to the end in the same scope: the cheapest way PostgreSQL hands out the same rows.

The client reads each page's bytes and follows `next`, as COPY's reader reads its bytes; the warm-up round parses
every page and checks that the walk returned each lead once, every round that it returned as many. Prints leads/s
of both (median of the rounds), the ratio (goal: ours at least 25% of COPY), the load average before and after
(`--profile` adds a cProfile of one walk). The org is deleted afterwards unless `--keep`; `--org SLUG` re-uses one.
"""

import argparse
import cProfile
import json
import os
import pstats
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")

import django  # noqa: E402

django.setup()

import scoring_bulk as generator  # noqa: E402  (bench/scoring_bulk.py: the spread of lead fields)
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from leadcrm import rls  # noqa: E402
from leadcrm import services as core_services  # noqa: E402
from leadcrm.models import Organization, Role  # noqa: E402
from leads import imports  # noqa: E402
from leads.models import Lead  # noqa: E402
from leads.serializers import LeadSerializer  # noqa: E402

PAGE_SIZE = 500
GOAL = 0.25
BATCH = 50_000

LEAD_EXPRESSIONS = {
    **generator.LEAD_EXPRESSIONS,
    "tags": "CASE WHEN r8 < 0.33 THEN ARRAY['newsletter', 'webinar-' || (i %% 12)]::varchar[] ELSE '{}' END",
    "owner_id": "CASE WHEN r7 < 0.5 THEN %(owner)s::int END",
    "phone": "CASE WHEN r6 < 0.4 THEN '+1415555' || lpad((i %% 10000)::text, 4, '0') ELSE '' END",
    "created_at": "%(anchor)s::timestamptz - (%(leads)s - i) * interval '1 minute'",
    # ten-minute steps over the year before the anchor: a few dozen leads share each instant
    "updated_at": "%(anchor)s::timestamptz - floor((%(leads)s - i) * 525600.0 / %(leads)s / 10) * interval '10 min'",
}
BUILD_SQL = "INSERT INTO leads_lead ({columns}) SELECT {select} {source}"


def create_org() -> Organization:
    slug = f"bench-sync-{os.getpid()}"
    return core_services.create_organization(slug=slug, name="Sync benchmark", owner_email=f"{slug}@bench.invalid",
                                             owner_password=None)


def build(organization: Organization, leads: int, anchor) -> None:
    owner = organization.memberships.get(role=Role.ADMIN).user_id
    params = {"org": str(organization.pk), "domain": f"{organization.slug}.bench.invalid", "now": anchor,
              "anchor": anchor, "leads": leads, "owner": owner}
    columns, select = imports._insert_sql(Lead, LEAD_EXPRESSIONS, params)
    sql = BUILD_SQL.format(columns=columns, select=select, source=generator.LEADS_SQL_FROM)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.61)")
        for first in range(0, leads, BATCH):
            last = min(leads, first + BATCH) - 1
            with transaction.atomic():
                cursor.execute(sql, {**params, "first": first, "last": last})
            print(f"\r  built {last + 1:,} leads ({time.perf_counter() - started:.0f} s)", end="", flush=True)
        cursor.execute("VACUUM (ANALYZE) leads_lead")
    print(f" in {time.perf_counter() - started:.0f} s")


def cleanup(organization: Organization) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        for table in ("leads_leadtombstone", "leads_lead"):
            cursor.execute(f"DELETE FROM {table} WHERE organization_id = %s", [organization.pk])
    users = [m.user for m in organization.memberships.select_related("user")]
    organization.delete()
    for user in users:
        user.delete()


# ----------------------------------------------------------------------------------------------- measuring


NEXT = re.compile(rb'^\{"next":(null|"([^"\\]*)")')


def walk(client, page_size: int = PAGE_SIZE, check: bool = False) -> tuple[int, int, set]:
    """Every page of the feed; returns (pages, leads, ids). The client reads each page's bytes and follows `next`
    (as COPY's reader reads its bytes); with `check`, it parses every page and collects the ids."""
    url = f"/api/v1/leads/?ordering=updated_at&page_size={page_size}"
    pages, leads, ids = 0, 0, set()
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content[:300]
        content = response.content
        pages += 1
        head = None if check else NEXT.match(content)
        if head is None:  # the ordinary answer, or checking: parse it all
            body = json.loads(content)
            leads += len(body["results"])
            ids.update(row["id"] for row in body["results"])
            url = body["next"]
        else:
            leads += content.count(b'{"id":')
            url = head.group(2) and head.group(2).decode()
    return pages, leads, ids


def copy_columns() -> list[str]:
    """The columns the API's lead rows are made of."""
    columns = []
    for name in LeadSerializer.Meta.fields:
        field = Lead._meta.get_field(name)
        columns.append(field.column)
    return columns


def copy_rows(organization) -> int:
    """COPY the same columns of the same rows, in the feed's order; returns the rows read."""
    sql = (f"COPY (SELECT {', '.join(copy_columns())} FROM leads_lead WHERE organization_id = '{organization.pk}' "
           f"ORDER BY updated_at, id) TO STDOUT")
    rows = 0
    with rls.scope(organization.pk), connection.cursor() as cursor:
        with cursor.cursor.copy(sql) as copy:
            for data in copy:
                rows += bytes(data).count(b"\n")
    return rows


def timed(run):
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads to build")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds; medians are reported")
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE,
                        help=f"page_size of the walk (default {PAGE_SIZE}; the feed takes up to 2,000)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one walk through the API")
    parser.add_argument("--keep", action="store_true", help="keep the org (to re-use with --org)")
    parser.add_argument("--org", help="the slug of an org a previous --keep run built: skip building")
    args = parser.parse_args()

    if not args.org:
        call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version'), current_setting('shared_buffers')")
        version, shared_buffers = cursor.fetchone()
    print(f"Sync benchmark: PostgreSQL {version} (shared_buffers {shared_buffers}), {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    organization = Organization.objects.get(slug=args.org) if args.org else create_org()
    api, bound = [], []
    try:
        if not args.org:
            build(organization, args.leads, timezone.now())
        total = Lead.objects.for_org(organization).count()
        _, key = core_services.create_api_key(organization=organization, name="bench")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        print(f"org {organization.slug}: {total:,} leads; {len(copy_columns())} columns a lead")
        for round_number in range(args.repeat + 1):  # round 0 warms the caches, checks every id, is not counted
            api_s, (pages, leads, ids) = timed(lambda check=round_number == 0: walk(client, args.page_size, check))
            if round_number == 0 and (len(ids) != total or leads != total):
                raise SystemExit(f"the walk returned {leads:,} leads, {len(ids):,} distinct, of {total:,}")
            if leads != total:
                raise SystemExit(f"the walk returned {leads:,} leads of {total:,}")
            copy_s, copied = timed(lambda: copy_rows(organization))
            if copied != total:
                raise SystemExit(f"COPY returned {copied:,} rows of {total:,}")
            label = "warm-up" if round_number == 0 else f"round {round_number}"
            print(f"  {label}: API {pages} pages in {api_s:.1f} s ({total / api_s:,.0f} leads/s), "
                  f"COPY {copy_s:.2f} s ({total / copy_s:,.0f} leads/s)")
            if round_number:
                api.append(total / api_s)
                bound.append(total / copy_s)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(walk, client, args.page_size)
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(25)
            stats.sort_stats("tottime").print_stats(15)
    finally:
        if args.keep:
            print(f"kept org {organization.slug} (re-use with --org {organization.slug})")
        else:
            cleanup(organization)

    ours, copy = statistics.median(api), statistics.median(bound)
    ratio = ours / copy
    print(f"\nmedian of {args.repeat} rounds: ours {ours:,.0f} leads/s through the API (page size {args.page_size}), "
          f"bound {copy:,.0f} leads/s by COPY: {ratio:.0%} ({'meets' if ratio >= GOAL else 'misses'} the goal of "
          f">= {GOAL:.0%}); load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
