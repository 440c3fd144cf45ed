"""Lead search benchmark: the first page of `?search=` under row-level security beside the same query by hand.

    make bench-search               (= python bench/search.py: 200,000 leads)
    python bench/search.py --leads 20000 --repeat 5 --explain

Builds a throwaway org with the generator of bench/segments.py (leads created over two years, about 5 activities
each, then VACUUM (ANALYZE)), and for a rare, a middling and a common term measures, alternating, after one
unmeasured warm-up round:

  * ours, query   - the ORM query of the API's first page (selectors.search_leads, newest first, page size + 1 rows),
                    run as requests run it: the app role with the org set, under the row-level security policy;
  * ours, API     - GET /api/v1/leads/?search=TERM through the whole API (API key, cursor paginator, serializer);
  * bound         - the same query run as the login role, which the policy does not restrict: what the trigram
                    index gives when nothing stands between it and the query.

Every round checks that ours, the API and the bound return the same ids in the same order. Prints the medians and
the ratio ours / bound (goal: within 1.5x, so the policy costs the search no index). `--explain` prints both plans.
The org is deleted afterwards unless `--keep`; `--org SLUG` re-uses one kept earlier.
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")

import django  # noqa: E402

django.setup()

import scoring_bulk as generator  # noqa: E402
import segments  # noqa: E402  (bench/segments.py: builds the org)
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from leadcrm import rls  # noqa: E402
from leadcrm import services as core_services  # noqa: E402
from leadcrm.models import Organization  # noqa: E402
from leads import selectors  # noqa: E402
from leads.models import Lead  # noqa: E402

PAGE_SIZE = 50
# The generator names leads lead<i>@…, with 8 first names, 7 last names and companies "Company <i mod 40000>".
TERMS = {
    "rare (one email)": "lead12345@",
    "middling (a company)": "company 3917",
    "common (a last name)": "hopper",
}


def ours_query(organization, term: str) -> list:
    rows = selectors.search_leads(Lead.objects.for_org(organization), term).order_by("-created_at", "-pk")
    return list(rows.values_list("pk", flat=True)[:PAGE_SIZE + 1])


def ours_api(client, term: str) -> list:
    response = client.get("/api/v1/leads/", {"search": term, "page_size": PAGE_SIZE})
    assert response.status_code == 200, response.content[:300]
    return [row["id"] for row in response.json()["results"]]


def bound(organization, term: str) -> list:
    with rls.scope(rls.OWNER):
        return ours_query(organization, term)


def explain(organization, term: str) -> None:
    with rls.scope(organization.pk), connection.execute_wrapper(segments.Explainer(f"ours: {term!r}")):
        ours_query(organization, term)
    with connection.execute_wrapper(segments.Explainer(f"bound: {term!r}")):
        bound(organization, term)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=200_000, help="leads to build (activities: about 5 each)")
    parser.add_argument("--repeat", type=int, default=7, help="measured rounds; medians are reported")
    parser.add_argument("--explain", action="store_true", help="print the plans of ours and of the bound")
    parser.add_argument("--keep", action="store_true", help="keep the org (to re-use with --org)")
    parser.add_argument("--org", help="the slug of an org a previous --keep run built: skip building")
    args = parser.parse_args()

    if not args.org:
        call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version'), proleakproof FROM pg_proc "
                       "WHERE oid = 'pg_catalog.textlike(text, text)'::regprocedure")
        version, leakproof = cursor.fetchone()
    print(f"Search benchmark: PostgreSQL {version}, {os.cpu_count()} CPUs, LIKE leakproof: {leakproof}")

    if args.org:
        organization = Organization.objects.get(slug=args.org)
    else:
        slug = f"bench-search-{os.getpid()}"
        organization = core_services.create_organization(slug=slug, name="Search benchmark",
                                                         owner_email=f"{slug}@bench.invalid", owner_password=None)
    times = {(label, part): [] for label in TERMS for part in ("query", "api", "bound")}
    try:
        if not args.org:
            segments.build(organization, args.leads, timezone.now())
        _, key = core_services.create_api_key(organization=organization, name="bench")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        print(f"org {organization.slug}: {Lead.objects.for_org(organization).count():,} leads")
        for round_number in range(args.repeat + 1):  # round 0 warms the caches and is not counted
            for label, term in TERMS.items():
                with rls.scope(organization.pk):
                    query_ms, query_ids = segments.timed(lambda t=term: ours_query(organization, t))
                    api_ms, api_ids = segments.timed(lambda t=term: ours_api(client, t))
                bound_ms, bound_ids = segments.timed(lambda t=term: bound(organization, t))
                if [str(pk) for pk in query_ids[:PAGE_SIZE]] != api_ids or query_ids != bound_ids:
                    raise SystemExit(f"ours and the bound disagree for {term!r}")
                if round_number == 0:
                    print(f"  {term!r}: first page {len(api_ids)} leads")
                else:
                    for part, value in (("query", query_ms), ("api", api_ms), ("bound", bound_ms)):
                        times[label, part].append(value)
        if args.explain:
            for term in TERMS.values():
                explain(organization, term)
    finally:
        if args.keep:
            print(f"kept org {organization.slug} (re-use with --org {organization.slug})")
        else:
            generator.cleanup(organization)

    print(f"\nmedian of {args.repeat} rounds, milliseconds: ours (query under the policy / whole API request) "
          "beside the bound (the same query, no policy)")
    for label in TERMS:
        query, api, bound_ms = (statistics.median(times[label, part]) for part in ("query", "api", "bound"))
        ratio = query / bound_ms
        print(f"  {label:<42} query {query:7.1f}   API {api:7.1f}   bound {bound_ms:7.1f}   "
              f"ours / bound {ratio:5.2f}x ({'meets' if ratio <= 1.5 else 'misses'} the goal of <= 1.5x)")


if __name__ == "__main__":
    main()
