"""Absolute links to the app for what leaves it (emails), built from the configured `SITE_URL`.

Never from the request: its Host header is whatever the client sent, so a link built from it could point a
reader (of a password-reset email, say) at someone else's site.
"""

from urllib.parse import urlsplit

from django.conf import settings


def site_url(path: str = "") -> str:
    """`SITE_URL` followed by `path` (an absolute path such as `reverse(...)` gives)."""
    return settings.SITE_URL.rstrip("/") + path


def site_domain() -> str:
    """The host (and port) of `SITE_URL`."""
    return urlsplit(settings.SITE_URL).netloc


def site_uses_https() -> bool:
    return urlsplit(settings.SITE_URL).scheme == "https"
