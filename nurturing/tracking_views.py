"""Public tracking endpoints reached from inside sent emails: no login, no CSRF token (mail clients and the
RFC 8058 one-click POST have none). A token that is not ours is a 404, and the click redirect only ever goes to
a URL recorded for that message when it was sent."""

import base64

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from leadcrm import rls
from leadcrm.ratelimits import limit_by_ip

from . import selectors, services

# A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _message(token):
    message_id = services.read_token(token)  # the signed token names the message, and so its organization
    organization_id = selectors.organization_of_message(message_id) if message_id else None
    if organization_id is None:
        raise Http404("No such message")
    rls.set_organization(organization_id)
    message = services.message_for(token)
    if message is None:
        raise Http404("No such message")
    return message


@never_cache
@limit_by_ip("tracking", "TRACKING_RATE_LIMIT")
@require_GET
def open_pixel(request, token):
    services.record_open(_message(token))
    return HttpResponse(PIXEL, content_type="image/gif")


@never_cache
@limit_by_ip("tracking", "TRACKING_RATE_LIMIT")
@require_GET
def click(request, token, index):
    url = services.record_click(_message(token), index)
    if url is None:
        raise Http404("No such link in this email")
    response = HttpResponseRedirect(url)
    response["Referrer-Policy"] = "no-referrer"
    return response


@csrf_exempt
@never_cache
@limit_by_ip("tracking", "TRACKING_RATE_LIMIT")
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token):
    """GET shows a page with a button (link scanners must not unsubscribe anyone); a POST, the button's or a mail
    client's one-click `List-Unsubscribe=One-Click`, unsubscribes at once."""
    message = _message(token)
    done = message.lead.unsubscribed
    if request.method == "POST":
        services.unsubscribe(message, how="page" if "confirm" in request.POST else "one-click")
        done = True
    response = render(request, "nurturing/tracking/unsubscribe.html", {
        "done": done, "token": token, "organization_name": message.organization.name})
    response["Referrer-Policy"] = "no-referrer"
    return response
