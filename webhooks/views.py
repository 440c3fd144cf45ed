"""Browser pages of outbound webhooks, for org admins: endpoints (create — the secret shown once —, edit,
enable/disable, rotate the secret, send a test event, delete), an endpoint's deliveries, a delivery's attempts."""

import json

from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from leadcrm.errors import add_to_form
from leadcrm.paging import keyset_page
from leadcrm.policy import Action, allowed

from . import selectors, services
from .forms import EndpointForm
from .models import Delivery, DeliveryStatus, Endpoint, EventType

admins = allowed(Action.WEBHOOKS)
DELIVERIES_PAGE = 50


def _endpoint(request, pk) -> Endpoint:
    return get_object_or_404(selectors.endpoints(request.organization), pk=pk)


@admins
@require_GET
def endpoint_list(request):
    endpoints, next_url, previous_url = keyset_page(request, selectors.endpoints(request.organization),
                                                    "-created_at")
    return render(request, "webhooks/endpoint_list.html",
                  {"endpoints": endpoints, "next_url": next_url, "previous_url": previous_url})


@admins
def endpoint_create(request):
    if request.method == "POST":
        form = EndpointForm(request.POST)
        if form.is_valid():
            try:
                endpoint = services.create_endpoint(organization_id=request.organization.pk, data=form.cleaned_data,
                                                   actor=request.user)
            except services.EndpointError as exc:
                add_to_form(form, exc)
            else:
                return _detail(request, endpoint, secret=endpoint.secret, status=201)
        return render(request, "webhooks/endpoint_form.html", {"form": form}, status=400)
    return render(request, "webhooks/endpoint_form.html", {"form": EndpointForm()})


def _detail(request, endpoint, *, secret=None, status=200):
    status_filter = request.GET.get("status", "")
    event_filter = request.GET.get("event", "")
    status_filter = status_filter if status_filter in selectors.STATUS_FILTERS else ""
    event_filter = event_filter if event_filter in selectors.EVENT_FILTERS else ""
    deliveries, next_url, previous_url = keyset_page(
        request, selectors.deliveries(endpoint, status=status_filter, event=event_filter), "-created_at",
        page_size=DELIVERIES_PAGE)
    context = {"endpoint": endpoint, "secret": secret, "deliveries": deliveries, "next_url": next_url,
               "previous_url": previous_url, "status_filter": status_filter, "event_filter": event_filter,
               "statuses": DeliveryStatus.choices, "event_choices": selectors.EVENT_FILTERS,
               "retention_days": settings.WEBHOOKS_RETENTION_DAYS,
               "event_labels": dict(EventType.choices)}
    template = "webhooks/_deliveries.html" if request.htmx and not secret else "webhooks/endpoint_detail.html"
    return render(request, template, context, status=status)


@admins
@require_GET
def endpoint_detail(request, pk):
    return _detail(request, _endpoint(request, pk))


@admins
def endpoint_edit(request, pk):
    endpoint = _endpoint(request, pk)
    if request.method == "POST":
        form = EndpointForm(request.POST)
        if form.is_valid():
            try:
                services.update_endpoint(endpoint=endpoint, data=form.cleaned_data, actor=request.user)
            except services.EndpointError as exc:
                add_to_form(form, exc)
            else:
                messages.success(request, "Saved the endpoint.")
                return redirect("webhooks:detail", pk=endpoint.pk)
        return render(request, "webhooks/endpoint_form.html", {"form": form, "endpoint": endpoint}, status=400)
    form = EndpointForm(initial={"url": endpoint.url, "description": endpoint.description,
                                 "events": endpoint.events, "active": endpoint.active})
    return render(request, "webhooks/endpoint_form.html", {"form": form, "endpoint": endpoint})


@admins
@require_POST
def endpoint_active(request, pk):
    endpoint = services.set_active(endpoint=_endpoint(request, pk), active=request.POST.get("active") == "1",
                                   actor=request.user)
    messages.success(request, "Endpoint enabled." if endpoint.active else
                     "Endpoint disabled: no new deliveries, and pending ones wait until it is enabled.")
    return redirect("webhooks:detail", pk=endpoint.pk)


@admins
@require_POST
def endpoint_rotate(request, pk):
    endpoint = services.rotate_secret(endpoint=_endpoint(request, pk), actor=request.user)
    return _detail(request, endpoint, secret=endpoint.secret)


@admins
@require_POST
def endpoint_test(request, pk):
    endpoint = _endpoint(request, pk)
    delivery = services.send_test_event(endpoint=endpoint)
    messages.success(request, "Test event queued.")
    return redirect("webhooks:delivery", pk=endpoint.pk, delivery_id=delivery.pk)


@admins
def endpoint_delete(request, pk):
    endpoint = _endpoint(request, pk)
    if request.method == "POST":
        services.delete_endpoint(endpoint=endpoint, actor=request.user)
        messages.success(request, f"Deleted the endpoint {endpoint.url}.")
        return redirect("webhooks:list")
    return render(request, "webhooks/endpoint_delete.html", {"endpoint": endpoint})


def _delivery(request, endpoint, delivery_id) -> Delivery:
    return get_object_or_404(Delivery.objects.for_org(request.organization).filter(endpoint=endpoint),
                             pk=delivery_id)


@admins
@require_GET
def delivery_detail(request, pk, delivery_id):
    endpoint = _endpoint(request, pk)
    delivery = _delivery(request, endpoint, delivery_id)
    attempts = list(delivery.attempts.order_by("-attempted_at", "-id"))
    body = json.dumps(delivery.payload, indent=2, ensure_ascii=False)
    return render(request, "webhooks/delivery_detail.html",
                  {"endpoint": endpoint, "delivery": delivery, "attempts": attempts, "body": body})


@admins
@require_POST
def delivery_replay(request, pk, delivery_id):
    endpoint = _endpoint(request, pk)
    copy = services.replay(delivery=_delivery(request, endpoint, delivery_id))
    messages.success(request, "Replay queued as a new delivery.")
    return redirect("webhooks:delivery", pk=endpoint.pk, delivery_id=copy.pk)
