from django.contrib import admin

from leadcrm.admin import OrgScopedAdmin

from .models import Activity, Form, ImportJob, Lead


@admin.register(Lead)
class LeadAdmin(OrgScopedAdmin):
    list_display = ["email", "first_name", "last_name", "company", "lifecycle_stage", "score", "grade", "owner",
                    "created_at"]
    list_filter = ["lifecycle_stage", "grade", "source_type"]
    search_fields = ["email", "first_name", "last_name", "company"]
    list_select_related = ["owner"]
    show_full_result_count = False
    readonly_fields = ["fit_gained", "fit_lost", "behavior_gained", "behavior_lost", "fit_score", "behavior_score",
                       "score", "grade", "temperature", "created_at", "updated_at"]


@admin.register(Activity)
class ActivityAdmin(OrgScopedAdmin):
    list_display = ["type", "lead", "occurred_at"]
    list_filter = ["type"]
    list_select_related = ["lead"]
    raw_id_fields = ["lead"]
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False  # the timeline is append-only


@admin.register(Form)
class FormAdmin(OrgScopedAdmin):
    list_display = ["name", "slug", "is_active", "created_at"]


@admin.register(ImportJob)
class ImportJobAdmin(OrgScopedAdmin):
    list_display = ["filename", "status", "total_rows", "created_count", "merged_count", "failed_count",
                    "created_at"]
    exclude = ["content"]

    def has_add_permission(self, request):
        return False
