from datetime import timedelta

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework import authentication, exceptions

from . import logs, ratelimits, rls, tenancy
from .models import ApiKey

# last_used_at is refreshed at most this often, so a busy integration does not write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Api-Key <key>`: the request acts for the key's organization."""

    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, key = header.partition(" ")
        if scheme != self.keyword:
            return None
        key = key.strip()
        # An address that keeps sending wrong keys is guessing: it waits before any key of it is looked up.
        wait = ratelimits.auth_failures_exceeded(request._request)
        if wait:
            raise exceptions.Throttled(wait)
        try:
            # The prefix tells the org; the key itself is then checked under that org alone.
            organization_id = tenancy.organization_of_api_key(key)
            if organization_id is None:
                raise ApiKey.DoesNotExist
            rls.set_organization(organization_id)
            logs.bind_organization(organization_id)
            api_key = ApiKey.objects.get_from_key(key)
        except ApiKey.DoesNotExist:
            ratelimits.count_auth_failure(request._request)
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.") from None
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        django_request = request._request
        django_request.organization = api_key.organization
        django_request.membership = None
        django_request.api_key = api_key
        return (AnonymousUser(), api_key)

    def authenticate_header(self, request):
        return self.keyword


class EmailBackend(ModelBackend):
    """Browser login: members' usernames are their lower-cased email, so 'Ann@Example.com ' signs in as
    ann@example.com. A username typed exactly as stored (say, a superuser's) still works."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        normalised = (username or "").strip().lower()
        if user is None and normalised and normalised != username:
            user = super().authenticate(request, username=normalised, password=password, **kwargs)
        return user
