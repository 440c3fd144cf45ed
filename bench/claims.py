"""Claim benchmark: rows/s that `leadcrm.claims.claim` leases, beside the same statement written by hand.

    make bench-claims          (= python -m leadcrm.devstack exec python bench/claims.py)

Runs against DATABASE_URL (an embedded server when unset, via devstack). It migrates and creates a throwaway org
with one active webhook endpoint and `--rows` pending deliveries (default 200,000; one INSERT … SELECT), all due,
then VACUUM (ANALYZE). Each round claims every row, in batches of `--batch` (default 50, the webhook sender's), each
batch its own transaction under the org's row-level security scope, until nothing is due:

  * ours  - `claims.claim()` on the webhook sender's queryset (pending, endpoint active, of the org), which builds
            `UPDATE … FROM (SELECT … ORDER BY due LIMIT n FOR UPDATE OF … SKIP LOCKED)` from it;
  * bound - that statement written by hand (the sender's claim before the primitive), executed directly.

Between rounds the rows are made due again (one UPDATE, then VACUUM ANALYZE). Rounds alternate bound / ours; it
prints each round, the median of each and their ratio, and the load average before and after. Then it deletes the
org and everything in it.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from leadcrm import claims, rls  # noqa: E402
from leadcrm import services as core_services  # noqa: E402
from webhooks.models import Delivery, DeliveryStatus, Endpoint  # noqa: E402

LEASE = timedelta(seconds=120)
HAND_WRITTEN = (
    "UPDATE webhooks_delivery d SET next_attempt_at = %s FROM ("
    " SELECT d.id FROM webhooks_delivery d WHERE d.organization_id = %s AND d.status = 'pending'"
    " AND d.next_attempt_at <= %s"
    " AND EXISTS (SELECT 1 FROM webhooks_endpoint e WHERE e.id = d.endpoint_id AND e.active)"
    " ORDER BY d.next_attempt_at LIMIT %s FOR UPDATE OF d SKIP LOCKED) due"
    " WHERE d.id = due.id RETURNING d.id")


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def build(rows: int):
    slug = f"bench-claims-{os.getpid()}"
    organization = core_services.create_organization(slug=slug, name="Claims benchmark",
                                                     owner_email=f"{slug}@bench.invalid", owner_password=None)
    endpoint = Endpoint.objects.create(organization=organization, url="https://bench.invalid/hook",
                                       events=["lead.mql"], secret="whsec_bench")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO webhooks_delivery (id, organization_id, endpoint_id, message_id, event_type, payload, status,"
            " attempt_count, next_attempt_at, last_error, created_at, updated_at)"
            " SELECT gen_random_uuid(), %s, %s, 'msg_' || i, 'lead.mql', '{}'::jsonb, 'pending', 0,"
            " now() - i * interval '1 millisecond', '', now(), now() FROM generate_series(1, %s) i",
            [organization.pk, endpoint.pk, rows])
    return organization


def make_due(organization) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE webhooks_delivery SET next_attempt_at = created_at - interval '1 second'"
                       " WHERE organization_id = %s", [organization.pk])
        cursor.execute("VACUUM (ANALYZE) webhooks_delivery")


def ours(organization, batch: int) -> int:
    due = Delivery.objects.for_org(organization.pk).filter(status=DeliveryStatus.PENDING, endpoint__active=True)
    claimed = 0
    with rls.scope(organization.pk):
        while rows := claims.claim(due, due="next_attempt_at", limit=batch, lease=LEASE):
            claimed += len(rows)
    return claimed


def bound(organization, batch: int) -> int:
    claimed = 0
    with rls.scope(organization.pk):
        while True:
            now = timezone.now()
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(HAND_WRITTEN, [now + LEASE, organization.pk, now, batch])
                rows = cursor.fetchall()
            if not rows:
                return claimed
            claimed += len(rows)


def cleanup(organization) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM webhooks_delivery WHERE organization_id = %s", [organization.pk])
    users = [membership.user for membership in organization.memberships.select_related("user")]
    organization.delete()
    for user in users:
        user.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each (alternating)")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    print(f"load average before: {load()}")
    organization = build(args.rows)
    figures = {"bound": [], "ours": []}
    try:
        for _ in range(args.rounds):
            for name, run in (("bound", bound), ("ours", ours)):
                make_due(organization)
                started = time.perf_counter()
                claimed = run(organization, args.batch)
                elapsed = time.perf_counter() - started
                assert claimed == args.rows, f"{name} claimed {claimed} of {args.rows}"
                figures[name].append(claimed / elapsed)
                print(f"  {name:5}: {claimed:,} rows in {elapsed:.2f} s = {claimed / elapsed:,.0f} rows/s "
                      f"(batches of {args.batch})")
    finally:
        cleanup(organization)
    ours_median, bound_median = statistics.median(figures["ours"]), statistics.median(figures["bound"])
    print(f"ours (claims.claim): {ours_median:,.0f} rows/s, median of {args.rounds}")
    print(f"bound (the statement by hand): {bound_median:,.0f} rows/s")
    print(f"ours / bound: {ours_median / bound_median:.0%}; load average after: {load()}")


if __name__ == "__main__":
    main()
