"""Capture while Redis restarts: nothing accepted is lost, and every capture is scored and routed once it is back.

    make bench-capture-restart      (= python -m leadcrm.devstack exec python bench/capture_redis_restart.py)

Runs against DATABASE_URL (embedded when unset, via devstack), with a redis-server of its own on a free loopback
port as the Celery broker (the benchmark stops and restarts it; the machine's Redis is never touched; the cache
stays on REDIS_URL). It sets up an org whose leads qualify at once (the speed-to-lead benchmark's: a "director"
fit rule, two reps in a round-robin team), starts gunicorn (sync workers) and ONE Celery worker with an embedded
beat (the outbox and sweepers at their production intervals), and posts leads at a steady rate from client
threads in two phases:

1. the bound: as long a load with Redis up (2 x `--seconds` + `--down`), then the time until every lead is scored
   and routed;
2. the fault: the same load for `--seconds`, Redis stopped (SIGTERM) for `--down` seconds while the load goes on,
   started again, `--seconds` more; then the time until every lead is scored and routed ("drain").

For the fault phase it prints captures accepted (2xx), captures in the database, leads scored (MQL) and leads
routed (an owner, one assignment each) — the four must be equal — the POST latency while Redis was down beside
while it was up, and the drain time beside the bound's. It exits non-zero if they differ, a request failed or
the drain did not finish within `--timeout`. Then it stops everything and deletes the org.
"""

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import redis

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")

QUEUES = "capture,scoring,routing,nurturing,webhooks,imports,default"


def parse_args():
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0, help="captures per second, all clients together")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--seconds", type=float, default=8.0, help="load before and after the outage, and bound")
    parser.add_argument("--down", type=float, default=8.0, help="seconds Redis stays stopped")
    parser.add_argument("--workers", type=int, default=2 * cores, help="gunicorn sync workers")
    parser.add_argument("--timeout", type=float, default=180.0, help="longest wait for a drain, seconds")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Broker:
    """A redis-server of the benchmark's own, with an append-only file as a production broker runs."""

    def __init__(self):
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="bench-redis-")
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.directory, "--appendonly", "yes", "--save", "", "--logfile", "redis.log"],
            start_new_session=True)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)

    def remove(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_worker(env: dict) -> subprocess.Popen:
    schedule = os.path.join(tempfile.mkdtemp(prefix="bench-beat-"), "schedule")
    command = [sys.executable, "-m", "celery", "-A", "leadcrm", "--quiet", "worker", "-Q", QUEUES, "--pool",
               "prefork", "-c", str(os.cpu_count() or 1), "-n", f"restart-{uuid.uuid4().hex[:8]}@localhost",
               "--without-gossip", "--without-mingle", "-l", "warning", "-B", "-s", schedule]
    return subprocess.Popen(command, cwd=BENCH_DIR.parent, env=env, start_new_session=True)


class Load:
    """Client threads posting new leads at a steady total rate; each result is (email, status, seconds, when)."""

    def __init__(self, port: int, key: str, run_id: str, rate: float, clients: int):
        self.port, self.key, self.run_id, self.rate, self.clients = port, key, run_id, rate, clients
        self.results: list[tuple[str, int, float, float]] = []
        self.lock = threading.Lock()
        self.numbers = iter(range(10**9))

    def _client(self, stop: threading.Event, interval: float):
        connection = None
        next_at = time.monotonic()
        while not stop.is_set():
            with self.lock:
                n = next(self.numbers)
            email = f"lead-{n}@{self.run_id}.bench.invalid"
            body = json.dumps({"email": email, "first_name": "Bench", "job_title": "Sales Director",
                               "company": "Benchmark Ltd"})
            started = time.monotonic()
            try:
                connection = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                connection.request("POST", "/api/v1/leads/", body=body, headers={
                    "Authorization": f"Api-Key {self.key}", "Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except OSError:
                status = 0
                connection = None
            with self.lock:
                self.results.append((email, status, time.monotonic() - started, started))
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def run(self, seconds: float, during=None):
        """Load for `seconds`; `during(stop_event)` runs meanwhile in this thread (the outage)."""
        stop = threading.Event()
        threads = [threading.Thread(target=self._client, args=(stop, self.clients / self.rate))
                   for _ in range(self.clients)]
        for thread in threads:
            thread.start()
        try:
            if during:
                during()
            time.sleep(seconds)
        finally:
            stop.set()
            for thread in threads:
                thread.join()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] * 1000 if values else float("nan")


def main() -> int:
    args = parse_args()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", interactive=False, verbosity=0)
    from capture import start_gunicorn, stop, wait_until_up
    from speed_to_lead import cleanup, set_up

    from leadcrm.models import OutboxEvent
    from leads.models import Lead
    from routing.models import Assignment

    run_id = uuid.uuid4().hex[:10]
    broker = Broker()
    broker.start()
    os.environ["CELERY_BROKER_URL"] = broker.url  # for gunicorn and the worker, started from this environment
    organization, key, _ = set_up(run_id, reps=5, sla_minutes=None)
    env = {**os.environ, "DEBUG": "0", "LOG_LEVEL": "ERROR", "EMAIL_BACKEND": "django.core.mail.backends.locmem."
           "EmailBackend"}
    port = free_port()
    server = start_gunicorn(port, SimpleNamespace(workers=args.workers, worker_class="sync", threads=1))
    worker = start_worker(env)
    leads = Lead.objects.for_org(organization)

    def drain(emails: list[str]) -> float | None:
        started = time.monotonic()
        while time.monotonic() - started < args.timeout:
            if leads.filter(email__in=emails, lifecycle_stage="mql", owner__isnull=False).count() == len(emails):
                return time.monotonic() - started
            time.sleep(0.1)
        return None

    outage = {}
    try:
        wait_until_up(port, key, server)
        bound = Load(port, key, run_id + "-bound", args.rate, args.clients)
        bound.run(2 * args.seconds + args.down)  # as long as the fault phase, so both leave a like backlog
        bound_emails = [email for email, status, _, _ in bound.results if 200 <= status < 300]
        bound_drain = drain(bound_emails)

        load = Load(port, key, run_id, args.rate, args.clients)

        def restart():
            time.sleep(args.seconds)
            outage["stopped"] = time.monotonic()
            broker.stop()
            time.sleep(args.down)
            broker.start()
            outage["started"] = time.monotonic()

        load.run(args.seconds, during=restart)
        outage["load_ended"] = time.monotonic()
        accepted = [email for email, status, _, _ in load.results if 200 <= status < 300]
        failed = [status for _, status, _, _ in load.results if not 200 <= status < 300]
        fault_drain = drain(accepted)
        in_database = leads.filter(email__in=accepted).count()
        scored = leads.filter(email__in=accepted, lifecycle_stage="mql").count()
        routed = leads.filter(email__in=accepted, owner__isnull=False).count()
        assignments = Assignment.objects.for_org(organization).filter(lead__email__in=accepted).count()
        outbox_left = OutboxEvent.objects.filter(payload__organization_id=str(organization.pk)).count()
        down = [seconds for _, status, seconds, at in load.results
                if outage["stopped"] <= at < outage["started"] and 200 <= status < 300]
        up = [seconds for _, status, seconds, at in load.results
              if not outage["stopped"] <= at < outage["started"] and 200 <= status < 300]
    finally:
        stop(server)
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        broker.remove()
        cleanup(organization)

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    print()
    print(f"Capture while Redis restarts — {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, PostgreSQL {pg_version}")
    print(f"gunicorn {args.workers} sync workers, one Celery worker (prefork) with beat; {args.rate:g} captures/s "
          f"from {args.clients} clients; {args.seconds:g} s up, Redis stopped {args.down:g} s, {args.seconds:g} s up")
    print(f"captures accepted (2xx)    {len(accepted):6d}   (other answers: {len(failed)} {sorted(set(failed))})")
    print(f"captures in the database   {in_database:6d}")
    print(f"leads scored (MQL)         {scored:6d}")
    print(f"leads routed (owner)       {routed:6d}   assignments {assignments}; outbox rows left {outbox_left}")
    equal = len(accepted) == in_database == scored == routed == assignments and not failed
    print(f"all equal: {'yes' if equal else 'NO'}")
    print(f"POST while Redis was down: {len(down)} requests, p50 {percentile(down, 50):.1f} ms, p99 "
          f"{percentile(down, 99):.1f} ms; while up: p50 {percentile(up, 50):.1f} ms, p99 {percentile(up, 99):.1f} ms")
    since_restart = (outage["load_ended"] - outage["started"] + fault_drain) if fault_drain is not None else None
    print(f"drain after the load (all scored and routed): {_seconds(fault_drain)}, {_seconds(since_restart)} after "
          f"Redis was back — bound, the same load with Redis up all along ({len(bound_emails)} leads): "
          f"{_seconds(bound_drain)}")
    return 0 if equal and fault_drain is not None and bound_drain is not None else 1


def _seconds(value) -> str:
    return f"{value:.1f} s" if value is not None else "not finished"


if __name__ == "__main__":
    sys.exit(main())
