import json

import redis
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import defaults
from django.views.decorators.http import require_GET, require_POST
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.response import Response

from . import audit, services, tenancy
from .api import OrgScopedViewSet, StrictModelSerializer
from .celery import app as celery_app
from .filters import AuditFilter
from .models import ApiKey, AuditAction, AuditEntry, Role
from .pagination import CreatedCursorPagination
from .paging import keyset_page
from .permissions import HasOrganization, IsOrgAdmin


def org_member_required(view):
    """Browser views: signed in, with an active organization (else a page that says what to do)."""

    @login_required
    def wrapper(request, *args, **kwargs):
        if request.organization is None:
            return render(request, "no_organization.html", status=403)
        return view(request, *args, **kwargs)

    wrapper.__name__ = view.__name__
    return wrapper


def role_required(*roles):
    def decorator(view):
        @org_member_required
        def wrapper(request, *args, **kwargs):
            if request.membership.role not in roles:
                raise Http404()
            return view(request, *args, **kwargs)

        wrapper.__name__ = view.__name__
        return wrapper

    return decorator


@require_GET
def healthz(request):
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise: this is what monitors read
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        # A direct client with short timeouts: Celery's connection would retry for seconds before failing.
        client = redis.Redis.from_url(celery_app.conf.broker_url, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}"
    if checks["redis"] == "ok":
        try:
            replies = celery_app.control.ping(timeout=1.0)
            checks["celery"] = f"ok ({len(replies)} workers)" if replies else "no workers"
        except Exception as exc:
            checks["celery"] = f"error: {exc.__class__.__name__}"
    else:
        checks["celery"] = "unknown: broker unreachable"
    healthy = all(value.startswith("ok") for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "degraded", **checks}, status=200 if healthy else 503)


@extend_schema(responses=inline_serializer("Ping", {"ok": serializers.BooleanField(),
                                                  "organization": serializers.CharField()}))
@api_view(["GET"])
@permission_classes([HasOrganization])
def ping(request):
    """Check a key: answers which organization it acts for. Also the trivial endpoint the capture
    benchmark measures against, so keep it free of work beyond authentication."""
    return Response({"ok": True, "organization": request.organization.slug})


# URL names only: leadcrm knows nothing of the apps that serve these pages.
HOME_OF_ROLE = {Role.REP: "routing:queue", Role.MARKETER: "reports:marketing", Role.MANAGER: "reports:sales",
                Role.ADMIN: "reports:dashboard"}


@login_required
def home(request):
    """Each role's home page: reps their queue, marketers and managers their reports, admins the overview."""
    role = request.membership.role if getattr(request, "membership", None) else None
    return redirect(HOME_OF_ROLE.get(role, "leads:list"))


@login_required
@require_POST
def switch_org(request):
    organization = tenancy.switch_organization(request, request.POST.get("organization", ""))
    messages.success(request, f"Now working in {organization.name}.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = reverse("home")  # never an open redirect to another site
    return redirect(target)


@role_required(Role.ADMIN, Role.MANAGER, Role.MARKETER)
def api_keys(request):
    new_key = None
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        if not name or len(name) > 50:
            messages.error(request, "Give the key a name of at most 50 characters.")
        else:
            _, new_key = services.create_api_key(organization=request.organization, name=name,
                                                 created_by=request.user)
    keys = ApiKey.objects.for_org(request.organization).select_related("created_by").order_by("-created")
    return render(request, "api_keys.html", {"keys": keys, "new_key": new_key})


@role_required(Role.ADMIN, Role.MANAGER, Role.MARKETER)
@require_POST
def revoke_api_key(request, prefix):
    api_key = get_object_or_404(ApiKey.objects.for_org(request.organization), prefix=prefix)
    services.revoke_api_key(api_key=api_key, actor=request.user)
    messages.success(request, f"Key “{api_key.name}” revoked.")
    return redirect("api-keys")


class ApiKeySerializer(StrictModelSerializer):
    key = serializers.SerializerMethodField(help_text="The plain key: present only in the answer that creates it.")

    class Meta:
        model = ApiKey
        fields = ["prefix", "name", "created", "last_used_at", "revoked", "expiry_date", "key"]
        read_only_fields = ["prefix", "created", "last_used_at", "revoked", "key"]
        extra_kwargs = {"name": {"required": True}}  # the model's default of None would let it be left out

    def get_key(self, obj) -> str | None:
        return self.context.get("plain_keys", {}).get(obj.prefix)


class ApiKeyPagination(CreatedCursorPagination):
    ordering = "-created"


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, OrgScopedViewSet):
    """API keys of the organization; DELETE revokes."""

    serializer_class = ApiKeySerializer
    pagination_class = ApiKeyPagination
    lookup_field = "prefix"
    ordering_fields = ["created"]
    search_fields = ["name"]

    def get_queryset(self):
        return ApiKey.objects.for_org(self.organization)

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, plain = services.create_api_key(
            organization=request.organization, name=serializer.validated_data["name"],
            created_by=request.user if request.user.is_authenticated else None, actor=audit.actor_of(request),
        )
        data = ApiKeySerializer(api_key, context={"plain_keys": {api_key.prefix: plain}}).data
        return Response(data, status=status.HTTP_201_CREATED)

    def destroy(self, request, prefix=None):
        services.revoke_api_key(api_key=self.get_object(), actor=audit.actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def revoke(self, request, prefix=None):
        return self.destroy(request, prefix)


# ----------------------------------------------------------------------------------------------- audit log


def audit_entries(organization):
    return AuditEntry.objects.for_org(organization).select_related("actor")


class AuditEntrySerializer(StrictModelSerializer):
    actor = serializers.SerializerMethodField(help_text="User id, or null for an API key or the system")

    class Meta:
        model = AuditEntry
        fields = ["id", "time", "actor", "actor_label", "action", "object_type", "object_id", "object_label",
                  "changes"]
        read_only_fields = fields

    def get_actor(self, entry) -> int | None:
        return entry.actor_id


class AuditPagination(CreatedCursorPagination):
    ordering = "-time"


class AuditLogViewSet(mixins.ListModelMixin, OrgScopedViewSet):
    """Who changed scoring, routing, sequences, templates, API keys and memberships, with before/after
    (`changes`: `{field: [before, after]}`; a secret as `"changed"`). Org admins and API keys."""

    serializer_class = AuditEntrySerializer
    pagination_class = AuditPagination
    permission_classes = [IsOrgAdmin]
    filterset_class = AuditFilter
    ordering_fields: list[str] = []

    def get_queryset(self):
        if self.organization is None:
            return AuditEntry.objects.none()
        return audit_entries(self.organization)


def _readable(value) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, indent=1, ensure_ascii=False)
    return str(value)


def change_rows(changes: dict) -> list[tuple[str, str, str]]:
    """(field, before, after) as text; the template escapes it."""
    rows = []
    for name, pair in (changes or {}).items():
        if not isinstance(pair, list):  # a secret: only that it changed
            rows.append((name.replace("_", " "), "(hidden)", "changed"))
        else:
            rows.append((name.replace("_", " "), _readable(pair[0]), _readable(pair[1] if len(pair) > 1 else None)))
    return rows


@role_required(Role.ADMIN)
def audit_log(request):
    filters = AuditFilter(request.GET, queryset=audit_entries(request.organization))
    queryset = filters.qs if filters.is_valid() else audit_entries(request.organization).none()
    rows, next_url, previous_url = keyset_page(request, queryset, "-time")
    for entry in rows:
        entry.rows = change_rows(entry.changes)
        entry.type_name = audit.type_name(entry.object_type)
    return render(request, "audit_log.html", {
        "entries": rows, "next_url": next_url, "previous_url": previous_url, "filters": filters,
        "types": audit.registered_types(), "actions": AuditAction.choices,
        "query": {key: request.GET.get(key, "") for key in ("object_type", "actor", "start", "end", "action")},
    })


def not_found(request, exception):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)
