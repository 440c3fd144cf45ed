import io
import zoneinfo
from urllib.parse import unquote

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.utils import timezone

from . import tenancy


class BodySizeLimitMiddleware:
    """Answer 413 before reading a body over the limit (CSV uploads have a larger one), whether the client said
    its length or sent it chunked; and for form data over what Django keeps in memory."""

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
            return self._too_large(limit)
        if not request.META.get("CONTENT_LENGTH") and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", ""):
            # Django reads nothing without a Content-Length (the body would silently vanish): read it here, at
            # most one byte past the limit, and hand it on with its length.
            body = request.environ["wsgi.input"].read(limit + 1)
            if len(body) > limit:
                return self._too_large(limit)
            request._stream = io.BytesIO(body)
            request.META["CONTENT_LENGTH"] = str(len(body))
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, RequestDataTooBig):
            return self._too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        return None

    @staticmethod
    def _too_large(limit):
        return JsonResponse({"detail": f"Request body is larger than {limit} bytes."}, status=413)


class ActiveOrganizationMiddleware:
    """Sets request.membership / request.organization for session users (API keys set them in DRF)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.membership, request.memberships = tenancy.resolve_membership(request)
        request.organization = request.membership.organization if request.membership else None
        return self.get_response(request)


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
