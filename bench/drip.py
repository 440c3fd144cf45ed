"""Drip dispatch benchmark: emails rendered and handed to a local SMTP sink per second by one worker process.

    make bench-drip          (= python -m leadcrm.devstack exec python bench/drip.py)

Runs against DATABASE_URL / REDIS_URL (embedded servers when unset, via devstack). It migrates and sets up a
throwaway org with `--leads` leads (default 50,000; consenting, not unsubscribed, each with an owner; inserted
with bulk_create), one template with merge fields (the lead's first name, company, city and job title, the
owner's name and signature, the organization's name, the unsubscribe link) and 3 web links, and a sequence of
one email step; it enrols every lead in one statement (`services.enroll`), all due now.

Then, in the same run:

  * bound - rendering alone: `nurturing.rendering.render` of the same template version for every one of those
            leads, in this process (the leads are loaded, with owner and organization, outside the timer);
  * ours  - ONE Celery worker process (`-Q nurturing --pool prefork --concurrency 1`), pointed at an SMTP sink
            that runs in this process (aiosmtpd, counting what it receives: EMAIL_HOST / EMAIL_PORT in the
            worker's environment) with NURTURE_RATE_PER_MINUTE raised for the run, is fed
            `nurturing.tasks.tick` tasks, one waiting in its queue at any time (as a beat with a very short
            interval would), until every one of the leads' Messages is `sent`. Each tick claims due
            enrolments (SKIP LOCKED, batches of 200), renders and records the emails, hands them to the sink
            over one SMTP connection per batch, marks them sent and records `email_sent` on each lead's timeline
            (whose `activity.recorded` event queues a re-scoring task per lead on the `scoring` queue, which
            nothing consumes during the run: they are removed from Redis afterwards).

It prints emails/s (from the first tick enqueued to the last email received by the sink, and between the sink's
first and last email) beside renders/s of the bound, the ratio, and the CPU time the worker, PostgreSQL (this
database's connections), this process (the sink) and the whole machine used meanwhile. Goal: at least 200
emails/s per worker process. Then it stops the worker and deletes the org with everything in it. Run it while
no other worker consumes the `nurturing` queue of this Redis.
"""

import argparse
import logging
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import redis

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))  # the sibling benchmarks
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")

QUEUE = "nurturing"
TICK = "nurturing.tasks.tick"
BUILD_BATCH = 5_000

SUBJECT = '{{ lead.first_name|default:"Hi there" }}, a note for {{ lead.company|default:"your team" }}'
HTML = """<html><body>
<p>Hi {{ lead.first_name|default:"there" }},</p>
<p>Teams at {{ lead.company }} in {{ lead.city|default:"your city" }} use {{ organization.name }} to follow up on
every lead. As {{ lead.job_title|default:"a leader" }} you may like our
<a href="https://example.com/guides/speed-to-lead">guide to speed to lead</a>, the
<a href="https://example.com/pricing">pricing page</a> and a
<a href="https://example.com/customers">few customer stories</a>.</p>
<p>Best,<br>{{ owner.signature|linebreaksbr }}</p>
<p><small>Not interested? <a href="{{ unsubscribe_url }}">Unsubscribe</a>.</small></p>
</body></html>"""
TEXT = """Hi {{ lead.first_name|default:"there" }},

Teams at {{ lead.company }} in {{ lead.city|default:"your city" }} use {{ organization.name }} to follow up on every
lead. As {{ lead.job_title|default:"a leader" }} you may like our guide to speed to lead:
https://example.com/guides/speed-to-lead - pricing: https://example.com/pricing - customer stories:
https://example.com/customers

Best,
{{ owner.signature }}

Unsubscribe: {{ unsubscribe_url }}
"""
# Removes the queued tasks that name the benchmark's org from a Redis list, in one step.
PRUNE = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local kept, removed = {}, 0
for _, item in ipairs(items) do
  if string.find(item, ARGV[1], 1, true) then removed = removed + 1 else kept[#kept + 1] = item end
end
if removed > 0 then
  redis.call('DEL', KEYS[1])
  for i = 1, #kept, 5000 do redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 4999, #kept))) end
end
return removed
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=50_000, help="leads enrolled, one email each")
    parser.add_argument("--rate-per-minute", type=int, default=100_000_000,
                        help="NURTURE_RATE_PER_MINUTE of the worker (raised so the org's rate limit never binds)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for every email")
    return parser.parse_args()


# ----------------------------------------------------------------------------------------------- the sink

class CountingHandler:
    """An SMTP server's DATA handler that only counts (and times) what it receives."""

    def __init__(self):
        self.count = 0
        self.bytes = 0
        self.first = None
        self.last = None
        self.reached = threading.Event()
        self.target = None

    async def handle_DATA(self, server, session, envelope):
        now = time.time()
        if self.first is None:
            self.first = now
        self.last = now
        self.count += 1
        self.bytes += len(envelope.content or b"")
        if self.target is not None and self.count >= self.target:
            self.reached.set()
        return "250 OK"


def start_sink():
    from aiosmtpd.controller import Controller
    from capture import free_port

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command at debug level

    handler = CountingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller, handler


# ----------------------------------------------------------------------------------------------- set-up

def create_org(run_id: str):
    from leadcrm import services as tenancy

    return tenancy.create_organization(slug=f"bench-drip-{run_id}", name="Drip Bench Inc",
                                       owner_email=f"bench-drip-{run_id}@bench.invalid", owner_password=None)


def set_up(organization, run_id: str, count: int):
    from django.contrib.auth import get_user_model
    from django.db import connection

    from leads.models import Lead
    from nurturing import services
    from nurturing.models import TemplateVersion

    owner = get_user_model().objects.get(email=f"bench-drip-{run_id}@bench.invalid")
    owner.first_name, owner.last_name = "Grace", "Hopper"
    owner.save(update_fields=["first_name", "last_name"])
    began = time.perf_counter()
    cities = ["Berlin", "Lisbon", "Austin", "Toronto", "", "Osaka"]
    titles = ["Head of Sales", "VP Marketing", "", "Founder", "Sales Director"]
    for start in range(0, count, BUILD_BATCH):
        Lead.objects.bulk_create([
            Lead(organization=organization, email=f"lead{n}-{run_id}@bench.invalid", first_name=f"Ada{n}",
                 last_name="Lovelace", company=f"Company {n % 997}", city=cities[n % len(cities)],
                 job_title=titles[n % len(titles)], consent_opt_in=True, owner=owner)
            for n in range(start, min(count, start + BUILD_BATCH))])
    leads_seconds = time.perf_counter() - began
    template = services.create_template(organization_id=organization.pk, name="Drip bench", subject=SUBJECT,
                                        html=HTML, text=TEXT)
    version = TemplateVersion.objects.get(template=template)
    sequence = services.save_sequence(organization_id=organization.pk, data={
        "name": "Drip bench", "active": False, "steps": [{"type": "email", "template": str(template.pk)}]})
    with connection.cursor() as cursor:  # as autovacuum would after this many new rows (it may be off)
        cursor.execute("ANALYZE leads_lead")
    began = time.perf_counter()
    enrolled = services.enroll(sequence=sequence, leads=Lead.objects.for_org(organization.pk), enrolled_by="api")
    enrol_seconds = time.perf_counter() - began
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE nurturing_enrollment, nurturing_message")
    return organization, sequence, version, enrolled, {"leads": leads_seconds, "enrol": enrol_seconds}


def cleanup(organization) -> None:
    from django.db import connection, transaction
    from speed_to_lead import cleanup as delete_org

    with transaction.atomic(), connection.cursor() as cursor:
        for table in ("nurturing_message", "nurturing_enrollment", "nurturing_sequencestep", "nurturing_sequence",
                      "nurturing_templateversion", "nurturing_emailtemplate"):
            cursor.execute(f"DELETE FROM {table} WHERE organization_id = %s", [organization.pk])
    delete_org(organization)


def prune_queued_tasks(redis_client, marker) -> int:
    """Queued tasks that name `marker`: the re-scoring tasks the sent emails queued for the org's leads (nothing
    consumed them), or one of the benchmark's ticks by its id."""
    script = redis_client.register_script(PRUNE)
    removed = 0
    for key in redis_client.scan_iter(count=1000):
        if redis_client.type(key) == b"list":
            removed += script(keys=[key], args=[str(marker)])
    return removed


# ----------------------------------------------------------------------------------------------- the bound

def render_bound(organization, version) -> tuple[float, int]:
    """Seconds spent in `render` alone over every lead of the org (loading them is not timed)."""
    from django.urls import reverse

    from leadcrm.links import site_url
    from leads.models import Lead
    from nurturing.rendering import render
    from nurturing.services.tracking import make_token

    unsubscribe_url = site_url(reverse("tracking-unsubscribe", args=[make_token(uuid.uuid4())]))
    leads = Lead.objects.for_org(organization.pk).select_related("owner").order_by("pk")
    spent, rendered, last = 0.0, 0, None
    while True:
        chunk = list((leads.filter(pk__gt=last) if last else leads)[:BUILD_BATCH])
        if not chunk:
            return spent, rendered
        began = time.perf_counter()
        for lead in chunk:
            render(version, lead, unsubscribe_url=unsubscribe_url, organization=organization)
        spent += time.perf_counter() - began
        rendered += len(chunk)
        last = chunk[-1].pk


# ----------------------------------------------------------------------------------------------- the worker

def start_worker(name: str, sink_port: int, rate_per_minute: int) -> subprocess.Popen:
    env = {**os.environ, "DEBUG": "0", "LOG_LEVEL": "WARNING",
           "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "127.0.0.1",
           "EMAIL_PORT": str(sink_port), "EMAIL_HOST_USER": "", "EMAIL_HOST_PASSWORD": "", "EMAIL_USE_TLS": "0",
           "NURTURE_RATE_PER_MINUTE": str(rate_per_minute)}
    command = [sys.executable, "-m", "celery", "-A", "leadcrm", "--quiet", "worker", "-Q", QUEUE,
               "--pool", "prefork", "-c", "1", "-n", name, "--without-gossip", "--without-mingle", "-l", "warning"]
    return subprocess.Popen(command, cwd=BENCH_DIR.parent, env=env)


def main() -> int:
    args = parse_args()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count
    from scoring_instant import stop_worker, wait_for_worker
    from speed_to_lead import cpu_seconds, machine_busy_seconds, postgres_cpu

    from leadcrm.celery import app as celery_app
    from nurturing.models import Enrollment, Message, Sequence

    call_command("migrate", interactive=False, verbosity=0)
    redis_client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=60)
    if redis_client.llen(QUEUE):
        print(f"warning: {redis_client.llen(QUEUE)} tasks already wait in the {QUEUE} queue; the worker runs them too")
    run_id = uuid.uuid4().hex[:8]
    load_before = " ".join(f"{value:.2f}" for value in os.getloadavg())
    organization = create_org(run_id)
    controller = worker = None
    result, tick_ids = {}, []
    try:
        began = time.perf_counter()
        organization, sequence, version, enrolled, phases = set_up(organization, run_id, args.leads)
        build_seconds = time.perf_counter() - began
        began = time.perf_counter()
        bound_seconds, bound_count = render_bound(organization, version)
        phases["bound"] = time.perf_counter() - began
        controller, sink = start_sink()
        sink.target = args.leads
        name = f"bench-drip-{run_id}@localhost"
        worker = start_worker(name, controller.port, args.rate_per_minute)
        wait_for_worker(name, worker)

        with connection.cursor() as cursor:
            postgres_before = postgres_cpu(cursor)
        worker_before, own_before, machine_before = cpu_seconds(worker.pid), cpu_seconds(os.getpid(), False), \
            machine_busy_seconds()
        Sequence.objects.filter(pk=sequence.pk).update(active=True)
        started = time.time()
        deadline = started + args.timeout
        while not sink.reached.is_set() and time.time() < deadline:
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with status {worker.returncode}")
            if not redis_client.llen(QUEUE):  # one tick waits while the worker runs the one before
                tick_ids.append(celery_app.send_task(TICK, queue=QUEUE).id)
            sink.reached.wait(0.1)
        received_at = sink.last
        # every message marked sent (the last batch is marked right after its hand-over)
        while time.time() < deadline and Message.objects.filter(
                organization_id=organization.pk, status="sent").count() < args.leads:
            time.sleep(0.1)
        marked_at = time.time()
        with connection.cursor() as cursor:
            postgres_after = postgres_cpu(cursor)
        result = {
            "received": sink.count, "bytes": sink.bytes, "ticks": len(tick_ids),
            "to_sink": (received_at or time.time()) - started, "sink_span": (sink.last or 0) - (sink.first or 0),
            "first_after": (sink.first or started) - started, "marked": marked_at - started,
            "worker_cpu": cpu_seconds(worker.pid) - worker_before,
            "own_cpu": cpu_seconds(os.getpid(), False) - own_before,
            "machine": machine_busy_seconds() - machine_before,
            "postgres_cpu": sum(seconds - postgres_before.get(pid, 0.0) for pid, seconds in postgres_after.items()),
            "statuses": dict(Message.objects.filter(organization_id=organization.pk).order_by().values_list("status")
                             .annotate(n=Count("pk")).values_list("status", "n")),
            "completed": Enrollment.objects.filter(sequence=sequence, status="completed").count(),
        }
    finally:
        if worker is not None:
            stop_worker(worker)
        if controller is not None:
            controller.stop()
        pruned = prune_queued_tasks(redis_client, organization.pk)
        for task_id in tick_ids:  # the tick left waiting when the last email arrived
            prune_queued_tasks(redis_client, task_id)
        cleanup(organization)

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
        cursor.execute("SHOW autovacuum")
        autovacuum = cursor.fetchone()[0]
    n = args.leads
    print()
    print(f"Drip dispatch benchmark — {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, PostgreSQL {pg_version} (autovacuum {autovacuum}: the set-up ANALYZEs); "
          f"load average {load_before} before")
    print(f"set-up: {n:,} leads (bulk_create, {phases['leads']:.1f} s), a template with 8 merge fields and 3 links, a "
          f"one-email sequence; {enrolled:,} enrolled in one statement in {phases['enrol'] * 1000:.0f} ms; "
          f"{build_seconds:.1f} s in all; the bound's run {phases['bound']:.1f} s with loading the leads")
    bound_rate = bound_count / bound_seconds if bound_seconds else float("nan")
    print(f"bound: rendering alone, one process: {bound_count:,} renders in {bound_seconds:.1f} s = "
          f"{bound_rate:,.0f} renders/s ({bound_seconds / max(1, bound_count) * 1000:.2f} ms each)")
    if not result:
        print("the dispatch did not run to the end")
        return 1
    rate = result["received"] / result["to_sink"] if result["to_sink"] else 0.0
    span_rate = (result["received"] - 1) / result["sink_span"] if result["sink_span"] else 0.0
    print(f"ours: one worker process (prefork x 1, -Q {QUEUE}), {result['ticks']} tick tasks: {result['received']:,} "
          f"emails ({result['bytes'] / max(1, result['received']) / 1024:.1f} KiB each) at the sink "
          f"{result['to_sink']:.1f} s after the first tick (first one after {result['first_after'] * 1000:.0f} ms), "
          f"all marked sent after {result['marked']:.1f} s")
    print(f"  = {rate:,.0f} emails/s from the first tick; {span_rate:,.0f} emails/s between the sink's first and "
          f"last email; {rate / bound_rate:.0%} of the rendering bound")
    print(f"  messages by status: {result['statuses']}; enrolments completed by then: {result['completed']:,} "
          "(an enrolment completes in the claim after its email's)")
    wall = result["marked"]
    print(f"CPU over those {wall:.1f} s ({os.cpu_count()} cores): worker {result['worker_cpu']:.1f} s "
          f"({result['worker_cpu'] / max(1, result['received']) * 1000:.2f} ms per email), PostgreSQL "
          f"{result['postgres_cpu']:.1f} s, this process (the SMTP sink) {result['own_cpu']:.1f} s; the machine "
          f"{result['machine']:.1f} s busy ({result['machine'] / wall / (os.cpu_count() or 1):.0%})")
    print(f"removed {pruned:,} re-scoring tasks the sent emails queued (no worker consumed them here)")
    verdict = "meets" if rate >= 200 else "misses"
    print(f"drip dispatch = {rate:,.0f} emails/s per worker process ({verdict} the goal: at least 200/s); "
          f"rendering alone {bound_rate:,.0f}/s")
    ok = result["received"] == n and result["statuses"].get("sent") == n
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
