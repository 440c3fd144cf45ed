"""Django admin, scoped: an org admin sees and edits only the rows of their active organization."""

from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from . import audit, policy
from .models import ApiKey, AuditAction, AuditEntry, Membership, Organization

admin.site.site_header = "LeadCRM administration"
admin.site.unregister(APIKey)  # the library's own concrete model is unused; ours carries the organization


def admin_organization(request):
    """The org a staff member administers here: their active org, if their role may use the admin."""
    membership = getattr(request, "membership", None)
    if membership is not None and policy.can(request, policy.Action.ADMIN_SITE):
        return membership.organization
    return None


class OrgScopedAdmin(admin.ModelAdmin):
    """An org admin sees only their active org, in lists, choices and saves. A superuser any org, one at a time:
    row-level security holds the app role to the org picked in the switcher. Each page names the policy action it
    manages (`policy_action`): a role the policy refuses it sees no such page."""

    org_field = "organization"
    policy_action = policy.Action.ADMIN_SITE

    def _is_org_admin(self, request):
        return (request.user.is_active and request.user.is_staff and admin_organization(request) is not None
                and policy.can(request, self.policy_action))

    def has_module_permission(self, request):
        return request.user.is_superuser or self._is_org_admin(request)

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    has_change_permission = has_add_permission = has_delete_permission = has_view_permission

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        organization = admin_organization(request)
        if organization is None:
            return queryset.none()
        return queryset.filter(**{self.org_field: organization})

    def get_exclude(self, request, obj=None):
        excluded = list(super().get_exclude(request, obj) or [])
        if not request.user.is_superuser:
            excluded.append(self.org_field)
        return excluded

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        organization = admin_organization(request)
        if not request.user.is_superuser and organization is not None:
            related = db_field.related_model
            if any(f.name == "organization" for f in related._meta.get_fields()):
                kwargs["queryset"] = related._default_manager.filter(organization=organization)
            elif related._meta.label == "auth.User" or related._meta.model_name == "user":
                kwargs["queryset"] = related._default_manager.filter(memberships__organization=organization)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser:
            setattr(obj, self.org_field, admin_organization(request))
        super().save_model(request, obj, form, change)


class AuditedAdminMixin:
    """For admin pages that save or delete without a service: each save (with its inlines) and each delete
    writes an audit entry, in the admin's transaction. Pages whose saves go through a service leave the
    recording to it."""

    def audit_action(self, before, after) -> str:
        return AuditAction.UPDATED if before is not None else AuditAction.CREATED

    def _audit_organization(self, request, obj):
        return getattr(obj, "organization_id", None) or admin_organization(request)

    def save_model(self, request, obj, form, change):
        # The form has already put the new values on obj: read the old ones from the database.
        request._audit_before = audit.stored(obj) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)  # inlines and many-to-many are part of the change
        obj = form.instance
        before, after = getattr(request, "_audit_before", None), audit.snapshot(obj)
        audit.record(organization=self._audit_organization(request, obj), actor=request.user,
                     action=self.audit_action(before, after), obj=obj, before=before, after=after)

    def delete_model(self, request, obj):
        with audit.Deletion(obj, organization=self._audit_organization(request, obj), actor=request.user):
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(Organization)
class OrganizationAdmin(OrgScopedAdmin):
    org_field = "pk"
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]

    def get_queryset(self, request):
        queryset = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return queryset
        organization = admin_organization(request)
        return queryset.filter(pk=organization.pk) if organization else queryset.none()

    def get_exclude(self, request, obj=None):
        return admin.ModelAdmin.get_exclude(self, request, obj)

    def save_model(self, request, obj, form, change):
        admin.ModelAdmin.save_model(self, request, obj, form, change)

    def has_add_permission(self, request):
        return False  # a new org is outside every org's scope: `manage.py create_org` makes it, as the owner

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Membership)
class MembershipAdmin(AuditedAdminMixin, OrgScopedAdmin):
    policy_action = policy.Action.MEMBERS
    list_display = ["user", "role", "organization", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email"]
    autocomplete_fields = []


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdminMixin, OrgScopedAdmin, APIKeyModelAdmin):
    policy_action = policy.Action.API_KEYS
    list_display = ["name", "prefix", "organization", "created", "last_used_at", "revoked"]
    search_fields = ["name", "prefix"]

    def audit_action(self, before, after) -> str:
        if before is not None and after.get("revoked") and not before.get("revoked"):
            return AuditAction.REVOKED
        return super().audit_action(before, after)


@admin.register(AuditEntry)
class AuditEntryAdmin(OrgScopedAdmin):
    """Read-only: the log is a record of what happened."""

    policy_action = policy.Action.AUDIT_LOG
    list_display = ["time", "actor_label", "action", "object_type", "object_label"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "object_label", "object_id"]
    date_hierarchy = "time"
    readonly_fields = ["time", "actor", "actor_label", "action", "object_type", "object_id", "object_label",
                       "changes"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
