from django.urls import path

from . import views

app_name = "scoring"

urlpatterns = [
    path("", views.rule_list, name="rules"),
    path("rules/new/", views.rule_edit, name="rule-create"),
    path("rules/preview/", views.rule_preview, name="rule-preview-new"),
    path("rules/<uuid:pk>/edit/", views.rule_edit, name="rule-edit"),
    path("rules/<uuid:pk>/preview/", views.rule_preview, name="rule-preview"),
    path("rules/<uuid:pk>/toggle/", views.rule_toggle, name="rule-toggle"),
    path("rules/<uuid:pk>/delete/", views.rule_delete, name="rule-delete"),
    path("settings/", views.settings_edit, name="settings"),
    path("status/", views.recalculation_status, name="status"),
    path("leads/<uuid:pk>/panel/", views.lead_panel, name="lead-panel"),
    path("predictive/", views.predictive_page, name="predictive"),
    path("predictive/train/", views.predictive_train, name="predictive-train"),
    path("predictive/status/", views.predictive_status, name="predictive-status"),
    path("predictive/suggest/", views.predictive_suggest, name="predictive-suggest"),
    path("predictive/suggest/save/", views.predictive_apply, name="predictive-apply"),
    path("predictive/threshold/", views.predictive_threshold, name="predictive-threshold"),
]
