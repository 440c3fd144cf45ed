"""Django admin of distribution: rep profiles, teams with their members, assignment rules, and the history.

Tenant-scoped through OrgScopedAdmin; forms are checked by the same services as the API.
"""

from django import forms
from django.contrib import admin

from leadcrm import policy
from leadcrm.admin import AuditedAdminMixin, OrgScopedAdmin, admin_organization

from . import services
from .models import Assignment, AssignmentRule, RepProfile, Team, TeamMember

RULE_FIELDS = ["name", "order", "condition", "segment", "strategy", "rep", "team", "respect_working_hours",
               "match_profile", "sla_minutes", "max_reassignments", "is_fallback", "active"]


def _put_errors(form, errors: dict):
    for key, problems in errors.items():
        field = key.split(".")[-1] if key.startswith("action.") else key.split(".")[0]
        form.add_error(field if field in form.fields else None, problems)


class OrgForm(forms.ModelForm):
    """A model form that knows the organization it edits for (set by the admin's get_form)."""

    organization_id = None

    def org_id(self):
        if self.instance.organization_id:
            return self.instance.organization_id
        organization = self.cleaned_data.get("organization")
        return organization.pk if organization else self.organization_id


class OrgFormAdmin(OrgScopedAdmin):
    policy_action = policy.Action.ROUTING
    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        organization = admin_organization(request)
        return type(form.__name__, (form,), {"organization_id": organization.pk if organization else None})

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if request.user.is_superuser else [name for name in shown if name != "organization"]


class RepProfileForm(OrgForm):
    class Meta:
        model = RepProfile
        fields = ["territories", "industries", "languages", "seniority", "capacity", "weight", "available",
                  "away_until", "working_hours"]

    def clean(self):
        data = super().clean()
        try:
            data.update(services.clean_rep(self.instance, {k: v for k, v in data.items() if k in self.changed_data}))
        except services.ConfigError as exc:
            _put_errors(self, exc.errors)
        return data


@admin.register(RepProfile)
class RepProfileAdmin(AuditedAdminMixin, OrgFormAdmin):
    """Profiles follow memberships (every rep and manager has one), so they are edited, not added."""

    form = RepProfileForm
    list_display = ["user", "capacity", "weight", "available", "away_until", "organization"]
    list_filter = ["available", "seniority"]
    search_fields = ["user__email"]
    list_select_related = ["user", "organization"]

    def has_add_permission(self, request):
        return False

    def get_queryset(self, request):
        organization = admin_organization(request)
        if organization is not None:
            services.ensure_profiles(organization.pk)
        return super().get_queryset(request)


class TeamMemberInline(admin.TabularInline):
    model = TeamMember
    fields = ["rep"]
    extra = 1

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        organization = admin_organization(request)
        if db_field.name == "rep" and organization is not None and not request.user.is_superuser:
            kwargs["queryset"] = RepProfile.objects.for_org(organization).select_related("user")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class TeamForm(OrgForm):
    class Meta:
        model = Team
        fields = ["organization", "name", "manager"]

    def clean(self):
        data = super().clean()
        try:
            services.clean_team(self.org_id(), {"name": data.get("name", ""), "manager": data.get("manager")},
                                self.instance if self.instance.pk else None)
        except services.ConfigError as exc:
            _put_errors(self, exc.errors)
        return data


@admin.register(Team)
class TeamAdmin(AuditedAdminMixin, OrgFormAdmin):
    form = TeamForm
    inlines = [TeamMemberInline]
    list_display = ["name", "manager", "organization"]
    search_fields = ["name"]
    list_select_related = ["manager", "organization"]

    def save_formset(self, request, form, formset, change):
        members = formset.save(commit=False)
        for member in members:
            if member.pk is None:  # a new member starts at the back of the round-robin line
                member.organization_id = form.instance.organization_id
                member.last_turn = form.instance.turns_taken
            member.save()
        for member in formset.deleted_objects:
            member.delete()

    def delete_model(self, request, obj):
        services.delete_team(team=obj, actor=request.user)


class AssignmentRuleForm(OrgForm):
    class Meta:
        model = AssignmentRule
        fields = ["organization", *RULE_FIELDS]
        help_texts = {"condition": 'A segment definition, e.g. {"all": [{"field": "country", "op": "eq", '
                                   '"value": "US"}]}; empty ({}) for every lead.'}

    def clean(self):
        data = super().clean()
        try:
            data.update(services.clean_rule(self.org_id(), {k: data.get(k) for k in RULE_FIELDS},
                                            self.instance if self.instance.pk else None))
        except services.ConfigError as exc:
            _put_errors(self, exc.errors)
        return data


@admin.register(AssignmentRule)
class AssignmentRuleAdmin(AuditedAdminMixin, OrgFormAdmin):
    form = AssignmentRuleForm
    list_display = ["name", "order", "strategy", "team", "rep", "sla_minutes", "is_fallback", "active",
                    "organization"]
    list_filter = ["strategy", "active", "is_fallback"]
    search_fields = ["name"]
    list_select_related = ["team", "rep__user", "organization"]


@admin.register(Assignment)
class AssignmentAdmin(OrgScopedAdmin):
    """The assignment history, read-only: it is a record of what happened."""

    list_display = ["created_at", "lead", "rep", "reason", "rule_name", "strategy", "team"]
    list_filter = ["reason", "strategy"]
    list_select_related = ["lead", "rep", "team"]
    search_fields = ["lead__email", "rep__email"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
