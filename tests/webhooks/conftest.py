import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from webhooks import net


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops concurrent connections (the client then waits 1 s to retry)
    daemon_threads = True


class Receiver:
    """A real HTTP server on 127.0.0.1 in a thread. `requests` holds what it got (path, headers, body);
    `respond` decides each answer: (status, body, extra headers), optionally after `delay` seconds."""

    def __init__(self, host="127.0.0.1"):
        self.requests = []
        self.status, self.body, self.headers, self.delay = 200, b"ok", {}, 0.0
        self.respond = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                receiver.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": body})
                if receiver.delay:
                    time.sleep(receiver.delay)
                status, payload, extra = (receiver.respond(self.path) if receiver.respond else
                                          (receiver.status, receiver.body, receiver.headers))
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = _Server((host, 0), Handler)
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook", host=None):
        return f"http://{host or self.host}:{self.port}{path}"

    def wait_for(self, count, timeout=30.0):
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.requests

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def local_receivers(settings):
    """Deliveries may go to this machine over http (what the development setting allows)."""
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    settings.WEBHOOKS_ALLOW_HTTP = True


class DNS(dict):
    """Answers by host name; `lookups` lists every name resolved."""

    def __init__(self):
        super().__init__()
        self.lookups = []


@pytest.fixture
def dns(monkeypatch):
    """A resolver the test controls: dns["hooks.example"] = ["93.184.216.34"]; other names resolve as usual."""
    answers = DNS()
    real = net.resolve

    def resolve(host, port):
        answers.lookups.append(host)
        if host in answers:
            return list(answers[host])
        return real(host, port)

    monkeypatch.setattr(net, "resolve", resolve)
    return answers
