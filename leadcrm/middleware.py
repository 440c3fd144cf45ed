import zoneinfo
from urllib.parse import unquote

from django.conf import settings
from django.http import JsonResponse
from django.urls import reverse
from django.utils import timezone

from . import rls, tenancy


class BodySizeLimitMiddleware:
    """Answer 413 before reading a body over the limit (CSV uploads have a larger one)."""

    UPLOAD_PATHS = ("/api/v1/imports/", "/imports/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.MAX_IMPORT_BYTES if request.path.startswith(self.UPLOAD_PATHS) else settings.MAX_BODY_BYTES
        if length > limit:
            return JsonResponse({"detail": f"Request body is larger than {limit} bytes."}, status=413)
        return self.get_response(request)


class ActiveOrganizationMiddleware:
    """Sets request.membership / request.organization for session users (API keys set them in DRF), and the
    database's current org for row-level security: nothing is visible until the org is known, and the
    connection is put back when the request ends (it serves other requests next)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with rls.scope(rls.NOBODY):
            with rls.unscoped():  # the user's memberships in every org: the switcher lists them
                request.membership, request.memberships = tenancy.resolve_membership(request)
            request.organization = request.membership.organization if request.membership else None
            if request.user.is_superuser and request.path.startswith(reverse("admin:index")):
                rls.set_organization(rls.ALL)  # only superusers see every org in the admin (DESIGN §3)
            elif request.organization is not None:
                rls.set_organization(request.organization)
            response = self.get_response(request)
            if response.streaming:  # the body (CSV exports) is read after this returns: keep the org for it
                response.streaming_content = _scoped(response.streaming_content, rls.current())
            return response


def _scoped(chunks, organization):
    with rls.scope(organization):
        yield from chunks


class ViewerTimezoneMiddleware:
    """Show times in the viewer's timezone, which the browser reports in the `tz` cookie (static/js/app.js)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name = unquote(request.COOKIES.get("tz", ""))
        try:
            timezone.activate(zoneinfo.ZoneInfo(name)) if name else timezone.deactivate()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        return self.get_response(request)
