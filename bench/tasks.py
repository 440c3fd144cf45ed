"""Tasks benchmark: the due-reminder pass and a rep's today view over 1,000,000 open tasks of 1,000 reps.

    make bench-tasks                                   (= python -m leadcrm.devstack exec python bench/tasks.py)
    make bench-tasks ARGS="--tasks 100000 --reps 100"  (smaller, for a busy machine)

Runs against DATABASE_URL (an embedded server when unset, via devstack). Builds a throwaway org, set-based with
generate_series: `--reps` members (role rep), one lead per 10 tasks (each owned by a rep), and `--tasks` open tasks
on them (the lead's owner is the task's owner), of which `--due` came due within the last minute and the rest fall
due over the 30 days after the next hour; then VACUUM (ANALYZE).

Reminders. Each round makes the due tasks due again and runs:
  * ours  - `agenda.services.send_due_reminders()`, the beat's pass: the orgs with due reminders (a definer
            function), then the claim (leadcrm.claims, SKIP LOCKED), one notification per task (routing's
            notify_many: one INSERT) and the clearing of `remind_at`, in one transaction. The email task it queues
            on commit is counted, not sent (the worker's work, after the pass);
  * bound - one hand-written statement doing the same rows' work: UPDATE … RETURNING feeding an INSERT of the
            notifications.
Each pass must send every due task exactly once (a second pass sends none). Goal: ours < 5 s per pass.

Today view. GET /today/ for one rep (signed in), median of `--requests`, beside GET /api/v1/ping/ (the trivial
endpoint) on the same client. Goal: < 100 ms. Then the org and everything in it is deleted.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from agenda import services  # noqa: E402
from agenda.models import Task  # noqa: E402
from leadcrm import rls  # noqa: E402
from leadcrm import services as core_services  # noqa: E402
from leads import bulk_sql  # noqa: E402
from leads.models import Lead  # noqa: E402
from routing import tasks as routing_tasks  # noqa: E402
from routing.models import Notification  # noqa: E402

TASKS_PER_LEAD = 10
BATCH_LEADS = 20_000

LEAD_EXPRESSIONS = {
    "id": "gen_random_uuid()",
    "organization_id": "%(org)s::uuid",
    "email": "'lead' || i || '@' || %(domain)s",
    "first_name": "(ARRAY['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara'])[1 + (i %% 5)]",
    "last_name": "'Lead ' || i",
    "lifecycle_stage": "'sql'",
    "stage_entered_at": "'{}'::jsonb",
    "source_type": "'inbound'",
    "owner_id": "(%(reps)s::int[])[1 + (i %% %(rep_count)s)]",
    "created_at": "%(now)s",
    "updated_at": "%(now)s",
}
TASKS_SQL = """
INSERT INTO agenda_task (id, organization_id, lead_id, type, note, due_at, remind_at, owner_id, outcome, created_at,
                         updated_at)
SELECT gen_random_uuid(), l.organization_id, l.id, (ARRAY['call', 'email', 'meeting', 'todo'])[1 + (k %% 4)], '',
       d.due, d.due, l.owner_id, '', %(now)s, %(now)s
FROM (SELECT id, organization_id, owner_id, row_number() OVER (ORDER BY id) AS n FROM leads_lead
      WHERE organization_id = %(org)s AND email LIKE %(pattern)s) l
CROSS JOIN generate_series(1, %(per_lead)s) k
CROSS JOIN LATERAL (SELECT CASE WHEN (l.n - 1) * %(per_lead)s + k <= %(due)s
                           THEN %(now)s - random() * interval '59 seconds'
                           ELSE %(now)s + interval '1 hour' + random() * interval '30 days' END AS due) d
"""
BOUND_SQL = """
WITH due AS (
    UPDATE agenda_task SET reminded_at = %(now)s
    WHERE organization_id = %(org)s AND remind_at <= %(now)s AND reminded_at IS NULL AND done_at IS NULL
    RETURNING owner_id, lead_id, type)
INSERT INTO routing_notification (organization_id, user_id, lead_id, kind, message, created_at)
SELECT %(org)s, owner_id, lead_id, 'task_due', initcap(type) || ' due', %(now)s FROM due
"""


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def build(organization, reps: int, tasks: int, due: int, now) -> list[int]:
    org, slug = str(organization.pk), organization.slug
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff,"
            " is_active, date_joined) SELECT '!', false, %s || '-rep' || i, '', '', %s || '-rep' || i ||"
            " '@bench.invalid', false, true, %s FROM generate_series(1, %s) i RETURNING id",
            [slug, slug, now, reps],
        )
        rep_ids = sorted(row[0] for row in cursor.fetchall())
        cursor.execute(
            "INSERT INTO leadcrm_membership (organization_id, user_id, role, created_at)"
            " SELECT %s, unnest(%s::int[]), 'rep', %s",
            [org, rep_ids, now],
        )
    leads = max(1, -(-tasks // TASKS_PER_LEAD))
    params = {"org": org, "domain": f"{slug}.bench.invalid", "now": now, "reps": rep_ids, "rep_count": reps}
    columns, select = bulk_sql.insert_sql(Lead, LEAD_EXPRESSIONS, params)
    with connection.cursor() as cursor:
        for first in range(0, leads, BATCH_LEADS):
            last = min(leads, first + BATCH_LEADS) - 1
            with transaction.atomic():
                cursor.execute(
                    f"INSERT INTO leads_lead ({columns}) SELECT {select} "
                    "FROM generate_series(%(first)s::int, %(last)s::int) AS i",
                    {**params, "first": first, "last": last},
                )
            print(f"\r  built {last + 1:,} leads ({time.perf_counter() - started:.0f} s)", end="", flush=True)
        cursor.execute("ANALYZE leads_lead")
        with transaction.atomic():
            cursor.execute(
                TASKS_SQL,
                {"org": org, "now": now, "per_lead": TASKS_PER_LEAD, "due": due, "pattern": f"%@{slug}.bench.invalid"},
            )
        cursor.execute("VACUUM (ANALYZE) agenda_task")
    count = Task.objects.for_org(organization).count()
    print(f", {count:,} open tasks of {reps:,} reps, in {time.perf_counter() - started:.0f} s")
    return rep_ids


def make_due(organization) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE agenda_task SET remind_at = due_at, reminded_at = NULL"
            " WHERE organization_id = %s AND reminded_at IS NOT NULL",
            [organization.pk],
        )
        cursor.execute("DELETE FROM routing_notification WHERE organization_id = %s", [organization.pk])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) agenda_task")
        cursor.execute("VACUUM (ANALYZE) routing_notification")


def ours(organization, now) -> int:
    with mock.patch.object(routing_tasks.email_notifications, "delay") as queued:
        sent = services.send_due_reminders(now=now)
        again = services.send_due_reminders(now=now)
    assert again == 0, f"a second pass sent {again}"
    assert queued.call_count >= 1, "no email task queued"
    return sent


def bound(organization, now) -> int:
    with rls.scope(organization.pk), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(BOUND_SQL, {"org": organization.pk, "now": now})
        return cursor.rowcount


def timed_get(client, url: str, requests: int) -> float:
    times = []
    for _ in range(requests + 1):  # the first warms caches and is not counted
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times[1:])


def cleanup(organization, rep_ids) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        for table in ("routing_notification", "agenda_task", "leads_lead"):
            cursor.execute(f"DELETE FROM {table} WHERE organization_id = %s", [organization.pk])
    users = [membership.user_id for membership in organization.memberships.all()]
    organization.delete()
    get_user_model().objects.filter(pk__in=set(users) | set(rep_ids)).delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=1_000)
    parser.add_argument("--due", type=int, default=10_000, help="tasks due within the last minute")
    parser.add_argument("--rounds", type=int, default=3, help="reminder passes of each (alternating)")
    parser.add_argument("--requests", type=int, default=20, help="today-view requests (median)")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    print(f"Tasks benchmark: {os.cpu_count()} CPUs, load average before: {load()}")
    slug = f"bench-tasks-{os.getpid()}"
    organization = core_services.create_organization(
        slug=slug, name="Tasks benchmark", owner_email=f"{slug}@bench.invalid", owner_password=None
    )
    now = timezone.now()
    rep_ids = []
    figures = {"bound": [], "ours": []}
    try:
        rep_ids = build(organization, args.reps, args.tasks, args.due, now)
        for _ in range(args.rounds):
            for name, run in (("bound", bound), ("ours", ours)):
                make_due(organization)
                pass_now = timezone.now()
                with rls.scope(organization.pk):
                    due = (
                        Task.objects.for_org(organization)
                        .filter(remind_at__lte=pass_now, reminded_at__isnull=True)
                        .count()
                    )
                started = time.perf_counter()
                sent = run(organization, pass_now)
                elapsed = time.perf_counter() - started
                notified = Notification.objects.for_org(organization).count()
                assert sent == notified == due, f"{name}: sent {sent}, notifications {notified}, due {due}"
                figures[name].append(elapsed)
                print(f"  {name:5}: {sent:,} reminders in {elapsed:.2f} s")
        rep = get_user_model().objects.get(pk=rep_ids[len(rep_ids) // 2])
        client = Client()
        client.force_login(rep)
        with rls.scope(organization.pk):
            today_count = (
                Task.objects.for_org(organization)
                .filter(owner=rep, done_at__isnull=True, due_at__lt=now + timedelta(days=1))
                .count()
            )
        today_ms = timed_get(client, "/today/", args.requests)
        ping_ms = timed_get(client, "/api/v1/ping/", args.requests)
    finally:
        cleanup(organization, rep_ids)
    ours_s, bound_s = statistics.median(figures["ours"]), statistics.median(figures["bound"])
    print(f"\nreminder pass over {args.due:,} due of {args.tasks:,} open tasks, median of {args.rounds}:")
    print(
        f"  ours (send_due_reminders): {ours_s:.2f} s   bound (one UPDATE … INSERT): {bound_s:.2f} s   "
        f"ours / bound {ours_s / bound_s:.1f}x   ({'meets' if ours_s < 5 else 'misses'} the goal of < 5 s)"
    )
    print(f"today view of a rep with ~{today_count} tasks due by tomorrow, median of {args.requests}:")
    print(
        f"  GET /today/ {today_ms:.1f} ms   GET /api/v1/ping/ {ping_ms:.1f} ms   "
        f"({'meets' if today_ms < 100 else 'misses'} the goal of < 100 ms)"
    )
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
