"""Soak test: the multi-process setup under a steady load, with workers killed and the broker restarted, loses
nothing.

    make soak                       (10 minutes; = python -m leadcrm.devstack exec python bench/soak.py)
    make soak ARGS="--minutes 2"    (the short version)
    make soak ARGS="--broker rabbitmq"

Runs against DATABASE_URL (embedded when unset, via devstack) and starts, on this machine:

- gunicorn (sync workers) serving the API;
- TWO Celery workers (prefork), one for `scoring,routing,capture`, one for `nurturing,webhooks,imports,default`
  (as a production deployment splits them), and ONE beat process;
- the broker: a redis-server of its own (`--broker redis`, the default; the benchmark's capture_redis_restart.py
  broker) or a virtual host of the machine's RabbitMQ (`--broker rabbitmq`; quorum queues, publisher confirms);
- a streaming read replica of the cluster (tests/standby.py: `pg_basebackup -R`, another port) when the PostgreSQL
  server binaries are there (`--no-replica` leaves it out), given to the web processes as DATABASE_REPLICA_URL;
- PgBouncer (the distribution's binary, tests/pgbouncer.py) in transaction pooling between every web and worker
  process and PostgreSQL, primary and replica alike, with `--pool-size` server connections (fewer than the
  processes' clients, so transactions really share them); the processes run as behind a production pooler
  (DATABASE_POOLED=1), the relay's LISTEN and the advisory locks going to the server itself (DATABASE_DIRECT_URL).
  `--no-pooler` leaves it out;
- a local SMTP sink (aiosmtpd, as the tests' smtp_server) receiving the reps' notification emails.

The load: `--rate` new leads per second (each a POST /api/v1/leads/ then a form submission activity for it, POST
/api/v1/activities/) for `--minutes`; every `--kill-every` seconds one worker (in turn) is SIGKILLed with its pool,
and started again (as a supervisor does); once, half-way, the broker is stopped for `--down` seconds and started
again. Then it waits (up to `--timeout`) until every accepted capture is scored and routed, and checks:

  every capture answered 2xx is stored, scored (MQL), routed once (one assignment), and its rep was emailed about
  it at most once; no request failed.

It prints p95 speed to lead (the POST's start to the lead's assignment) per minute of the run, and exits non-zero
when a check fails. The workers recover a killed worker's tasks after CELERY_VISIBILITY_TIMEOUT (Redis; 30 s here,
600 s in production) or at once (RabbitMQ), and the beat's sweepers re-enqueue what was lost.
"""

import argparse
import email
import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from contextlib import ExitStack
from email import policy
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")

WORKER_QUEUES = ("scoring,routing,capture", "nurturing,webhooks,imports,default")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of load")
    parser.add_argument("--rate", type=float, default=20.0, help="captures per second")
    parser.add_argument("--clients", type=int, default=24, help="client threads sharing the rate")
    parser.add_argument("--broker", choices=["redis", "rabbitmq"], default="redis")
    parser.add_argument("--no-replica", action="store_true", help="no read replica")
    parser.add_argument("--no-pooler", action="store_true", help="no PgBouncer: the processes connect directly")
    parser.add_argument("--pool-size", type=int, default=6,
                        help="PgBouncer's server connections per database and login (the processes hold about 12)")
    parser.add_argument("--kill-every", type=float, default=None,
                        help="seconds between worker SIGKILLs (default: 120, or a third of a shorter run, so the "
                             "2-minute soak kills twice too)")
    parser.add_argument("--down", type=float, default=10.0, help="seconds the broker stays stopped")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1), help="gunicorn sync workers")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the drain")
    return parser.parse_args()


class RabbitBroker:
    """A virtual host of the machine's RabbitMQ (CELERY_TEST_AMQP_URL's server); restart() restarts the broker."""

    def __init__(self):
        from tests.faults.conftest import RabbitMQ

        base = os.environ.get("CELERY_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
        self.vhost = f"leadcrm-soak-{uuid.uuid4().hex[:8]}"
        RabbitMQ.ctl("add_vhost", self.vhost)
        RabbitMQ.ctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        self.server = RabbitMQ(base.split("://", 1)[0] + "://" + base.split("://", 1)[1].split("/", 1)[0], self.vhost)
        self.url = self.server.url

    def stop(self):
        self.server.stop()

    def start(self):
        self.server.start()

    def remove(self):
        if not self.server.reachable():
            self.server.start()
        self.server.ctl("delete_vhost", self.vhost)


class Sink:
    """An SMTP server on a free port keeping every message it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        from capture_redis_restart import free_port

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command at INFO
        self.messages = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted"

    def stop(self):
        self.controller.stop()


class Load:
    """Client threads: each lead is a capture, then a form submission activity for it. `results` holds
    (email, lead id or None, status, started) per capture; `failures` the statuses of failed activity posts."""

    def __init__(self, port: int, key: str, run_id: str, rate: float, clients: int):
        self.port, self.key, self.run_id, self.rate, self.clients = port, key, run_id, rate, clients
        self.results: list[tuple[str, str | None, int, float]] = []
        self.failures: list[int] = []
        self.reports: list[int] = []
        self.lock = threading.Lock()
        self.numbers = iter(range(10**9))

    def _post(self, connection, path: str, body: dict):
        connection.request(
            "POST",
            path,
            body=json.dumps(body),
            headers={"Authorization": f"Api-Key {self.key}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        return response.status, response.read()

    def _client(self, stop: threading.Event, interval: float):
        connection = None
        next_at = time.monotonic()
        while not stop.is_set():
            with self.lock:
                n = next(self.numbers)
            address = f"lead-{n}@{self.run_id}.bench.invalid"
            started = time.time()
            lead_id, status = None, 0
            try:
                connection = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                status, body = self._post(
                    connection,
                    "/api/v1/leads/",
                    {"email": address, "first_name": "Soak", "job_title": "Sales Director", "company": "Soak Ltd"},
                )
                if 200 <= status < 300:
                    lead_id = json.loads(body)["id"]
                    done, _ = self._post(
                        connection,
                        "/api/v1/activities/",
                        {"lead": lead_id, "type": "form_submission", "properties": {"form": "soak"}},
                    )
                    if not 200 <= done < 300:
                        with self.lock:
                            self.failures.append(done)
            except OSError:
                connection = None
            with self.lock:
                self.results.append((address, lead_id, status, started))
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _reader(self, stop: threading.Event):
        """A marketer's dashboard: the funnel report every few seconds (from the replica when there is one)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not stop.wait(3):
            try:
                today = time.strftime("%Y-%m-%d")
                connection.request(
                    "GET",
                    f"/api/v1/reports/funnel/?start={today}&end={today}",
                    headers={"Authorization": f"Api-Key {self.key}"},
                )
                response = connection.getresponse()
                response.read()
                self.reports.append(response.status)
            except OSError:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.reports.append(0)

    def run(self, seconds: float, events):
        """Load for `seconds`; `events` is [(at seconds, callable)] run meanwhile in this thread, in order."""
        stop = threading.Event()
        threads = [
            threading.Thread(target=self._client, args=(stop, self.clients / self.rate)) for _ in range(self.clients)
        ]
        threads.append(threading.Thread(target=self._reader, args=(stop,)))
        started = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            for at, action in sorted(events, key=lambda event: event[0]):
                time.sleep(max(0.0, started + at - time.monotonic()))
                action()
            time.sleep(max(0.0, started + seconds - time.monotonic()))
        finally:
            stop.set()
            for thread in threads:
                thread.join()


def start_worker(index: int, env: dict) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "leadcrm",
        "--quiet",
        "worker",
        "-Q",
        WORKER_QUEUES[index],
        "--pool",
        "prefork",
        "-c",
        "2",
        "-n",
        f"soak{index}-{uuid.uuid4().hex[:6]}@localhost",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "warning",
    ]
    return subprocess.Popen(command, cwd=BENCH_DIR.parent, env=env, start_new_session=True)


def start_beat(env: dict) -> subprocess.Popen:
    schedule = os.path.join(tempfile.mkdtemp(prefix="soak-beat-"), "schedule")
    command = [sys.executable, "-m", "celery", "-A", "leadcrm", "--quiet", "beat", "-s", schedule, "-l", "warning"]
    return subprocess.Popen(command, cwd=BENCH_DIR.parent, env=env, start_new_session=True)


def end(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def at_address(url: str, host: str, port: int) -> str:
    """`url` (the processes' login and database) on another server's or pooler's address."""
    login = urlsplit(url)
    credentials = login.netloc.rpartition("@")[0]
    return urlunsplit(login._replace(netloc=f"{credentials}@{host}:{port}"))


def p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.95))] if values else float("nan")


def main() -> int:  # noqa: C901 - one linear script: set up, load, check, report
    args = parse_args()
    import django

    django.setup()
    from autovacuum import Autovacuum
    from capture import start_gunicorn, stop, wait_until_up
    from capture_redis_restart import Broker, free_port
    from django.core.management import call_command
    from django.db import connection
    from speed_to_lead import cleanup, set_up

    from leads.models import Lead
    from routing.models import Assignment
    from tests.standby import Standby, binaries

    call_command("migrate", interactive=False, verbosity=0)
    run_id = uuid.uuid4().hex[:10]
    with ExitStack() as cleanups:  # whatever was set up is taken down, even when a later step fails
        broker = RabbitBroker() if args.broker == "rabbitmq" else Broker()
        cleanups.callback(broker.remove)
        if args.broker == "redis":
            broker.start()
        sink = Sink()
        cleanups.callback(sink.stop)
        standby = None
        env = {
            **os.environ,
            "DEBUG": "0",
            "LOG_LEVEL": "ERROR",
            "CELERY_BROKER_URL": broker.url,
            "CELERY_VISIBILITY_TIMEOUT": "30",
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(sink.port),
        }
        primary = connection.settings_dict
        if not args.no_replica and binaries() is not None:
            standby = Standby(host=primary["HOST"] or "127.0.0.1", port=primary["PORT"] or 5432, user=primary["USER"])
            cleanups.callback(standby.stop)
            standby.start()
            env["DATABASE_REPLICA_URL"] = at_address(os.environ["DATABASE_URL"], "127.0.0.1", standby.port)
        poolers = {}
        if not args.no_pooler:
            from django.conf import settings

            from tests import pgbouncer

            users = sorted({primary["USER"] or "postgres", settings.DATABASE_APP_ROLE})
            servers = {"primary": (primary["HOST"] or "127.0.0.1", int(primary["PORT"] or 5432))}
            if standby:
                servers["replica"] = ("127.0.0.1", standby.port)
            for name, (host, server_port) in servers.items():
                poolers[name] = pgbouncer.start(server_host=host, server_port=server_port, users=users,
                                                pool_size=args.pool_size)
                cleanups.callback(poolers[name].stop)
            server = env["DATABASE_DIRECT_URL"] = os.environ["DATABASE_URL"]
            env["DATABASE_URL"] = at_address(server, poolers["primary"].host, poolers["primary"].port)
            env["DATABASE_POOLED"] = "1"
            if standby:
                env["DATABASE_REPLICA_URL"] = at_address(server, poolers["replica"].host, poolers["replica"].port)
        # gunicorn takes this process's environment; this process itself keeps its direct connection (its settings
        # were read at django.setup()).
        shared = ("CELERY_BROKER_URL", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_BACKEND", "DATABASE_REPLICA_URL",
                  "DATABASE_URL", "DATABASE_POOLED", "DATABASE_DIRECT_URL")
        os.environ.update({key: env[key] for key in shared if key in env})
        organization, key, _ = set_up(run_id, reps=5, sla_minutes=None)
        cleanups.callback(cleanup, organization)
        autovacuum = Autovacuum(connection).start()
        cleanups.callback(autovacuum.stop)
        port = free_port()
        workers = []  # ended before the org's rows are removed (callbacks run last registered first)
        cleanups.callback(lambda: [end(process) for process in workers])
        server = start_gunicorn(port, SimpleNamespace(workers=args.workers, worker_class="sync", threads=1))
        cleanups.callback(stop, server)
        workers += [start_worker(0, env), start_worker(1, env), start_beat(env)]
        kills, restarts = [], []
        seconds = args.minutes * 60
        kill_every = args.kill_every or min(120.0, seconds / 3)

        def kill(index):
            def action():
                os.killpg(workers[index].pid, signal.SIGKILL)
                workers[index].wait()
                kills.append(time.time())
                workers[index] = start_worker(index, env)

            return action

        def restart_broker():
            broker.stop()
            time.sleep(args.down)
            broker.start()
            restarts.append(time.time())

        events = [(at, kill(n % 2)) for n, at in enumerate(range(int(kill_every), int(seconds), int(kill_every)))]
        events.append((seconds / 2 + 5, restart_broker))
        load = Load(port, key, run_id, args.rate, args.clients)
        leads = Lead.objects.for_org(organization)
        wait_until_up(port, key, server)
        began = time.time()
        load.run(seconds, events)
        accepted = {lead_id: (address, at) for address, lead_id, status, at in load.results if 200 <= status < 300}
        failed = [status for _, _, status, _ in load.results if not 200 <= status < 300] + load.failures
        failed += [status for status in load.reports if status != 200]
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            if leads.filter(pk__in=list(accepted), lifecycle_stage="mql", owner__isnull=False).count() == len(accepted):
                break
            time.sleep(1)
        drained = time.monotonic() < deadline
        time.sleep(15)  # the last notification emails
        stored = leads.filter(pk__in=list(accepted)).count()
        scored = leads.filter(pk__in=list(accepted), lifecycle_stage="mql").count()
        routed = leads.filter(pk__in=list(accepted), owner__isnull=False).count()
        per_lead = Counter(
            Assignment.objects.for_org(organization).filter(lead__in=list(accepted)).values_list("lead_id", flat=True)
        )
        assigned_at = dict(
            Assignment.objects.for_org(organization)
            .filter(lead__in=list(accepted))
            .order_by("lead_id", "created_at")
            .distinct("lead_id")
            .values_list("lead_id", "created_at")
        )
        pooled = {name: sum(count for database, count in bouncer.transactions().items() if database != "pgbouncer")
                  for name, bouncer in poolers.items()}
        mentions = Counter()
        for message in sink.messages:
            body = message.get_body(preferencelist=("plain",)).get_content()
            for lead_id in accepted:
                if lead_id in body:
                    mentions[lead_id] += 1

    by_minute = defaultdict(list)
    for lead_id, (_, at) in accepted.items():
        routed_at = assigned_at.get(uuid.UUID(lead_id))
        if routed_at is not None:
            by_minute[int((at - began) // 60)].append(routed_at.timestamp() - at)
    print()
    print(
        f"Soak — {args.minutes:g} min at {args.rate:g} captures/s (+ a form submission each), broker "
        f"{args.broker}, replica {'on' if standby else 'off'} (base backup {standby.backup_seconds:.1f} s)"
        if standby
        else f"Soak — {args.minutes:g} min at {args.rate:g} captures/s (+ a form submission each), "
        f"broker {args.broker}, replica off"
    )
    print(autovacuum.describe())
    print(
        "PgBouncer (transaction pooling, "
        + (f"{args.pool_size} server connections per pool): "
           + ", ".join(f"{name} {count} transactions" for name, count in pooled.items()) if pooled else "off)")
    )
    print(f"workers SIGKILLed {len(kills)} times, broker restarted {len(restarts)} time(s), down {args.down:g} s")
    print("minute  leads  p95 speed to lead (capture -> assigned)")
    for minute in sorted(by_minute):
        print(f"{minute + 1:6d}  {len(by_minute[minute]):5d}  {p95(by_minute[minute]):.2f} s")
    twice_routed = sum(1 for count in per_lead.values() if count > 1)
    twice_emailed = sum(1 for count in mentions.values() if count > 1)
    print(
        f"captures sent {len(load.results)} in {seconds:g} s: {len(load.results) / seconds:.1f}/s of the "
        f"{args.rate:g}/s asked (fewer: the clients waited on slow answers)"
    )
    print(f"funnel report reads          {len(load.reports):6d}")
    print(f"captures accepted (2xx)      {len(accepted):6d}   failed requests: {len(failed)} {sorted(set(failed))}")
    print(f"stored                       {stored:6d}")
    print(f"scored (MQL)                 {scored:6d}")
    print(f"routed (owner)               {routed:6d}   routed more than once: {twice_routed}")
    print(
        f"reps emailed about           {len(mentions):6d}   emailed more than once: {twice_emailed} "
        f"({len(sink.messages)} emails)"
    )
    ok = (
        bool(accepted)  # no capture accepted proves nothing
        and drained
        and not failed
        and len(accepted) == stored == scored == routed
        and not twice_routed
        and not twice_emailed
        and all(pooled.values())  # with a pooler, the processes' transactions did go through it
    )
    print(f"nothing lost, nothing twice: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
