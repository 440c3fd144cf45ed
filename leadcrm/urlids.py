"""What an id in a URL looks like, in one place for every route.

Pages use Django's path converters (`<uuid:pk>`, `<int:pk>`, and `<keyprefix:prefix>` below). The API's router
matches each detail route's id with `Router` below, and actions with ids of their own spell them with these
patterns: a URL whose id is not of its kind (`not-a-uuid`, `1'`, a NUL byte) then matches no route and is a
plain 404, before any view or query could choke on it.
"""

from django.urls import register_converter
from django.urls.converters import StringConverter
from rest_framework.routers import DefaultRouter

# Any case: API clients may send upper-case UUIDs, which the database compares as the same value.
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
INT = r"[0-9]{1,18}"  # fits a bigint: a longer run of digits is no id either
KEY_PREFIX = r"[0-9A-Za-z]{1,32}"  # an API key's public prefix
SLUG_KEY = r"[a-z][a-z0-9_]{1,31}"  # an org's own activity type


class Router(DefaultRouter):
    """The API's router: a detail id is a UUID unless the viewset names another kind (`lookup_value_regex`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._default_value_pattern = UUID  # DRF's default, `[^/.]+`, lets any text through to the view


class KeyPrefixConverter(StringConverter):
    regex = KEY_PREFIX


register_converter(KeyPrefixConverter, "keyprefix")
