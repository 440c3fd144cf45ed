"""gunicorn settings for the image (Dockerfile) and any host that runs `gunicorn -c gunicorn.conf.py`."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
# Behind the reverse proxy, which buffers slow clients: plain sync workers are enough.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
# Requests are logged by the app as JSON (leadcrm.logs) and measured at /metrics; no second access log.
accesslog = None
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def child_exit(server, worker):
    """A web process that ended leaves its metric files; tell prometheus-client (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
