from datetime import timedelta
from functools import cache

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser
from django.db import DEFAULT_DB_ALIAS, connection
from django.utils import timezone
from rest_framework import authentication, exceptions

from . import logs, ratelimits, rls, tenancy
from .models import ApiKey, Organization

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
            api_key = _usable_key(key)
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


@cache
def _key_sql() -> tuple[str, list[list[str]]]:
    """The usable key of a prefix with its org and its creator, and each model's columns: written once, where the
    ORM's select_related compiled it on every request (a fifth of a capture's CPU)."""
    models = [ApiKey, Organization, get_user_model()]
    columns = [[field.attname for field in model._meta.concrete_fields] for model in models]
    tables = ["k", "o", "u"]
    select = ", ".join(f"{table}.{connection.ops.quote_name(column)}"
                       for table, names in zip(tables, columns, strict=True) for column in names)
    return (f"SELECT {select} FROM {ApiKey._meta.db_table} k"
            f" JOIN {Organization._meta.db_table} o ON o.id = k.organization_id"
            f" LEFT JOIN {get_user_model()._meta.db_table} u ON u.id = k.created_by_id"
            f" WHERE k.prefix = %s AND NOT k.revoked"), columns


def _usable_key(key: str) -> ApiKey:
    """The key (not revoked, its secret checked), with its organization and creator loaded; as the library's
    ApiKey.objects.get_from_key, in one statement."""
    sql, (key_columns, organization_columns, user_columns) = _key_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, [key.partition(".")[0]])
        row = cursor.fetchone()
    if row is None:
        raise ApiKey.DoesNotExist
    ends = [len(key_columns), len(key_columns) + len(organization_columns)]
    api_key = ApiKey.from_db(DEFAULT_DB_ALIAS, key_columns, row[:ends[0]])
    api_key.organization = Organization.from_db(DEFAULT_DB_ALIAS, organization_columns, row[ends[0]:ends[1]])
    creator = row[ends[1]:]
    api_key.created_by = (None if creator[0] is None
                          else get_user_model().from_db(DEFAULT_DB_ALIAS, user_columns, creator))
    if not api_key.is_valid(key):
        raise ApiKey.DoesNotExist
    return api_key


class EmailBackend(ModelBackend):
    """Browser login: members' usernames are their lower-cased email, so 'Ann@Example.com ' signs in as
    ann@example.com. A username typed exactly as stored (say, a superuser's) still works."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        normalised = (username or "").strip().lower()
        if user is None and normalised and normalised != username:
            user = super().authenticate(request, username=normalised, password=password, **kwargs)
        return user
