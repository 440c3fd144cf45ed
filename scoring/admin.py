"""Django admin of scoring: rules (with a preview of what a change would do) and each org's settings.

Tenant-scoped through OrgScopedAdmin. Forms are checked with the same services as the API and the browser
pages, and saves go through the services too, so every change re-scores the org.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from leadcrm import policy
from leadcrm.admin import OrgScopedAdmin, admin_organization
from leads.conditions import ALL_OPS, ConditionError
from leads.models import ActivityType

from . import api, services
from .forms import describe_condition, fit_fields
from .models import RecalculationStatus, ScoringRule, ScoringSettings
from .views import preview_context

CONDITION_HELP = (
    'Fit: {"field": "industry", "op": "in", "value": ["Software", "Finance"]}, or a custom field as '
    '"custom_fields.plan". Behaviour: {"activity_type": "page_view", "property": "url", "op": "contains", '
    '"value": "/pricing"} (property, op and value optional). '
    f"Fields: {', '.join(fit_fields())}. Activity types: {', '.join(ActivityType.values)}. "
    f"Operators: {', '.join(ALL_OPS)}."
)


def _put_errors(form, errors: dict):
    for key, problems in errors.items():
        form.add_error(key if key in form.fields else None, problems)


class ScoringRuleAdminForm(forms.ModelForm):
    class Meta:
        model = ScoringRule
        fields = ["organization", "name", "kind", "points", "condition", "max_occurrences", "window_days",
                  "active"]
        help_texts = {"condition": CONDITION_HELP}

    def clean(self):
        data = super().clean()
        if self.has_error("kind") or self.has_error("points") or self.has_error("condition"):
            return data  # clean_rule needs these three as their types
        try:
            data["condition"] = services.clean_rule(
                kind=data.get("kind"), condition=data.get("condition"), points=data.get("points"),
                max_occurrences=data.get("max_occurrences"), window_days=data.get("window_days"),
                organization_id=getattr(data.get("organization"), "pk", None))
        except ConditionError as exc:
            _put_errors(self, exc.errors)
        return data


@admin.register(ScoringRule)
class ScoringRuleAdmin(OrgScopedAdmin):
    policy_action = policy.Action.SCORING
    form = ScoringRuleAdminForm
    change_form_template = "admin/scoring/scoringrule/change_form.html"
    list_display = ["name", "kind", "points", "condition_text", "active", "organization"]
    list_filter = ["kind", "active"]
    search_fields = ["name"]
    list_select_related = ["organization"]
    fields = ["organization", "name", "kind", "points", "condition", "max_occurrences", "window_days", "active"]

    @admin.display(description="condition")
    def condition_text(self, rule):
        return describe_condition(rule.kind, rule.condition)

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if request.user.is_superuser else [name for name in shown if name != "organization"]

    def get_readonly_fields(self, request, obj=None):
        # A rule stays in its org; moving it would leave both orgs' scores stale.
        return ["organization"] if obj is not None and request.user.is_superuser else []

    def get_fields(self, request, obj=None):
        return [name for name in super().get_fields(request, obj)
                if name != "organization" or request.user.is_superuser]

    def _organization_id(self, request, form, obj=None):
        if obj is not None and obj.organization_id:
            return obj.organization_id
        if request.user.is_superuser:
            organization = form.cleaned_data.get("organization")
            return organization.pk if organization else None
        organization = admin_organization(request)
        return organization.pk if organization else None

    def save_model(self, request, obj, form, change):
        organization_id = self._organization_id(request, form, obj if change else None)
        obj.organization_id = organization_id
        # the form has set the fields on obj
        services.save_rule(organization_id=organization_id, rule=obj, actor=request.user)

    def delete_model(self, request, obj):
        services.delete_rule(rule=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for rule in queryset:
            services.delete_rule(rule=rule, actor=request.user)

    # --- preview

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view(self.preview_view)
        return [
            path("add/preview/", view, name=f"{prefix}_preview_add"),
            path("<path:object_id>/preview/", view, name=f"{prefix}_preview"),
            *super().get_urls(),
        ]

    def preview_view(self, request, object_id=None):
        """The change form's values as they are on screen, checked by the admin form, and what saving them
        would do. Saves nothing."""
        return require_POST(self._preview)(request, object_id)

    def _preview(self, request, object_id):
        obj = None
        if object_id is not None:
            obj = self.get_object(request, unquote(object_id))
            if obj is None:
                raise Http404("No such rule.")
            if not self.has_change_permission(request, obj):
                raise PermissionDenied
        elif not self.has_add_permission(request):
            raise PermissionDenied
        form_class = self.get_form(request, obj, change=obj is not None)
        form = form_class(request.POST, instance=obj)
        context = {}
        if form.is_valid():
            organization_id = self._organization_id(request, form, obj)
            if organization_id is None:
                form.add_error(None, "Choose the organization the rule is for.")
        if form.is_valid():
            result = api.draft_preview(organization_id, form.cleaned_data, replaces=obj.pk if obj else None)
            context.update(preview_context(result))
        else:
            context["error_summary"] = [
                (form.fields[name].label if name in form.fields else "", f"id_{name}", problems)
                for name, problems in form.errors.items()
            ]
        return render(request, "scoring/_preview.html", context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        prefix = f"admin:{self.opts.app_label}_{self.opts.model_name}"
        context["preview_url"] = (reverse(f"{prefix}_preview", args=[obj.pk]) if obj is not None
                                  else reverse(f"{prefix}_preview_add"))
        return super().render_change_form(request, context, add, change, form_url, obj)


class ScoringSettingsAdminForm(forms.ModelForm):
    class Meta:
        model = ScoringSettings
        fields = ["mql_score", "mql_min_grade", "grade_bands", "temperature_bands", "decay_half_life_days"]
        labels = {"mql_score": "MQL score", "mql_min_grade": "MQL minimum grade",
                  "decay_half_life_days": "Decay half-life (days)"}

    def clean(self):
        data = super().clean()
        values = {name: data[name] for name in SETTINGS_FIELDS if name in data}
        try:
            data.update(services.clean_settings(values))
        except ConditionError as exc:
            _put_errors(self, exc.errors)
        return data


SETTINGS_FIELDS = ("mql_score", "mql_min_grade", "grade_bands", "temperature_bands", "decay_half_life_days")
RECALCULATION_FIELDS = ("progress", "recalc_status", "recalc_done", "recalc_total", "recalc_error", "recalc_started_at",
                        "recalc_finished_at", "config_version", "scored_version", "updated_at")


@admin.register(ScoringSettings)
class ScoringSettingsAdmin(OrgScopedAdmin):
    policy_action = policy.Action.SCORING
    form = ScoringSettingsAdminForm
    list_display = ["__str__", "mql_score", "mql_min_grade", "decay_half_life_days", "recalc_status"]
    list_select_related = ["organization"]
    readonly_fields = RECALCULATION_FIELDS
    # The organization is the row's key: shown in the title, never edited.
    fieldsets = [
        (None, {"fields": SETTINGS_FIELDS}),
        ("Recalculation", {"fields": RECALCULATION_FIELDS}),
    ]

    @admin.display(description="progress")
    def progress(self, settings):
        if settings.recalc_status == RecalculationStatus.RUNNING:
            return f"{settings.recalc_percent}% ({settings.recalc_done} of {settings.recalc_total} leads)"
        return settings.get_recalc_status_display()

    def has_add_permission(self, request):
        return False  # every org has its settings from the start (services.setup_organization)

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        organization = admin_organization(request)
        if not request.user.is_superuser and organization is not None:
            # An org admin has exactly one settings row: go straight to it.
            settings = services.get_settings(organization.pk)
            return redirect("admin:scoring_scoringsettings_change", settings.pk)
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change):
        changed = {name: form.cleaned_data[name] for name in SETTINGS_FIELDS if name in form.changed_data}
        if changed:
            services.update_settings(organization_id=obj.organization_id, actor=request.user, **changed)
        else:
            messages.info(request, "Nothing changed.")
