from django.urls import path

from . import urlids, views  # noqa: F401 (urlids registers the converters used below)

urlpatterns = [
    path("", views.home, name="home"),
    path("org/switch/", views.switch_org, name="switch-org"),
    path("settings/api-keys/", views.api_keys, name="api-keys"),
    path("settings/api-keys/<keyprefix:prefix>/revoke/", views.revoke_api_key, name="api-key-revoke"),
    path("audit/", views.audit_log, name="audit-log"),
    path("settings/roles/", views.roles, name="roles"),
    path("settings/organization/", views.organization_settings, name="org-settings"),
]
