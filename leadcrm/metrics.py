"""Prometheus metrics, with prometheus-client itself (README "Metrics and logs").

Histograms are observed where things happen: request latency by route (middleware), task latency by task (Celery
signals), speed to lead (routing's first assignment) and nurture send lag (nurturing's send). Gauges that describe
shared state — Celery queue depth per queue, outbox backlog, webhook retry backlog — are read when Prometheus
scrapes, from the broker and with cheap SQL, so every web process answers the same.

Several processes per host (gunicorn workers, Celery's prefork pool): with PROMETHEUS_MULTIPROC_DIR set (an empty
directory per container, made before the processes start), each process writes its samples there and a scrape adds
them up (prometheus-client's multiprocess mode). Web processes serve them at /metrics; a worker's main process serves
its pool's at WORKER_METRICS_PORT (leadcrm.celery)."""

import hmac
import ipaddress
import logging
import os
import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest, make_wsgi_app, multiprocess
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

# Seconds. Requests and tasks: milliseconds to half a minute. Speed to lead and send lag: a second to a day.
FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SLOW_BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)

REQUEST_LATENCY = Histogram(
    "leadcrm_http_request_duration_seconds",
    "Time to answer a request, by route name (not path), method and status class",
    ["route", "method", "status"],
    buckets=FAST_BUCKETS,
)
TASK_LATENCY = Histogram(
    "leadcrm_celery_task_duration_seconds",
    "Time a worker spent on a task, by task name and outcome",
    ["task", "state"],
    buckets=FAST_BUCKETS,
)
SPEED_TO_LEAD = Histogram(
    "leadcrm_speed_to_lead_seconds", "From a lead's capture to its first assignment to a rep", buckets=SLOW_BUCKETS
)
NURTURE_SEND_LAG = Histogram(
    "leadcrm_nurture_send_lag_seconds",
    "From a sequence email's due time to its hand-over to the mail server",
    buckets=SLOW_BUCKETS,
)

# Every queue the app routes tasks to (settings.CELERY_TASK_ROUTES) and the default one.
QUEUES = ("capture", "scoring", "routing", "nurturing", "webhooks", "imports", "default")

_gauges: list[tuple[str, str, Callable[[], float]]] = []


def register_gauge(name: str, documentation: str, read: Callable[[], float]) -> None:
    """A number read at scrape time (an app's backlog): `read` must be one cheap query."""
    if all(existing != name for existing, _, _ in _gauges):
        _gauges.append((name, documentation, read))


def observe_many(histogram: Histogram, seconds: list[float]) -> None:
    for value in seconds:
        histogram.observe(max(0.0, value))


def queue_depths() -> dict[str, int]:
    """Messages waiting in each queue, asked of the broker (Redis or RabbitMQ alike, through kombu)."""
    from .celery import app

    depths = {}
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        for queue in QUEUES:
            try:
                depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
            except Exception:  # noqa: BLE001 — a queue never declared (RabbitMQ) holds nothing
                depths[queue] = 0
                channel = connection.channel()
    return depths


class ScrapeTimeCollector:
    """The gauges read when Prometheus asks: queue depth per queue and the registered backlogs. A part that cannot
    be read is left out of this scrape (and logged), never an error for the whole page."""

    def collect(self):
        depth = GaugeMetricFamily("leadcrm_celery_queue_length", "Tasks waiting in each Celery queue", labels=["queue"])
        try:
            for queue, waiting in queue_depths().items():
                depth.add_metric([queue], waiting)
            yield depth
        except Exception:  # noqa: BLE001
            logger.warning("metrics: the broker could not be read", exc_info=True)
        for name, documentation, read in _gauges:
            try:
                yield GaugeMetricFamily(name, documentation, value=read())
            except Exception:  # noqa: BLE001
                logger.warning("metrics: %s could not be read", name, exc_info=True)


def _registry(*, scrape_time: bool) -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_ProcessMetrics())
    if scrape_time:
        registry.register(ScrapeTimeCollector())
    return registry


class _ProcessMetrics:
    """This process's own metrics (one process: tests, `runserver`)."""

    def collect(self):
        yield from REGISTRY.collect()


def render() -> bytes:
    return generate_latest(_registry(scrape_time=True))


def allowed(request) -> bool:
    return authorized(request.META.get("HTTP_AUTHORIZATION", ""), request.META.get("REMOTE_ADDR", ""))


def authorized(header: str, address: str) -> bool:
    """A scrape carries `Authorization: Bearer <METRICS_TOKEN>`, or comes from one of METRICS_ALLOWED_NETWORKS.
    With neither setting, nobody may read the metrics."""
    token = settings.METRICS_TOKEN
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    return _from_allowed_network(address)


def _from_allowed_network(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network, strict=False) for network in settings.METRICS_ALLOWED_NETWORKS)


# ------------------------------------------------------------------------------------------ Celery workers


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def serve_worker_metrics(port: int) -> None:
    """A worker's main process: serve its pool's task metrics (multiprocess mode) on `port`, same token rule."""
    inner = make_wsgi_app(_registry(scrape_time=False))

    def app(environ, start_response):
        if not authorized(environ.get("HTTP_AUTHORIZATION", ""), environ.get("REMOTE_ADDR", "")):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"A metrics token is needed.\n"]
        return inner(environ, start_response)

    server = make_server("0.0.0.0", port, app, handler_class=_QuietHandler)  # noqa: S104 — scraped from outside
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
