"""Webhook delivery benchmark: deliveries per second by one worker process to a local receiver.

    make bench-webhooks          (= python -m leadcrm.devstack exec python bench/webhooks.py)

Runs against DATABASE_URL / REDIS_URL (embedded servers when unset, via devstack). It migrates, creates a
throwaway org with `--deliveries` leads (default 5,000; bulk_create) and one endpoint subscribed to `lead.mql`
pointing at an HTTP receiver that runs in this process (http.server, threaded, answering 204 to every POST and
counting them). WEBHOOKS_ALLOW_PRIVATE / WEBHOOKS_ALLOW_HTTP are set for the run, so the loopback receiver is
allowed; every send still resolves the host, checks the address, signs the body and records an attempt.

Then, in the same run, against the same receiver:

  * bound - plain sequential POSTs from this process, one new connection each (as `urllib.request.urlopen` makes
            them; the sender does the same), of a body as large as a delivery's; also printed: the same over one
            keep-alive connection;
  * ours  - ONE Celery worker process (`-Q webhooks --pool prefork --concurrency 1`) sends the deliveries that
            one `lead.mql` event about all the leads creates (one INSERT … SELECT; the commit starts draining
            tasks, which claim batches with FOR UPDATE SKIP LOCKED, POST each signed delivery, record the attempt
            and mark it delivered), timed from the event's commit to the receiver's last request and every
            delivery `delivered` in the database.

It prints deliveries/s beside the bound's POSTs/s, the ratio, and the CPU time the worker, PostgreSQL (this
database's connections) and the whole machine used meanwhile; then it stops the worker and deletes the org with
everything in it. Run it while no other worker consumes the `webhooks` queue of this Redis.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# The project first, so `webhooks` is the app and not this script; the sibling benchmarks last.
sys.path = [str(BENCH_DIR.parent), *(p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR), str(BENCH_DIR)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")
# The receiver is on this machine: let deliveries go there (the worker inherits these).
os.environ.update({"WEBHOOKS_ALLOW_PRIVATE": "1", "WEBHOOKS_ALLOW_HTTP": "1"})

QUEUE = "webhooks"


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops concurrent connections (the client then waits 1 s to retry)
    daemon_threads = True


class Receiver:
    def __init__(self):
        self.count = 0
        self.first = self.last = None
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.target = None
        self.sample = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.time()
                with receiver.lock:
                    receiver.count += 1
                    receiver.first = receiver.first or now
                    receiver.last = now
                    if receiver.sample is None and "webhook-id" in self.headers:
                        receiver.sample = (dict(self.headers), body)
                    if receiver.target and receiver.count >= receiver.target:
                        receiver.done.set()
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self, target=None):
        with self.lock:
            self.count, self.first, self.last, self.target = 0, None, None, target
            self.done.clear()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=5_000)
    parser.add_argument("--bound-posts", type=int, default=3_000, help="POSTs of each bound")
    parser.add_argument("--timeout", type=float, default=900)
    return parser.parse_args()


def bound(receiver: Receiver, body: bytes, count: int) -> tuple[float, float]:
    url = f"http://127.0.0.1:{receiver.port}/bound"
    headers = {"Content-Type": "application/json"}
    began = time.perf_counter()
    for _ in range(count):
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers, method="POST"),
                                    timeout=5) as response:
            response.read()
    fresh = count / (time.perf_counter() - began)
    connection = HTTPConnection("127.0.0.1", receiver.port, timeout=5)
    began = time.perf_counter()
    for _ in range(count):
        connection.request("POST", "/bound", body=body, headers=headers)
        connection.getresponse().read()
    kept = count / (time.perf_counter() - began)
    connection.close()
    return fresh, kept


def start_worker(name: str) -> subprocess.Popen:
    env = {**os.environ, "DEBUG": "0", "LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "celery", "-A", "leadcrm", "--quiet", "worker", "-Q", QUEUE,
               "--pool", "prefork", "-c", "1", "-n", name, "--without-gossip", "--without-mingle", "-l", "warning"]
    return subprocess.Popen(command, cwd=BENCH_DIR.parent, env=env)


def main() -> int:
    args = parse_args()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from scoring_bulk import cleanup
    from scoring_instant import stop_worker, wait_for_worker
    from speed_to_lead import cpu_seconds, machine_busy_seconds, postgres_cpu

    from leadcrm import services as tenancy
    from leads.models import Lead
    from webhooks import services
    from webhooks.models import Delivery, Endpoint

    call_command("migrate", interactive=False, verbosity=0)
    run_id = uuid.uuid4().hex[:8]
    organization = tenancy.create_organization(slug=f"bench-wh-{run_id}", name="Webhook Bench Inc",
                                               owner_email=f"bench-wh-{run_id}@bench.invalid", owner_password=None)
    receiver = Receiver()
    worker = None
    n = args.deliveries
    try:
        Lead.objects.bulk_create([Lead(organization=organization, email=f"lead{i}@bench.invalid",
                                       first_name=f"First{i}", last_name="Bench", company=f"Company {i % 97}")
                                  for i in range(n)], batch_size=5_000)
        endpoint = services.create_endpoint(organization_id=organization.pk, data={
            "url": f"http://127.0.0.1:{receiver.port}/hooks", "events": ["lead.mql"]})
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE leads_lead")
        lead_ids = list(Lead.objects.filter(organization=organization).values_list("pk", flat=True))

        # A body the size of a delivery's, for the bound.
        with transaction.atomic():
            services.deliveries_for_leads(organization_id=organization.pk, event_type="lead.mql",
                                          lead_ids=lead_ids[:1])
            sample = Delivery.objects.filter(endpoint=endpoint).first()
            body = services.body_of(sample)
            transaction.set_rollback(True)
        fresh, kept = bound(receiver, body, args.bound_posts)

        name = f"bench-wh-{run_id}@localhost"
        worker = start_worker(name)
        wait_for_worker(name, worker)
        receiver.reset(target=n)
        with connection.cursor() as cursor:
            postgres_before = postgres_cpu(cursor)
        worker_before, machine_before = cpu_seconds(worker.pid), machine_busy_seconds()
        started = time.time()
        with transaction.atomic():  # the event's commit starts the draining tasks
            created = services.deliveries_for_leads(organization_id=organization.pk, event_type="lead.mql",
                                                    lead_ids=lead_ids)
        assert created == n, created
        created_at = time.time()
        deadline = started + args.timeout
        while not receiver.done.wait(0.2) and time.time() < deadline:
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with status {worker.returncode}")
        received_at = receiver.last
        while time.time() < deadline and Delivery.objects.filter(endpoint=endpoint, status="delivered").count() < n:
            time.sleep(0.1)
        marked_at = time.time()
        with connection.cursor() as cursor:
            postgres_after = postgres_cpu(cursor)
        worker_cpu = cpu_seconds(worker.pid) - worker_before
        machine = machine_busy_seconds() - machine_before
        postgres = sum(seconds - postgres_before.get(pid, 0.0) for pid, seconds in postgres_after.items())
        delivered = Delivery.objects.filter(endpoint=endpoint, status="delivered").count()
        headers, signed_body = receiver.sample
        signature_ok = services.signing.sign(endpoint.secret, headers["webhook-id"], int(headers["webhook-timestamp"]),
                                             signed_body) == headers["webhook-signature"]
    finally:
        if worker is not None:
            stop_worker(worker)
        receiver.server.shutdown()
        Endpoint.objects.filter(organization=organization).delete()
        cleanup(organization)

    seconds = marked_at - started
    ours = n / seconds
    print()
    print(f"Webhook delivery benchmark — {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    print(f"  body: {len(body)} bytes ({json.loads(body)['type']}, the lead's snapshot); receiver answers 204")
    print(f"  bound: {args.bound_posts} sequential POSTs from one process, new connection each: {fresh:,.0f} POSTs/s"
          f"  (one keep-alive connection: {kept:,.0f} POSTs/s)")
    print(f"  ours:  {n} deliveries by one worker process: {delivered}/{n} delivered, {receiver.count} received, "
          f"in {seconds:.1f} s (event commit {created_at - started:.2f} s; last request at "
          f"{(received_at or marked_at) - started:.1f} s) -> {ours:,.0f} deliveries/s")
    print(f"  ours / bound: {ours / fresh:.0%} (of keep-alive: {ours / kept:.0%}); signature of a sample: "
          f"{'valid' if signature_ok else 'INVALID'}")
    print(f"  CPU per delivery: worker {worker_cpu / n * 1000:.2f} ms, PostgreSQL {postgres / n * 1000:.2f} ms; "
          f"machine busy {machine / seconds / (os.cpu_count() or 1):.0%} of {os.cpu_count()} cores")
    return 0 if delivered == n and signature_ok else 1


if __name__ == "__main__":
    sys.exit(main())
