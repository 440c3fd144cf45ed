"""Rate limits counted in Redis (the default cache): fixed windows, one INCR per request.

Rates are strings like "600/m", "20/15m", "1000/s" (count / [n]unit, unit s, m, h or d). An empty rate, "0" or
"off" turns a limit off. A cache outage never refuses a request: it is logged and the request goes through.
"""

import hashlib
import ipaddress
import logging
import math
import re
import time
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from rest_framework import throttling

logger = logging.getLogger(__name__)

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\w*\s*$")


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """"20/15m" -> (20, 900); None when the limit is off."""
    if rate is None or str(rate).strip().lower() in ("", "0", "off", "none"):
        return None
    match = _RATE.match(str(rate))
    if not match:
        raise ValueError(f"Not a rate: {rate!r} (expected e.g. '600/m' or '20/15m')")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * UNITS[unit]


def client_address(request) -> str:
    """REMOTE_ADDR (behind a proxy, the proxy must set it to the client's address); an IPv6 client counts as its
    /64, which one host can hold whole."""
    raw = request.META.get("REMOTE_ADDR", "").strip()
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
    return str(address)


def _key(scope: str, ident: str, period: int, window: int) -> str:
    # Idents can be anything a client typed (a username): hash them into a safe, bounded cache key.
    digest = hashlib.sha256(str(ident).encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"rl:{scope}:{period}:{window}:{digest}"


def _window(period: int) -> tuple[int, int]:
    """The current window's number and the whole seconds until it ends (at least 1)."""
    now = time.time()
    window = int(now // period)
    return window, max(1, math.ceil((window + 1) * period - now))


def _increment(key: str, timeout: int) -> int:
    redis_client = getattr(getattr(cache, "_cache", None), "get_client", None)
    if redis_client is not None:
        # Redis: create the window's counter with its expiry if it is new, then INCR, in one round trip (Django's
        # cache.incr takes two, plus an add for a new window).
        full_key = cache.make_and_validate_key(key)
        pipeline = redis_client(write=True).pipeline(transaction=False)
        pipeline.set(full_key, 0, ex=timeout, nx=True)
        pipeline.incr(full_key)
        return pipeline.execute()[1]
    try:
        return cache.incr(key)
    except ValueError:  # first request of this window
        return 1 if cache.add(key, 1, timeout=timeout) else cache.incr(key)


def hit(scope: str, ident: str, rate: str | None, increment: bool = True) -> int:
    """Counts one request of `ident` against `rate`; returns 0 when it is allowed, else the seconds to wait.
    With increment=False it only looks (a login attempt checks before it knows whether it failed)."""
    parsed = parse_rate(rate)
    if parsed is None:
        return 0
    limit, period = parsed
    window, left = _window(period)
    key = _key(scope, ident, period, window)
    try:
        if increment:
            count = _increment(key, period + 1)
            return left if count > limit else 0
        count = cache.get(key) or 0
        return left if count >= limit else 0
    except Exception:
        logger.exception("Rate limit %s could not be counted; letting the request through", scope)
        return 0


def reset(scope: str, ident: str, rate: str | None) -> None:
    parsed = parse_rate(rate)
    if parsed is None:
        return
    _, period = parsed
    window, _ = _window(period)
    try:
        cache.delete(_key(scope, ident, period, window))
    except Exception:
        logger.exception("Rate limit %s could not be reset", scope)


def limit_by_ip(scope: str, setting: str, methods=None):
    """View decorator: over the rate named by `setting`, answer 429 with Retry-After (a plain text body, since
    these views are reached by mail clients and pixels, not people reading a page)."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if methods is None or request.method in methods:
                wait = hit(scope, client_address(request), getattr(settings, setting))
                if wait:
                    return too_many_requests(wait)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def too_many_requests(wait: int):
    from django.http import HttpResponse

    response = HttpResponse(f"Too many requests. Try again in {wait} seconds.\n", status=429,
                            content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(wait)
    return response


# --------------------------------------------------------------------------------------------- API throttles


class _CounterThrottle(throttling.BaseThrottle):
    """DRF throttle on a fixed-window counter (DRF's own keeps a list of every request time in the cache, which
    grows to the rate: too slow at thousands per minute). The 429 carries Retry-After (DRF adds it from wait())."""

    scope = ""
    setting = ""

    def ident(self, request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view):
        ident = self.ident(request)
        if ident is None:
            return True
        self.wait_seconds = hit(self.scope, ident, getattr(settings, self.setting))
        return not self.wait_seconds

    def wait(self):
        return self.wait_seconds


class ApiKeyThrottle(_CounterThrottle):
    """Per API key (API_RATE_PER_KEY)."""

    scope, setting = "api-key", "API_RATE_PER_KEY"

    def ident(self, request):
        return str(request.auth.pk) if request.auth is not None else None


class SessionUserThrottle(_CounterThrottle):
    """Per signed-in user calling the API from the browser (API_RATE_PER_USER)."""

    scope, setting = "api-user", "API_RATE_PER_USER"

    def ident(self, request):
        if request.auth is None and request.user.is_authenticated:
            return str(request.user.pk)
        return None


class AnonymousThrottle(_CounterThrottle):
    """Per client address for calls with neither a key nor a session (API_RATE_ANONYMOUS)."""

    scope, setting = "api-anon", "API_RATE_ANONYMOUS"

    def ident(self, request):
        if request.auth is None and not request.user.is_authenticated:
            return client_address(request)
        return None


AUTH_FAILURE_SCOPE = "api-auth-failure"


def auth_failures_exceeded(request) -> int:
    """Seconds this address must wait after too many requests with a bad API key (API_RATE_AUTH_FAILURES)."""
    return hit(AUTH_FAILURE_SCOPE, client_address(request), settings.API_RATE_AUTH_FAILURES, increment=False)


def count_auth_failure(request) -> None:
    hit(AUTH_FAILURE_SCOPE, client_address(request), settings.API_RATE_AUTH_FAILURES)
