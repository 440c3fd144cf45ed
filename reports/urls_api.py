"""`/api/v1/reports/…`: the reports as JSON or CSV."""

from django.urls import path

from . import api

urlpatterns = [
    path("funnel/", api.FunnelView.as_view(), name="report-funnel"),
    path("speed-to-lead/", api.SpeedToLeadView.as_view(), name="report-speed-to-lead"),
    path("sales-cycle/", api.SalesCycleView.as_view(), name="report-sales-cycle"),
    path("reps/", api.RepsView.as_view(), name="report-reps"),
    path("sources/", api.SourcesView.as_view(), name="report-sources"),
    path("campaigns/", api.CampaignsView.as_view(), name="report-campaigns"),
    path("score-calibration/", api.ScoreCalibrationView.as_view(), name="report-score-calibration"),
    path("forecast/", api.ForecastView.as_view(), name="report-forecast"),
    path("pipeline/", api.PipelineView.as_view(), name="report-pipeline"),
]
