"""Capture benchmark: POST /api/v1/leads/ through gunicorn, beside a trivial DRF endpoint as the bound.

    make bench-capture          (= python -m leadcrm.devstack exec python bench/capture.py)

Runs against DATABASE_URL / REDIS_URL (embedded servers when unset, via devstack). It migrates, makes a
throwaway organization and API key, starts gunicorn (the Procfile's WSGI app and worker class) on a free
loopback port, and drives it with N concurrent clients, each one keep-alive connection (reopened when the
server closes it, as sync workers do). Each round measures, for the same time and the same clients:

- the bound: GET /api/v1/ping/ — API-key authentication and a tiny JSON answer, nothing else;
- capture:   POST /api/v1/leads/ with a distinct email each time (a new lead, its activity, the event).

It prints requests/s, p50 and p99 for both and the ratio (goal: capture at least 50% of the bound), then
stops gunicorn and deletes the organization with everything captured into it.
"""

import argparse
import asyncio
import http.client
import itertools
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")


def parse_args():
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2 * cores, help="gunicorn workers (default 2 x cores)")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class (the Procfile uses sync)")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (gthread class)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per endpoint per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each measures bound, then capture")
    parser.add_argument("--max-requests", type=int, default=50_000, help="cap on requests per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per endpoint first")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Measurement:
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies: list = field(default_factory=list)
    unexpected: dict = field(default_factory=dict)

    def add(self, other: "Measurement") -> None:
        self.ok += other.ok
        self.failed += other.failed
        self.seconds += other.seconds
        self.latencies += other.latencies
        for status, count in other.unexpected.items():
            self.unexpected[status] = self.unexpected.get(status, 0) + count

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


class Load:
    """N concurrent clients (asyncio tasks, one keep-alive connection each) hitting one endpoint until the
    time or the request budget runs out. Raw HTTP/1.1 over asyncio streams keeps the client's own CPU use
    small: on a small machine it shares the cores with the server under test."""

    def __init__(self, port: int, key: str, clients: int):
        self.port, self.clients = port, clients
        self.headers = (f"Host: 127.0.0.1:{port}\r\nAuthorization: Api-Key {key}\r\n"
                        "Accept: application/json\r\n")

    def encode(self, method: str, path: str, body: str | None) -> bytes:
        head = f"{method} {path} HTTP/1.1\r\n{self.headers}"
        if body is None:
            return f"{head}\r\n".encode()
        data = body.encode()
        return f"{head}Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data

    async def _exchange(self, reader, writer, payload: bytes) -> tuple[int, bool]:
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        await reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers.get("connection", "").lower() == "close"

    async def _client(self, request, expected, deadline, budget, result: Measurement):
        reader = writer = None
        while time.perf_counter() < deadline and next(budget) < self.max_requests:
            payload = self.encode(*request())
            began = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                status, closing = await asyncio.wait_for(self._exchange(reader, writer, payload), 30)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                result.failed += 1
                closing, status = True, None
            else:
                result.latencies.append(time.perf_counter() - began)
                if status == expected:
                    result.ok += 1
                else:
                    result.failed += 1
                    result.unexpected[status] = result.unexpected.get(status, 0) + 1
            if closing and writer is not None:  # sync workers answer one request per connection
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    def run(self, request, expected: int, seconds: float, max_requests: int) -> Measurement:
        self.max_requests = max_requests

        async def main():
            budget = itertools.count()
            results = [Measurement() for _ in range(self.clients)]
            began = time.perf_counter()
            await asyncio.gather(*(self._client(request, expected, began + seconds, budget, r) for r in results))
            total = Measurement(seconds=time.perf_counter() - began)
            for result in results:
                total.add(result)
            return total

        return asyncio.run(main())


def start_gunicorn(port: int, args) -> subprocess.Popen:
    env = {**os.environ, "DEBUG": "0", "LOG_LEVEL": "WARNING"}
    command = [
        sys.executable, "-m", "gunicorn", "leadcrm.wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", str(args.workers), "--worker-class", args.worker_class, "--threads", str(args.threads),
        "--log-level", "warning",
        "--backlog", "512",
    ]
    return subprocess.Popen(command, cwd=BASE_DIR, env=env)


def wait_until_up(port: int, key: str, server: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with status {server.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v1/ping/", headers={"Authorization": f"Api-Key {key}"})
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("gunicorn did not answer in time")


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> int:
    args = parse_args()
    import django

    django.setup()
    from autovacuum import Autovacuum
    from django.core.management import call_command
    from django.db import connection

    from leadcrm import services as tenancy
    from leadcrm.models import Organization
    from leads.models import Activity, Lead

    call_command("migrate", interactive=False, verbosity=0)
    run_id = uuid.uuid4().hex[:10]
    organization = tenancy.create_organization(slug=f"bench-{run_id}", name=f"Capture benchmark {run_id}",
                                               owner_email=f"bench-{run_id}@bench.invalid", owner_password=None)
    _, key = tenancy.create_api_key(organization=organization, name="capture benchmark")
    autovacuum = Autovacuum(connection).start()
    port = free_port()
    server = start_gunicorn(port, args)
    emails = itertools.count()

    def ping():
        return "GET", "/api/v1/ping/", None

    def capture():
        n = next(emails)
        body = {"email": f"lead-{n}@{run_id}.bench.invalid", "first_name": "Bench", "last_name": f"Lead {n}",
                "company": "Benchmark Ltd", "source_type": "inbound", "utm_source": "bench"}
        return "POST", "/api/v1/leads/", json.dumps(body)

    bound, captured = Measurement(), Measurement()
    try:
        wait_until_up(port, key, server)
        load = Load(port, key, args.clients)
        for request, expected in ((ping, 200), (capture, 201)):  # warm every worker's connections and caches
            load.run(request, expected, args.warmup, args.max_requests)
        for _ in range(args.rounds):
            bound.add(load.run(ping, 200, args.seconds, args.max_requests))
            captured.add(load.run(capture, 201, args.seconds, args.max_requests))
    finally:
        autovacuum.stop()
        stop(server)
        created = Lead.objects.for_org(organization).count()
        # Set-based cleanup: activities first, so deleting the leads has nothing left to cascade to.
        Activity.objects.for_org(organization).delete()
        Lead.objects.for_org(organization).delete()
        owner = organization.memberships.get().user
        organization.delete()
        owner.delete()
        assert not Organization.objects.filter(pk=organization.pk).exists()

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    print()
    print(f"Capture benchmark — {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"PostgreSQL {pg_version}; {autovacuum.describe()}")
    print(f"gunicorn {args.workers} {args.worker_class} workers; {args.clients} keep-alive clients on loopback; "
          f"{args.rounds} rounds x {args.seconds:g} s per endpoint")
    print(f"{'':32}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'requests':>10}{'failed':>8}")
    for label, m in (("bound: GET /api/v1/ping/", bound), ("capture: POST /api/v1/leads/", captured)):
        print(f"{label:32}{m.rate:12.1f}{m.percentile(50):10.1f}{m.percentile(99):10.1f}{m.ok:10d}{m.failed:8d}")
        if m.unexpected:
            print(f"{'':32}unexpected statuses: {m.unexpected}")
    ratio = captured.rate / bound.rate if bound.rate else 0.0
    verdict = "meets" if ratio >= 0.5 else "below"
    print(f"capture / bound = {ratio:.0%} ({verdict} the goal of >= 50%); {created} leads captured, then deleted")
    return 0 if not (bound.failed or captured.failed) else 1


if __name__ == "__main__":
    sys.exit(main())
