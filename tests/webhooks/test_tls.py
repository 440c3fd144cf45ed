"""https endpoints: the sender connects to the checked address but verifies the certificate for, and sends the TLS
server name (SNI) and Host of, the URL's host name."""

import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from webhooks import net, services
from webhooks.models import Delivery, Endpoint

pytestmark = [pytest.mark.django_db,
              pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")]


@pytest.fixture
def tls_receiver(tmp_path):
    """An https server on 127.0.0.1 with a self-signed certificate for hooks.example; records SNI and Host."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=hooks.example", "-addext", "subjectAltName=DNS:hooks.example", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    seen = {"sni": [], "host": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen["host"].append(self.headers["Host"])
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: seen["sni"].append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], cert, seen
    finally:
        server.shutdown()
        server.server_close()


def _send(org, url):
    endpoint = Endpoint.objects.create(organization=org, url=url, events=["lead.created"], secret="whsec_YQ==")
    delivery = Delivery.objects.create(organization=org, endpoint=endpoint, message_id=services.new_message_id(),
                                       event_type="webhook.test", payload={"data": {}}, next_attempt_at=timezone.now())
    return services.send_delivery(delivery_id=delivery.pk)


def test_https_keeps_the_host_name_for_sni_certificate_and_host(org, dns, monkeypatch, settings, tls_receiver):
    port, cert, seen = tls_receiver
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    real_forbidden = net.forbidden
    monkeypatch.setattr(net, "forbidden", lambda a: False if a == "127.0.0.1" else real_forbidden(a))
    monkeypatch.setattr(net, "tls_context", lambda: ssl.create_default_context(cafile=str(cert)))
    dns["hooks.example"] = ["127.0.0.1"]
    dns["other.example"] = ["127.0.0.1"]

    attempt = _send(org, f"https://hooks.example:{port}/in")
    assert attempt.status_code == 200, attempt.error
    assert seen["sni"] == ["hooks.example"] and seen["host"] == [f"hooks.example:{port}"]

    # The same address under another name: the certificate does not match it, so nothing is sent.
    attempt = _send(org, f"https://other.example:{port}/in")
    assert attempt.status_code is None and "CERTIFICATE_VERIFY_FAILED" in attempt.error
    assert seen["host"] == [f"hooks.example:{port}"]
