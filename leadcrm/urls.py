from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from agenda import api as agenda_api
from campaigns import api as campaigns_api
from leadcrm import login_throttle, urlids
from leadcrm import views as core_views
from leads import api as leads_api
from nurturing import api as nurturing_api
from nurturing import tracking_views
from routing import api as routing_api
from scoring import api as scoring_api
from webhooks import api as webhooks_api

router = urlids.Router()
router.register("leads", leads_api.LeadViewSet, basename="lead")
router.register("activities", leads_api.ActivityViewSet, basename="activity")
router.register("activity-types", leads_api.ActivityTypeViewSet, basename="activity-type")
router.register("forms", leads_api.FormViewSet, basename="form")
router.register("imports", leads_api.ImportViewSet, basename="import")
router.register("accounts", leads_api.AccountViewSet, basename="account")
router.register("deals", leads_api.DealViewSet, basename="deal")
router.register("pipelines", leads_api.PipelineViewSet, basename="pipeline")
router.register("segments", leads_api.SegmentViewSet, basename="segment")
router.register("api-keys", core_views.ApiKeyViewSet, basename="api-key")
router.register("audit-log", core_views.AuditLogViewSet, basename="audit-entry")
router.register("scoring-rules", scoring_api.ScoringRuleViewSet, basename="scoring-rule")
router.register("predictive/versions", scoring_api.PredictiveVersionViewSet, basename="predictive-version")
router.register("reps", routing_api.RepViewSet, basename="rep")
router.register("teams", routing_api.TeamViewSet, basename="team")
router.register("assignment-rules", routing_api.AssignmentRuleViewSet, basename="assignment-rule")
router.register("templates", nurturing_api.TemplateViewSet, basename="template")
router.register("campaigns", campaigns_api.CampaignViewSet, basename="campaign")
router.register("template-folders", nurturing_api.TemplateFolderViewSet, basename="template-folder")
router.register("sequences", nurturing_api.SequenceViewSet, basename="sequence")
router.register("webhooks", webhooks_api.WebhookViewSet, basename="webhook")
router.register("tasks", agenda_api.TaskViewSet, basename="task")

# Both login pages count failed attempts per address and per account (leadcrm.login_throttle).
admin.site.login_form = login_throttle.ThrottledAdminAuthenticationForm

# Under /api/, a URL that matches no route answers JSON like every other API error.
handler404 = "leadcrm.views.not_found"

urlpatterns = [
    path("admin/login/", login_throttle.with_retry_after(admin.site.login)),
    path("admin/", admin.site.urls),
    path("accounts/login/", login_throttle.with_retry_after(
        auth_views.LoginView.as_view(authentication_form=login_throttle.ThrottledAuthenticationForm)), name="login"),
    path("accounts/password_reset/", login_throttle.with_retry_after(
        login_throttle.ThrottledPasswordResetView.as_view()), name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("metrics", core_views.metrics_view, name="metrics"),
    # Pages link the SVG icon; browsers and tools that ask for the conventional address are sent there too.
    path("favicon.ico", core_views.favicon, name="favicon"),
    path("api/v1/ping/", core_views.ping, name="api-ping"),
    # The error report keeps its file-like name without the router's trailing slash.
    re_path(rf"^api/v1/imports/(?P<pk>{urlids.UUID})/errors\.csv$",
         leads_api.ImportViewSet.as_view({"get": "errors_csv"}, **leads_api.ImportViewSet.errors_csv.kwargs),
         name="import-errors-csv"),
    path("api/v1/leads/<uuid:pk>/score/", scoring_api.LeadScoreView.as_view(), name="lead-score"),
    path("api/v1/leads/<uuid:pk>/route/", routing_api.LeadRouteView.as_view(), name="lead-route"),
    path("api/v1/leads/<uuid:pk>/assignments/", routing_api.LeadAssignmentsView.as_view(), name="lead-assignments"),
    path("api/v1/leads/<uuid:pk>/claim/", routing_api.LeadClaimView.as_view(), name="lead-claim"),
    path("api/v1/leads/<uuid:pk>/touch/", routing_api.LeadTouchView.as_view(), name="lead-touch"),
    path("api/v1/leads/reassign/", routing_api.ReassignView.as_view(), name="leads-reassign"),
    path("api/v1/queue/", routing_api.QueueView.as_view(), name="queue"),
    path("api/v1/scoring-settings/", scoring_api.ScoringSettingsView.as_view(), name="scoring-settings"),
    path("api/v1/predictive/", scoring_api.PredictiveView.as_view(), name="predictive"),
    path("api/v1/predictive/train/", scoring_api.PredictiveTrainView.as_view(), name="predictive-train"),
    path("api/v1/predictive/thresholds/", scoring_api.PredictiveThresholdsView.as_view(),
         name="predictive-thresholds"),
    path("api/v1/predictive/suggest-rules/", scoring_api.PredictiveSuggestRulesView.as_view(),
         name="predictive-suggest-rules"),
    path("api/v1/predictive/apply-rules/", scoring_api.PredictiveApplyRulesView.as_view(),
         name="predictive-apply-rules"),
    path("api/v1/leads/<uuid:pk>/messages/", nurturing_api.LeadMessagesView.as_view(), name="lead-messages"),
    path("api/v1/email-events/", nurturing_api.EmailEventView.as_view(), name="email-events"),
    path("api/v1/reports/", include("reports.urls_api")),
    path("api/v1/", include(router.urls)),
    # Public tracking of sent email (no login): open pixel, click redirect, unsubscribe.
    path("t/o/<str:token>.gif", tracking_views.open_pixel, name="tracking-open"),
    path("t/c/<str:token>/<int:index>/", tracking_views.click, name="tracking-click"),
    path("t/u/<str:token>/", tracking_views.unsubscribe, name="tracking-unsubscribe"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file, which the Content-Security-Policy allows.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("", include("leadcrm.urls_ui")),
    path("", include("leads.urls")),
    path("scoring/", include("scoring.urls")),
    path("", include("routing.urls")),
    path("emails/", include("nurturing.urls")),
    path("", include("campaigns.urls")),
    path("", include("agenda.urls")),
    path("reports/", include("reports.urls")),
    path("settings/webhooks/", include("webhooks.urls")),
]
handler500 = "leadcrm.middleware.server_error"  # a broken database connection answers 503, see there
