import io
import logging
import sys
import time
import zoneinfo
from urllib.parse import unquote

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError, connections, transaction
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from . import logs, metrics, rls, tenancy
from .errors import DomainError, Forbidden, NotFound

logger = logging.getLogger(__name__)


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
        return JsonResponse({"detail": f"Request body is larger than {limit} bytes.", "code": "too_large"},
                            status=413)


class RequestMetricsMiddleware:
    """Request latency by route: the resolver's route name (`lead-detail`), never the raw path, so one histogram
    series stands for every lead's page."""

    METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.view_name or match.route or "unnamed") if match else "unmatched"
        method = request.method if request.method in self.METHODS else "other"
        metrics.REQUEST_LATENCY.labels(route, method, f"{response.status_code // 100}xx").observe(
            time.perf_counter() - started)
        return response


class ActiveOrganizationMiddleware:
    """Sets request.membership / request.organization for session users (API keys set them in DRF), and the
    database's current org for row-level security: nothing is visible until the org is known, and the
    connection is put back when the request ends (it serves other requests next).

    Superusers too act for one org at a time, in the admin as elsewhere: the switcher offers them every org."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with rls.scope(rls.NOBODY):
            request.membership, request.organization, request.memberships = tenancy.resolve_membership(request)
            if request.organization is not None:
                logs.bind_organization(request.organization)
            response = self.get_response(request)
            if response.streaming:  # the body (CSV exports) is read after this returns: keep the org for it
                response.streaming_content = _scoped(response.streaming_content, rls.current())
            return response


def _scoped(chunks, organization):
    """The body in one transaction: an export's server-side cursor (QuerySet.iterator()) lives in it, on one server
    connection even behind a pooler, and reads one snapshot."""
    with rls.scope(organization), transaction.atomic():
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


class DatabaseUnavailableMiddleware:
    """A request whose database connection broke (the server restarted, the backend was terminated, a failover)
    ends with a clean 503 and `Retry-After`, not a traceback. Its transaction was rolled back by the server, so
    nothing of it was written; Django drops the broken connection at the end of the request."""

    RETRY_AFTER = "2"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        return database_unavailable(request, exception)


class DomainErrorMiddleware:
    """Browser answers to a refused service call, so views need not catch what they cannot do better.

    A view that has a form to show the errors in still catches them itself; everything else ends here. The API
    is DRF's (`leadcrm.api.exception_handler`) and is left alone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DomainError) or request.path.startswith("/api/"):
            return None
        if isinstance(exception, NotFound):
            raise Http404(exception.message)
        if isinstance(exception, Forbidden) or request.method in ("GET", "HEAD"):
            # A refusal is a 403 here as in the API (leadcrm/policy.py); a GET has no page to go back to.
            return render(request, "domain_error.html", {"error": exception}, status=exception.status)
        for message in exception.messages:
            messages.error(request, message)
        back = _back_url(request)
        if request.htmx:  # htmx would swap the redirected page into a fragment: have it load the page instead
            response = HttpResponse(status=exception.status)
            response["HX-Redirect"] = back
            return response
        return redirect(back)


def _back_url(request) -> str:
    """Where the form asked to return to (`next`), else the page it was posted from, when either is one of ours;
    else the start page."""
    for target in (request.POST.get("next", ""), request.META.get("HTTP_REFERER", "")):
        if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                      require_https=request.is_secure()):
            return target
    return "/"


def database_unavailable(request, exception) -> HttpResponse:
    """The 503 answer for a request whose database connection broke. The broken connection is dropped now, so the
    next statement of this process connects anew (Django would drop it when the request ends; a statement run
    outside a transaction leaves no failed rollback behind to do it sooner)."""
    logger.warning("database unavailable during %s %s: %s", request.method, request.path, exception)
    for database in connections.all(initialized_only=True):
        database.close_if_unusable_or_obsolete()
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": "The database is unavailable. Nothing was saved; try again.",
                                 "code": "database_unavailable"}, status=503)
    else:
        response = HttpResponse(
            "<!doctype html><title>Try again</title><h1>Try again in a moment</h1>"
            "<p>LeadCRM could not reach its database. Nothing was saved; please try again.</p>",
            status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = DatabaseUnavailableMiddleware.RETRY_AFTER
    return response


def server_error(request):
    """handler500: a database that broke while a middleware used it is a 503 too; anything else a plain 500."""
    exception = sys.exc_info()[1]
    if isinstance(exception, (OperationalError, InterfaceError)):
        return database_unavailable(request, exception)
    from django.views.defaults import server_error as default_server_error

    return default_server_error(request)
