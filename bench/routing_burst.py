"""Routing burst benchmark: 10,000 leads become MQLs at once; how long until ONE worker has routed them all?

    make bench-routing-burst          (= python -m leadcrm.devstack exec python bench/routing_burst.py)

Runs against DATABASE_URL / REDIS_URL (embedded servers when unset, via devstack). It migrates and, for each of
`--runs` runs, builds a throwaway org with a team of `--reps` reps (capacity `--capacity` each, none by default)
and one round-robin rule for every lead, creates `--leads` leads in stage "lead" (set-based), then promotes them
all to MQL in one statement (`leads.services.promote_to_mql`, as a scoring rule change does) and emits the one
`lead.mql` event for them, as scoring does. The event's delivery queues the routing tasks (500 leads each); ONE
Celery worker consuming every queue (prefork with as many processes as cores, as the Procfile's worker runs)
routes them. The figure is the time from the commit of the promotion and its event to the last lead's
Assignment row (created_at, stamped inside the routing transactions; the same machine's clock).

Bound, in the same run, on the same org, rolled back: one hand-written UPDATE that gives each of the leads an
owner in round-robin order, plus one INSERT … SELECT of one assignment row per lead — the least any router must
write. It also checks what routing must guarantee: every lead routed once, counts per rep equal within one
(or every rep filled to its capacity and the rest pooled), nobody over capacity.

The stage-change events of the promotion are dropped in this process (so nurture and webhooks do not queue
other work for the one worker); lead.mql and lead.assigned go to their real consumers. Notification emails go
to Django's in-memory mail backend in the worker. Then it stops the worker and deletes the org. The worker
consumes REDIS_URL's queues: run it while no other worker does.
"""

import argparse
import os
import platform
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")

GOAL_SECONDS = 30.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=10_000, help="leads promoted to MQL at once")
    parser.add_argument("--reps", type=int, default=10, help="reps in the round-robin team")
    parser.add_argument("--capacity", type=int, default=None, help="each rep's capacity (default: no limit)")
    parser.add_argument("--runs", type=int, default=1, help="bursts, each in a fresh org; best and worst printed")
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 1,
                        help="processes of the one worker (default: cores, as the Procfile's worker)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the last lead")
    return parser.parse_args()


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def set_up(run_id: str, args):
    """The org, its reps in one team, the round-robin rule, and the leads (stage "lead"), set-based."""
    from django.db import connection

    from leadcrm import services as tenancy
    from leadcrm.models import Role
    from leads.models import Lead, LifecycleStage
    from routing import services as routing
    from routing.models import RepProfile

    organization = tenancy.create_organization(slug=f"bench-burst-{run_id}", name=f"Routing burst {run_id}",
                                               owner_email=f"bench-burst-{run_id}@bench.invalid",
                                               owner_password=None)
    users = [tenancy.add_member(organization=organization, email=f"rep{n}-{run_id}@bench.invalid", password=None,
                                role=Role.REP).user for n in range(args.reps)]
    profiles = list(RepProfile.objects.for_org(organization.pk).filter(user__in=users))
    for profile in profiles:
        routing.update_rep(profile=profile, data={"capacity": args.capacity})
    team = routing.save_team(organization_id=organization.pk, data={"name": "Inbound", "members": profiles})
    routing.save_rule(organization_id=organization.pk, data={"name": "Every lead, round robin",
                                                             "strategy": "round_robin", "team": team})
    Lead.objects.bulk_create([Lead(organization=organization, email=f"burst{n}-{run_id}@bench.invalid",
                                   first_name="Burst", last_name=str(n), lifecycle_stage=LifecycleStage.LEAD)
                              for n in range(args.leads)], batch_size=2000)
    with connection.cursor() as cursor:  # planner statistics, as a table that grew over time has them
        cursor.execute("ANALYZE leads_lead")
    return organization, [user.pk for user in users]


def promote(organization) -> tuple[float, list]:
    """Promote every lead of the org to MQL and emit lead.mql for them; returns the commit's time and the ids."""
    from django.db import transaction
    from django.db.models import Q

    from leadcrm import events, rls
    from leads import services as lead_services

    committed = []
    with rls.scope(organization.pk), transaction.atomic():
        promoted = lead_services.promote_to_mql(organization_id=organization.pk, leads=Q(), reason="burst")
        transaction.on_commit(lambda: committed.append(time.time()))  # runs before the event's delivery
        events.emit(events.LEAD_MQL, organization_id=organization.pk, lead_ids=promoted)
    return committed[0], promoted


def wait_for_routing(organization, count: int, timeout: float) -> int:
    from routing.models import Assignment

    deadline = time.time() + timeout
    done = 0
    while time.time() < deadline:
        done = Assignment.objects.filter(organization_id=organization.pk).count()
        if done >= count:
            break
        time.sleep(0.2)
    return done


def outcome(organization, rep_ids, capacity) -> dict:
    """What a user would check: every lead routed once, the split between reps, nobody over capacity."""
    from django.db.models import Count, Max

    from leads.models import Lead
    from routing.models import Assignment, LeadRouting

    assignments = Assignment.objects.filter(organization_id=organization.pk)
    per_lead = Counter(assignments.values_list("lead_id", flat=True))
    per_rep = Counter(dict(Lead.objects.filter(organization_id=organization.pk, owner__isnull=False)
                           .values("owner_id").annotate(n=Count("pk")).values_list("owner_id", "n")))
    shares = [per_rep.get(rep_id, 0) for rep_id in rep_ids]
    last = assignments.aggregate(last=Max("created_at"))["last"]
    return {"last": last.timestamp() if last else float("inf"),
            "routed": len(per_lead), "twice": sum(1 for n in per_lead.values() if n > 1),
            "pooled": LeadRouting.objects.filter(organization_id=organization.pk, pooled=True).count(),
            "least": min(shares), "most": max(shares),
            "over": sum(1 for n in shares if capacity is not None and n > capacity)}


def bound_seconds(organization, rep_ids) -> float:
    """One UPDATE of the owners (round robin by row number) and one INSERT of an assignment row per lead,
    timed and rolled back."""
    from django.db import connection, transaction

    began = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("""
            UPDATE leads_lead AS lead SET owner_id = (%s::bigint[])[1 + (ranked.n %% %s)], updated_at = now()
            FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM leads_lead WHERE organization_id = %s) ranked
            WHERE lead.id = ranked.id""", [rep_ids, len(rep_ids), organization.pk])
        cursor.execute("""
            INSERT INTO routing_assignment (id, organization_id, lead_id, rep_id, rule_name, strategy, reason,
                                            actor_label, created_at)
            SELECT gen_random_uuid(), organization_id, id, owner_id, 'bound', 'round_robin', 'rule', '', now()
            FROM leads_lead WHERE organization_id = %s""", [organization.pk])
        took = time.perf_counter() - began
        transaction.set_rollback(True)
    return took


def cleanup(organization) -> None:
    from speed_to_lead import cleanup as delete_org

    delete_org(organization)


def main() -> int:
    args = parse_args()
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from scoring_instant import stop_worker, wait_for_worker
    from speed_to_lead import QUEUES, cpu_seconds, queued_tasks, start_worker

    from leadcrm import events

    call_command("migrate", interactive=False, verbosity=0)
    events._handlers.pop(events.LEAD_STAGE_CHANGED, None)  # only routing's work reaches the one worker
    redis_client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=60)
    leftover = queued_tasks(redis_client)
    if leftover:
        print(f"warning: {leftover} tasks already wait in this Redis's queues; the worker will run them too")
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    print(f"Routing burst benchmark — {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, PostgreSQL {pg_version}; {args.leads} leads, {args.reps} reps, capacity "
          f"{args.capacity or 'none'}; one Celery worker, prefork x {args.concurrency}, -Q {QUEUES}")
    name = f"bench-burst-{uuid.uuid4().hex[:8]}@localhost"
    worker = start_worker(name, SimpleNamespace(pool="prefork", concurrency=args.concurrency), None)
    figures, failed = [], False
    try:
        wait_for_worker(name, worker)
        for run in range(1, args.runs + 1):
            run_id = uuid.uuid4().hex[:8]
            organization, rep_ids = set_up(run_id, args)
            try:
                load_before, cpu_before = load_average(), cpu_seconds(worker.pid)
                began, promoted = promote(organization)
                routed = wait_for_routing(organization, len(promoted), args.timeout)
                worker_cpu = cpu_seconds(worker.pid) - cpu_before
                result = outcome(organization, rep_ids, args.capacity)
                took = result["last"] - began
                bound = bound_seconds(organization, rep_ids)
                drain = time.time() + 60  # the notification emails may still be queued
                while queued_tasks(redis_client) and time.time() < drain:
                    time.sleep(0.2)
            finally:
                cleanup(organization)
            complete = routed == len(promoted) == args.leads and not result["twice"] and not result["over"]
            fair = args.capacity is not None or result["most"] - result["least"] <= 1
            failed |= not (complete and fair)
            figures.append(took)
            print(f"run {run}: {routed}/{len(promoted)} leads routed in {took:.2f} s ({routed / took:.0f} leads/s; "
                  f"goal {GOAL_SECONDS:.0f} s: {'met' if took <= GOAL_SECONDS and complete else 'MISSED'}); bound "
                  f"(one UPDATE of the owners + one INSERT of the assignments) {bound:.2f} s, routing = "
                  f"{took / bound:.1f}x the bound; per rep {result['least']}..{result['most']} leads, "
                  f"{result['pooled']} pooled, {result['twice']} routed twice, {result['over']} reps over capacity; "
                  f"worker CPU {worker_cpu:.1f} s ({worker_cpu / max(1, routed) * 1000:.2f} ms a lead); "
                  f"load average {load_before} before, {load_average()} after")
    finally:
        stop_worker(worker)
    if figures:
        print(f"best {min(figures):.2f} s, worst {max(figures):.2f} s of {len(figures)} runs "
              f"(goal: every lead routed within {GOAL_SECONDS:.0f} s)")
    return 1 if failed or max(figures, default=GOAL_SECONDS + 1) > GOAL_SECONDS else 0


if __name__ == "__main__":
    sys.exit(main())
