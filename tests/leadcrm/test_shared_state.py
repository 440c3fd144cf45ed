"""Nothing a request leaves behind lives in one process or host: another web process answers the next request."""

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.test import Client

from leadcrm import ratelimits

pytestmark = pytest.mark.django_db

LOCAL_BACKENDS = ("locmem", "filebased", "dummy", "file", "signed_cookies")


def test_caches_and_sessions_are_shared_backends():
    for alias, options in settings.CACHES.items():
        assert options["BACKEND"] == "django.core.cache.backends.redis.RedisCache", alias
    assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.db"
    assert settings.RATELIMIT_USE_CACHE in settings.CACHES
    assert not any(name in settings.SESSION_ENGINE for name in LOCAL_BACKENDS)


def test_a_session_signed_in_on_one_process_is_in_the_database(org):
    client = Client()
    assert client.login(username="owner@acme.test", password="pw-acme-123")
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert Session.objects.filter(session_key=key).exists()
    other = Client()  # a second process would find it the same way
    other.cookies[settings.SESSION_COOKIE_NAME] = key
    assert other.get("/").status_code in (200, 302) and other.get("/").wsgi_request.user.is_authenticated


def test_rate_limit_counters_are_in_redis():
    """Two web processes count against one limit: the counter is a Redis key, not a number in one process."""
    ratelimits.reset("shared-state-test", "203.0.113.9", "2/m")
    assert ratelimits.hit("shared-state-test", "203.0.113.9", "2/m") == 0
    assert ratelimits.hit("shared-state-test", "203.0.113.9", "2/m") == 0
    cache = caches[settings.RATELIMIT_USE_CACHE]
    redis = cache._cache.get_client(write=False)
    keys = redis.keys(cache.make_and_validate_key("rl:shared-state-test:*"))
    assert len(keys) == 1 and int(redis.get(keys[0])) == 2
    assert ratelimits.hit("shared-state-test", "203.0.113.9", "2/m") > 0  # the third is refused
    ratelimits.reset("shared-state-test", "203.0.113.9", "2/m")
