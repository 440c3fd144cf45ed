"""Instant scoring benchmark: from POST /api/v1/activities/ to the lead's new score, through a real worker.

    make bench-scoring-instant          (= python bench/scoring_instant.py)

Runs against DATABASE_URL / REDIS_URL (embedded servers when unset, via devstack). It builds a throwaway org
with `scoring_bulk.py`'s generator (N leads, ~5 activities each, the same 25 rules), starts gunicorn as
`capture.py` does and one Celery worker (`-Q scoring,capture -c 1`, solo pool unless --pool prefork), then, one
request at a time, for each of `--posts` leads that have no recent pricing-page view:

  * POSTs a page_view of /pricing for the lead (API key auth), and
  * polls the lead's stored score (the database by default, `--poll api` for GET /api/v1/leads/{id}/)
    until it changes: the commit enqueued a scoring task, the worker ran it and committed.

It prints p50 / p95 / max of that round trip (goal: p95 under 500 ms) beside, as the bound, the POST's own
answer time and a GET /api/v1/ping/ round trip measured in the same run, then stops both processes and
deletes the org. The worker consumes from REDIS_URL's queues: run it while no other worker does.
"""

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks

from capture import BASE_DIR, free_port, start_gunicorn, stop, wait_until_up  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from scoring_bulk import build, cleanup, create_org  # noqa: E402  (it sets Django up)

from leadcrm import services as core_services  # noqa: E402
from leadcrm.celery import app as celery_app  # noqa: E402
from leadcrm.models import Organization  # noqa: E402
from leads.models import Lead  # noqa: E402
from scoring import services as scoring  # noqa: E402

PRICING_URL = "https://www.example.com/pricing"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def start_worker(name: str, pool: str) -> subprocess.Popen:
    env = {**os.environ, "DEBUG": "0", "LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "celery", "-A", "leadcrm", "--quiet", "worker", "-Q", "scoring,capture", "-c", "1",
               "--pool", pool, "-l", "warning", "-n", name, "--without-gossip", "--without-mingle"]
    return subprocess.Popen(command, cwd=BASE_DIR, env=env)


def wait_for_worker(name: str, worker: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not celery_app.control.ping(destination=[name], timeout=1.0):
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with status {worker.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit("the worker did not answer a ping in time")


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


class Client:
    """One request per connection, as the sync workers answer."""

    def __init__(self, port: int, key: str):
        self.port, self.headers = port, {"Authorization": f"Api-Key {key}", "Accept": "application/json"}

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = dict(self.headers)
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def stored_score(lead_id) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT score FROM leads_lead WHERE id = %s", [lead_id])
        return cursor.fetchone()[0]


def api_score(client: Client, lead_id) -> int:
    status, body = client.request("GET", f"/api/v1/leads/{lead_id}/")
    assert status == 200, (status, body[:200])
    return json.loads(body)["score"]


def one_post(client: Client, lead_id, before: int, args) -> tuple[float, float | None]:
    """(seconds until the POST answered, seconds until the new score was visible or None on time-out)."""
    body = {"lead": str(lead_id), "type": "page_view", "properties": {"url": PRICING_URL}}
    started = time.perf_counter()
    status, answer = client.request("POST", "/api/v1/activities/", body)
    answered = time.perf_counter() - started
    if status != 201:
        raise SystemExit(f"POST /api/v1/activities/ answered {status}: {answer[:300]!r}")
    while time.perf_counter() - started < args.timeout:
        score = api_score(client, lead_id) if args.poll == "api" else stored_score(lead_id)
        if score != before:
            return answered, time.perf_counter() - started
        time.sleep(args.interval)
    return answered, None


def pick_leads(org, count: int) -> list:
    """Leads with no pricing-page view in the last 30 days, so a new one always raises the score."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT l.id FROM leads_lead l WHERE l.organization_id = %s AND NOT EXISTS ("
            " SELECT 1 FROM leads_activity a WHERE a.organization_id = l.organization_id AND a.lead_id = l.id"
            " AND a.type = 'page_view' AND a.properties ->> 'url' ILIKE '%%/pricing%%'"
            " AND a.occurred_at >= now() - interval '31 days') ORDER BY md5(l.id::text) LIMIT %s", [org, count])
        return [row[0] for row in cursor.fetchall()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=100_000, help="leads in the org (activities: about 5 each)")
    parser.add_argument("--posts", type=int, default=200, help="measured posts, one lead each")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured posts first")
    parser.add_argument("--poll", choices=["db", "api"], default="db", help="where to watch for the new score")
    parser.add_argument("--interval", type=float, default=0.005, help="seconds between polls")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a score to change")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--pool", choices=["solo", "prefork"], default="solo", help="the Celery worker's pool")
    parser.add_argument("--org", help="the slug of an org `scoring_bulk.py --keep` built: use it, keep it")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    print(f"Instant scoring benchmark: {os.cpu_count()} CPUs, PostgreSQL "
          f"{connection.cursor().connection.info.server_version}")
    organization = Organization.objects.get(slug=args.org) if args.org else create_org()
    org = organization.pk
    name = f"bench-scoring-{uuid.uuid4().hex[:8]}@localhost"
    server = worker = api_key = None
    try:
        if not args.org:
            build(organization, args.leads, timezone.now())
        leads_in_org = Lead.objects.for_org(org).count()
        api_key, key = core_services.create_api_key(organization=organization, name="scoring benchmark")
        leads = pick_leads(org, args.warmup + args.posts)
        if len(leads) < args.warmup + args.posts:
            raise SystemExit(f"only {len(leads)} leads without a recent pricing view: use more --leads")
        # Their stored scores are current before the posts (as they would be in a live org).
        scoring.score_leads(organization_id=org, config=scoring.load_config(org), scope={"id__in": leads})
        port = free_port()
        server = start_gunicorn(port, SimpleNamespace(workers=args.workers, worker_class="sync", threads=1))
        worker = start_worker(name, args.pool)
        wait_until_up(port, key, server)
        wait_for_worker(name, worker)
        client = Client(port, key)

        for lead_id in leads[:args.warmup]:
            one_post(client, lead_id, stored_score(lead_id), SimpleNamespace(**{**vars(args), "timeout": 60.0}))
        pings, posts, visible, missed = [], [], [], 0
        for lead_id in leads[args.warmup:]:
            started = time.perf_counter()
            status, _ = client.request("GET", "/api/v1/ping/")
            assert status == 200, status
            pings.append(time.perf_counter() - started)
            answered, seen = one_post(client, lead_id, stored_score(lead_id), args)
            posts.append(answered)
            if seen is None:
                missed += 1
            else:
                visible.append(seen)
    finally:
        if server is not None:
            stop(server)
        if worker is not None:
            stop_worker(worker)
        if not args.org:
            cleanup(organization)
        elif api_key is not None:
            api_key.delete()

    print(f"\n{args.posts} posts, one at a time, each on its own lead of an org of {leads_in_org:,}; "
          f"gunicorn {args.workers} sync workers, one Celery worker ({args.pool} pool); new score watched in the "
          f"{'API' if args.poll == 'api' else 'DB'} every {args.interval * 1000:g} ms")
    print(f"{'':52}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for label, values in (("bound: GET /api/v1/ping/ round trip", pings),
                          ("bound: POST /api/v1/activities/ answered", posts),
                          ("instant scoring: POST until the new score is stored", visible)):
        print(f"{label:<52}{percentile(values, 50):9.1f}{percentile(values, 95):9.1f}{max(values) * 1000:9.1f}")
    p95 = percentile(visible, 95) if visible else float("inf")
    print(f"instant scoring p95 = {p95:.0f} ms ({'meets' if p95 < 500 and not missed else 'misses'} the goal of "
          f"< 500 ms); scoring after the POST's answer adds p50 "
          f"{percentile(visible, 50) - percentile(posts, 50):.0f} ms; {missed} scores not seen within "
          f"{args.timeout:g} s")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
