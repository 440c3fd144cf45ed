import json
from dataclasses import dataclass
from types import SimpleNamespace

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import defaults
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.response import Response

from . import audit, brokers, policy, services, tenancy, urlids
from .api import OrgScopedViewSet, StrictModelSerializer
from .celery import app as celery_app
from .errors import Invalid, add_to_form
from .filters import AuditFilter
from .forms import ApiKeyForm, OrganizationSettingsForm, RoleForm
from .mailheaders import sender, sending_address
from .models import ApiKey, AuditAction, AuditEntry, Membership, Role
from .pagination import CreatedCursorPagination
from .paging import keyset_page
from .policy import Action, Allowed, allowed


@require_GET
def healthz(request):
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise: this is what monitors read
        checks["database"] = f"error: {exc.__class__.__name__}"
    broker = brokers.label(celery_app.conf.broker_url)  # "redis" or "rabbitmq"
    try:
        brokers.ping(celery_app.conf.broker_url)
        checks[broker] = "ok"
    except Exception as exc:
        checks[broker] = f"error: {exc.__class__.__name__}"
    if checks[broker] == "ok":
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
@permission_classes([Allowed])
def ping(request):
    """Check a key: answers which organization it acts for. Also the trivial endpoint the capture
    benchmark measures against, so keep it free of work beyond authentication."""
    return Response({"ok": True, "organization": request.organization.slug})


ping.cls.policy_action = Action.WORK_LEADS  # any member or key of the org


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


def keys_of(principal, organization):
    """The keys a principal sees and may revoke: every key of the org for those who manage members, else the
    ones they created."""
    keys = ApiKey.objects.for_org(organization).select_related("created_by")
    if principal.can(Action.MEMBERS):
        return keys
    return keys.filter(created_by=principal.user) if principal.user is not None else keys.none()


@allowed(Action.API_KEYS)
def api_keys(request):
    principal = policy.principal_of(request)
    new_key = None
    form = ApiKeyForm(request.POST or None, grantor_role=principal.role)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        api_key, new_key = services.create_api_key(organization=request.organization, name=data["name"],
                                                   role=data["role"], created_by=request.user,
                                                   grantor_role=principal.role)
        messages.success(request, f"Key “{api_key.name}” created with the role {api_key.get_role_display()}.")
        form = ApiKeyForm(grantor_role=principal.role)
    keys = keys_of(principal, request.organization).order_by("-created")
    return render(request, "api_keys.html", {"keys": keys, "new_key": new_key, "form": form},
                  status=400 if form.errors else 200)


@allowed(Action.API_KEYS)
@require_POST
def revoke_api_key(request, prefix):
    api_key = get_object_or_404(keys_of(policy.principal_of(request), request.organization), prefix=prefix)
    services.revoke_api_key(api_key=api_key, actor=request.user)
    messages.success(request, f"Key “{api_key.name}” revoked.")
    return redirect("api-keys")


class ApiKeySerializer(StrictModelSerializer):
    key = serializers.SerializerMethodField(help_text="The plain key: present only in the answer that creates it.")

    class Meta:
        model = ApiKey
        fields = ["prefix", "name", "role", "created_by", "created", "last_used_at", "revoked", "expiry_date", "key"]
        read_only_fields = ["prefix", "created_by", "created", "last_used_at", "revoked", "key"]
        extra_kwargs = {"name": {"required": True},  # the model's default of None would let it be left out
                        "role": {"required": False, "help_text": "What the key may do (leadcrm/policy.py); at "
                                 "most its creator's role, which is the default."}}

    created_by = serializers.SerializerMethodField(help_text="Email of the member who created the key")

    def get_created_by(self, obj) -> str | None:
        return obj.created_by.email if obj.created_by else None

    def validate(self, attrs):
        cap = self.context["principal"].role
        problem = policy.grant_problem(attrs.setdefault("role", cap), cap)
        if problem:
            raise serializers.ValidationError({"role": [problem]})
        return attrs

    def get_key(self, obj) -> str | None:
        return self.context.get("plain_keys", {}).get(obj.prefix)


class ApiKeyPagination(CreatedCursorPagination):
    ordering = "-created"


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, OrgScopedViewSet):
    """API keys of the organization; DELETE revokes."""

    policy_action = Action.API_KEYS
    serializer_class = ApiKeySerializer
    pagination_class = ApiKeyPagination
    lookup_field = "prefix"
    lookup_value_regex = urlids.KEY_PREFIX
    ordering_fields = ["created"]
    search_fields = ["name"]

    def get_queryset(self):
        if self.organization is None:
            return ApiKey.objects.none()
        return keys_of(policy.principal_of(self.request), self.organization)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "principal": policy.principal_of(self.request)}

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        principal = policy.principal_of(request)
        api_key, plain = services.create_api_key(
            organization=request.organization, name=serializer.validated_data["name"],
            role=serializer.validated_data["role"], created_by=principal.user, actor=audit.actor_of(request),
            grantor_role=principal.role,
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

    policy_action = Action.AUDIT_LOG
    serializer_class = AuditEntrySerializer
    pagination_class = AuditPagination
    filterset_class = AuditFilter
    ordering_fields: list[str] = []

    def get_queryset(self):
        if self.organization is None:
            return AuditEntry.objects.none()
        return audit_entries(self.organization)


# A value longer than this, or any JSON object or list, waits behind a disclosure showing its first characters.
SHORT_VALUE = 80


@dataclass(frozen=True)
class ChangeValue:
    text: str
    preview: str = ""  # set when the text is long: the summary of its <details>


def _readable(value) -> ChangeValue:
    if value is None or value == "" or value == [] or value == {}:
        return ChangeValue("—")
    if isinstance(value, bool):
        return ChangeValue("yes" if value else "no")
    if isinstance(value, dict | list):
        compact = json.dumps(value, ensure_ascii=False)
        if len(compact) <= SHORT_VALUE // 2:
            return ChangeValue(compact)
        return ChangeValue(json.dumps(value, indent=1, ensure_ascii=False), compact[:SHORT_VALUE // 2] + "…")
    text = str(value)
    return ChangeValue(text, text[:SHORT_VALUE // 2] + "…" if len(text) > SHORT_VALUE else "")


def change_rows(changes: dict) -> list[tuple[str, ChangeValue, ChangeValue]]:
    """(field, before, after) as text, long ones with a short preview; the template escapes them."""
    rows = []
    for name, pair in (changes or {}).items():
        if not isinstance(pair, list):  # a secret: only that it changed
            rows.append((name.replace("_", " "), ChangeValue("(hidden)"), ChangeValue("changed")))
        else:
            rows.append((name.replace("_", " "), _readable(pair[0]), _readable(pair[1] if len(pair) > 1 else None)))
    return rows


@allowed(Action.AUDIT_LOG)
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
    }, status=200 if filters.is_valid() else 400)


def favicon(request):
    """Pages link the SVG icon; browsers and tools that ask for /favicon.ico anyway are sent to it (not a 404)."""
    return redirect(static("favicon.svg"))


def not_found(request, exception):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)


@allowed(Action.MEMBERS)
def roles(request):
    """The access policy, read-only, and each member's role, which an admin may change (audited)."""
    memberships = (Membership.objects.for_org(request.organization).select_related("user")
                   .order_by("user__email"))
    errors = {}
    if request.method == "POST":
        raw = request.POST.get("membership", "")
        membership = memberships.filter(pk=raw).first() if raw.isdigit() else None
        if membership is None:
            raise Http404()
        form = RoleForm(request.POST)
        if form.is_valid():
            try:
                services.change_role(membership=membership, role=form.cleaned_data["role"], actor=request.user)
            except ValueError as exc:
                errors[membership.pk] = str(exc)
            else:
                messages.success(request, f"{membership.user.email} is now {Role(form.cleaned_data['role']).label}.")
                return redirect("roles")
        else:
            errors[membership.pk] = " ".join(form.errors.get("role", ["Choose a role."]))
    return render(request, "roles.html", {
        "memberships": memberships, "roles": Role.choices, "table": policy.table(), "errors": errors,
    }, status=400 if errors else 200)


@allowed(Action.ORG_SETTINGS)
@require_http_methods(["GET", "POST"])
def organization_settings(request):
    """Admins: the organization's name and how email to its leads is sent (From name, or the lead's owner)."""
    organization = request.organization
    initial = {"name": organization.name, "email_sender_name": organization.email_sender_name,
               "email_from_owner": organization.email_from_owner}
    form = OrganizationSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_organization(organization=organization, actor=request.user, **form.cleaned_data)
        except Invalid as exc:
            add_to_form(form, exc)
        else:
            messages.success(request, "Organization settings saved.")
            return redirect("org-settings")
    # The example shows the member as the owner, or a made-up one when the member has no name.
    you = bool(request.user.get_full_name().strip())
    owner = request.user if you else SimpleNamespace(get_full_name=lambda: "Jane Doe", email="jane.doe@example.com")
    as_owner = SimpleNamespace(name=organization.name, email_sender_name=organization.email_sender_name,
                               email_from_owner=True)
    return render(request, "org_settings.html", {
        "form": form, "sending_address": sending_address(), "org_from": sender(organization)[0],
        "owner_example": sender(as_owner, owner), "owner_is_you": you,
    }, status=400 if form.errors else 200)

