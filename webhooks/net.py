"""Sending a POST to a receiver without letting it reach what it must not (SSRF).

Every hop resolves the host once, refuses the URL if any address it resolves to is not a public unicast one,
and connects to a checked address itself (so a DNS answer that changes between the check and the connection
cannot slip through), keeping the Host header and TLS server name of the URL. Redirects are followed here, hop
by hop, each checked the same way; the HTTP library never follows one on its own.
"""

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from django.conf import settings

from .models import RESPONSE_EXCERPT_BYTES

REDIRECTS = (301, 302, 303, 307, 308)
# NAT64 prefix: the last 32 bits are an IPv4 address.
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(ValueError):
    """The URL may not be called: its scheme, or an address it resolves to."""


def resolve(host: str, port: int) -> list[str]:
    """All addresses of `host` (a module-level function so tests can give answers that change)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"The host {host!r} does not resolve.") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


def _embedded_ipv4(address: ipaddress.IPv6Address):
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden(address: str) -> bool:
    """True for loopback, private, link-local (cloud metadata lives there), shared, multicast, reserved,
    unspecified and unique-local addresses, and IPv6 forms that embed one of those IPv4 addresses."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return forbidden(str(embedded))
    return (not ip.is_global or ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
            or ip.is_reserved or ip.is_unspecified)


@dataclass
class Target:
    scheme: str
    host: str
    port: int
    path: str
    addresses: list[str]


def check_url(url: str) -> Target:
    """Parse, resolve and check `url`; Refused says why it may not be called."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused("Enter a valid URL.") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Refused("Only http and https URLs can receive webhooks.")
    if scheme == "http" and not settings.WEBHOOKS_ALLOW_HTTP:
        raise Refused("Use an https URL: deliveries carry personal data.")
    host = parts.hostname
    if not host:
        raise Refused("Enter a valid URL.")
    if parts.username is not None or parts.password is not None:
        raise Refused("Credentials in the URL are not supported; check the signature instead.")
    port = port or (443 if scheme == "https" else 80)
    addresses = resolve(host, port)
    if not addresses:
        raise Refused(f"The host {host!r} does not resolve.")
    if not settings.WEBHOOKS_ALLOW_PRIVATE:
        for address in addresses:
            if forbidden(address):
                raise Refused(f"The host {host!r} resolves to {address}, a private or reserved address; "
                              "webhooks go to public addresses only.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=addresses)


def tls_context() -> ssl.SSLContext:
    """The system's trusted CAs, hostname checking on (a function, so tests can trust their own certificate)."""
    return ssl.create_default_context()


@dataclass
class Result:
    url: str
    status_code: int | None = None
    body: str = ""
    error: str = ""
    duration_ms: int = 0


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to a given address while verifying the certificate for (and sending SNI of) the URL's host."""

    def __init__(self, address, port, server_hostname, **kwargs):
        super().__init__(address, port, **kwargs)
        self._server_hostname = server_hostname

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_hostname)


def _connect(target: Target, connect_timeout: float, read_timeout: float):
    last_error = None
    for address in target.addresses:
        try:
            if target.scheme == "https":
                connection = _PinnedHTTPSConnection(address, target.port, target.host, timeout=connect_timeout,
                                                    context=tls_context())
            else:
                connection = http.client.HTTPConnection(address, target.port, timeout=connect_timeout)
            connection.connect()
            connection.sock.settimeout(read_timeout)
            return connection
        except OSError as exc:
            last_error = exc
    raise last_error or OSError("no address to connect to")


def post(url: str, body: bytes, headers: dict[str, str]) -> Result:
    """POST `body` to `url`, following up to WEBHOOKS_MAX_REDIRECTS redirects, each hop checked."""
    started = time.monotonic()
    result = Result(url=url)
    try:
        for _hop in range(settings.WEBHOOKS_MAX_REDIRECTS + 1):
            result = Result(url=url)
            target = check_url(url)
            host_header = target.host if ":" not in target.host else f"[{target.host}]"
            if target.port != (443 if target.scheme == "https" else 80):
                host_header += f":{target.port}"
            connection = _connect(target, settings.WEBHOOKS_CONNECT_TIMEOUT, settings.WEBHOOKS_READ_TIMEOUT)
            try:
                connection.request("POST", target.path, body=body, headers={
                    "Host": host_header, "Content-Type": "application/json", "User-Agent": "LeadCRM-Webhooks/1",
                    **headers})
                response = connection.getresponse()
                result.status_code = response.status
                result.body = response.read(RESPONSE_EXCERPT_BYTES).decode("utf-8", "replace")
                location = response.getheader("Location")
            finally:
                connection.close()
            if response.status not in REDIRECTS or not location:
                break
            url = urljoin(url, location)
        else:
            result.error = f"More than {settings.WEBHOOKS_MAX_REDIRECTS} redirects."
    except Refused as exc:
        result.error = f"Refused: {exc}"
    except (OSError, http.client.HTTPException) as exc:
        result.error = f"{exc.__class__.__name__}: {exc}"[:500]
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result
