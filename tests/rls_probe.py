"""Test-only code that forgets its organization on purpose: the row-level security tests (tests/test_rls.py)
run it in a web request and in a Celery worker to show the database alone keeps tenants apart."""

import json

import redis
from celery import shared_task
from django.conf import settings
from django.http import JsonResponse
from django.urls import include, path
from rest_framework.decorators import api_view
from rest_framework.response import Response

from leadcrm.policy import Action
from leads.models import Lead


def visible_emails() -> list[str]:
    return sorted(Lead.objects.all().values_list("email", flat=True))  # deliberately unscoped


def all_leads(request):
    return JsonResponse({"emails": visible_emails()})


@api_view(["GET"])
def all_leads_api(request):
    return Response({"emails": visible_emails()})


all_leads_api.cls.policy_action = Action.WORK_LEADS  # any member or key of the org, like /api/v1/ping/


urlpatterns = [
    path("rls-probe/", all_leads),
    path("api/v1/rls-probe/", all_leads_api),
    path("", include("leadcrm.urls")),
]


@shared_task(name="tests.rls_probe.report_visible_leads")
def report_visible_leads(key, organization_id=None):
    """Write what an unscoped query sees to Redis under `key` (workers here keep no task results)."""
    redis.Redis.from_url(settings.REDIS_URL).set(key, json.dumps(visible_emails()), ex=300)
