"""Django admin of webhooks, tenant-scoped; endpoints are managed on their own pages (the secret never shows here)."""

from django.contrib import admin

from leadcrm import policy
from leadcrm.admin import OrgScopedAdmin

from .models import Delivery, Endpoint


@admin.register(Endpoint)
class EndpointAdmin(OrgScopedAdmin):
    policy_action = policy.Action.WEBHOOKS
    list_display = ["url", "events", "active", "created_at"]
    fields = ["url", "description", "events", "active"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # the URL check and the secret belong to the Webhooks pages and the API


@admin.register(Delivery)
class DeliveryAdmin(OrgScopedAdmin):
    policy_action = policy.Action.WEBHOOKS
    list_display = ["message_id", "event_type", "status", "attempt_count", "next_attempt_at", "created_at"]
    list_filter = ["status", "event_type"]
    readonly_fields = ["endpoint", "message_id", "event_type", "lead_id", "payload", "status", "attempt_count",
                       "next_attempt_at", "last_status_code", "last_error", "replay_of"]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
