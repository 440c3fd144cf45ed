"""Django admin of nurturing, tenant-scoped through OrgScopedAdmin. Sections: templates first, then sequences.

Templates are written in the app's editor, where the sandbox checks them and each change saves a version; the
admin shows them and their versions, and deletes them through the service (refused while a sequence sends one).
"""

from django.contrib import admin, messages

from leadcrm import policy
from leadcrm.admin import AuditedAdminMixin, OrgScopedAdmin

from . import services
from .models import EmailTemplate, TemplateFolder, TemplateVersion

# ----------------------------------------------------------------------------------------------- templates


class TemplateVersionInline(admin.TabularInline):
    model = TemplateVersion
    fields = ["number", "subject", "created_by", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(EmailTemplate)
class EmailTemplateAdmin(OrgScopedAdmin):
    policy_action = policy.Action.NURTURE
    list_display = ["name", "folder", "organization", "updated_at"]
    search_fields = ["name"]
    readonly_fields = ["name", "folder", "created_at", "updated_at"]
    inlines = [TemplateVersionInline]

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if request.user.is_superuser else [name for name in shown if name != "organization"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("folder", "organization")

    def has_add_permission(self, request):
        return False  # written in the editor, where the sandbox checks them

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        try:
            services.delete_template(template=obj, actor=request.user)
        except services.TemplateInUse as exc:
            messages.error(request, str(exc))

    def delete_queryset(self, request, queryset):
        for template in queryset:
            self.delete_model(request, template)


@admin.register(TemplateFolder)
class TemplateFolderAdmin(AuditedAdminMixin, OrgScopedAdmin):
    policy_action = policy.Action.NURTURE
    list_display = ["name", "organization"]
    search_fields = ["name"]

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if request.user.is_superuser else [name for name in shown if name != "organization"]
