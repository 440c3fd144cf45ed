"""REST API of the reports: `GET /api/v1/reports/<report>/`, JSON or (`?format=csv`) a CSV download.

Every report takes `?start=YYYY-MM-DD&end=YYYY-MM-DD` (both days included; default the last 90 days up to
today) and, where it applies, `?breakdown=`. The answer is `{"start", "end", "breakdown", "rows": [...]}`;
the CSV has a header row of the same keys. For API keys and org-wide members (admins, managers, marketers).
"""

from datetime import date, timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from leadcrm import replica
from leadcrm.policy import Action, Allowed
from leads.models import Pipeline, Segment

from . import selectors
from .exports import CSVRenderer, report_csv

DEFAULT_DAYS = 90
EARLIEST, LATEST = date(1900, 1, 1), date(9998, 12, 31)


class ReportParams(serializers.Serializer):
    """The query string of a report; `breakdown` choices come from the view."""

    start = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])
    end = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])

    def __init__(self, *args, breakdowns=(), default_breakdown=None, extra=None, days_ahead=0, **kwargs):
        super().__init__(*args, **kwargs)
        self.days_ahead = days_ahead
        if breakdowns:
            self.fields["breakdown"] = serializers.ChoiceField(
                choices=breakdowns, required=False, default=default_breakdown, allow_null=True,
                error_messages={"invalid_choice": f"Unknown breakdown; use one of: {', '.join(breakdowns)}."})
        self.fields.update(extra or {})

    def validate(self, attrs):
        today = timezone.localdate()
        attrs["end"] = attrs.get("end") or today + timedelta(days=self.days_ahead)
        attrs["start"] = attrs.get("start") or attrs["end"] - timedelta(days=DEFAULT_DAYS + self.days_ahead)
        for field in ("end", "start"):
            if not EARLIEST <= attrs[field] <= LATEST:
                raise serializers.ValidationError({field: [f"Give a date from {EARLIEST} to {LATEST}."]})
        if attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": ["The end date is before the start date."]})
        return attrs


_KINDS = {"str": lambda: serializers.CharField(allow_null=True), "int": serializers.IntegerField,
          "float": lambda: serializers.FloatField(allow_null=True),
          "money": lambda: serializers.DecimalField(max_digits=16, decimal_places=2, allow_null=True)}


def _response_schema(name: str, columns):
    rows = inline_serializer(f"{name}Row", {column: _KINDS[kind]() for column, kind in columns}, many=True)
    return inline_serializer(f"{name}Report", {
        "start": serializers.DateField(), "end": serializers.DateField(),
        "breakdown": serializers.CharField(allow_null=True), "rows": rows})


_DATES = [OpenApiParameter("start", OpenApiTypes.DATE, description="First day (default: 90 days before end)."),
          OpenApiParameter("end", OpenApiTypes.DATE, description="Last day, included (default: today)."),
          OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"], description="csv: a download.")]


def _breakdown(choices, default=None):
    return OpenApiParameter("breakdown", OpenApiTypes.STR, enum=list(choices),
                            description=f"Group rows by this (default: {default or 'one row for all'}).")


class ReportView(APIView):
    """A report: validates the query, runs the selector, answers JSON or CSV."""

    policy_action = Action.REPORTS
    permission_classes = [Allowed]
    renderer_classes = [JSONRenderer, CSVRenderer]
    name = ""
    columns: list = []
    breakdowns: tuple = ()
    default_breakdown = None
    days_ahead = 0  # a report about what is to come (the forecast) ends this many days after today by default

    def extra_params(self) -> dict:
        return {}

    def rows(self, organization_id, params) -> list[dict]:
        raise NotImplementedError

    def handle_exception(self, exc):
        # Errors are always JSON, even when a CSV was asked for.
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return super().handle_exception(exc)

    def get(self, request):
        query = ReportParams(data=request.query_params, breakdowns=self.breakdowns,
                             default_breakdown=self.default_breakdown, extra=self.extra_params(),
                             days_ahead=self.days_ahead)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        with replica.reading():  # read-only aggregates: the replica serves them when it may
            rows = self.rows(request.organization.pk, params)
        breakdown = params.get("breakdown", self.default_breakdown)
        if getattr(request.accepted_renderer, "format", "") == "csv":
            filename = f"{self.name}-{params['start']}-{params['end']}.csv"
            return report_csv(filename, [column for column, _ in self.columns], rows)
        return Response({"start": params["start"], "end": params["end"], "breakdown": breakdown, "rows": rows})


class FunnelView(ReportView):
    name = "funnel"
    columns = selectors.FUNNEL_COLUMNS
    breakdowns = selectors.FUNNEL_BREAKDOWNS

    def extra_params(self):
        return {"segment": serializers.UUIDField(required=False)}

    @extend_schema(parameters=[*_DATES, _breakdown(selectors.FUNNEL_BREAKDOWNS), OpenApiParameter(
        "segment", OpenApiTypes.UUID, description="With breakdown=segment: rows 'in' and 'out' of this segment.")],
        responses={200: _response_schema("Funnel", selectors.FUNNEL_COLUMNS),
                   400: OpenApiResponse(description="Bad dates, breakdown or segment")})
    def get(self, request):
        """Leads created in the range and how many reached each stage (that stage or a later one, now or in
        their stage history). Row keys: `key`, `label` (the group), `leads`, then for each of mql, sal, sql,
        opportunity, customer the count and `<stage>_rate`, the share of the previous step that reached it."""
        return super().get(request)

    def rows(self, organization_id, params):
        segment = None
        if params.get("breakdown") == "segment":
            if not params.get("segment"):
                raise serializers.ValidationError({"segment": ["Name the segment for breakdown=segment."]})
            segment = Segment.objects.for_org(organization_id).filter(pk=params["segment"]).first()
            if segment is None:
                raise serializers.ValidationError({"segment": ["No such segment."]})
        return selectors.funnel(organization_id, start=params["start"], end=params["end"],
                                breakdown=params.get("breakdown"), segment=segment)


class SpeedToLeadView(ReportView):
    name = "speed-to-lead"
    columns = selectors.SPEED_COLUMNS
    breakdowns = selectors.SPEED_BREAKDOWNS

    @extend_schema(parameters=[*_DATES, _breakdown(selectors.SPEED_BREAKDOWNS)],
                   responses={200: _response_schema("SpeedToLead", selectors.SPEED_COLUMNS),
                              400: OpenApiResponse(description="Bad dates or breakdown")})
    def get(self, request):
        """Routed leads created in the range: `leads`, `touched`; median and p90 minutes of capture→MQL,
        MQL→assigned, assigned→first touch and capture→first touch (`<step>_median_minutes`,
        `<step>_p90_minutes`); `with_sla` (leads whose first assignment set a first-touch deadline),
        `within_sla` (first touched by it) and `within_sla_rate`. `rep` groups by the lead's owner (user id)."""
        return super().get(request)

    def rows(self, organization_id, params):
        return selectors.speed_to_lead(organization_id, start=params["start"], end=params["end"],
                                       breakdown=params.get("breakdown"))


class SalesCycleView(ReportView):
    name = "sales-cycle"
    columns = selectors.CYCLE_COLUMNS
    breakdowns = selectors.CYCLE_BREAKDOWNS

    @extend_schema(parameters=[*_DATES, _breakdown(selectors.CYCLE_BREAKDOWNS)],
                   responses={200: _response_schema("SalesCycle", selectors.CYCLE_COLUMNS),
                              400: OpenApiResponse(description="Bad dates or breakdown")})
    def get(self, request):
        """Deals won or lost in the range: `won`, `lost`, and over won deals the days from lead creation and
        from MQL to the win (`created_to_won_days_median|p90|mean`, `mql_to_won_days_…`). Break down by the
        lead's source or campaign, or by lost reason (won deals fall in the empty reason)."""
        return super().get(request)

    def rows(self, organization_id, params):
        return selectors.sales_cycle(organization_id, start=params["start"], end=params["end"],
                                     breakdown=params.get("breakdown"))


class RepsView(ReportView):
    name = "reps"
    columns = selectors.REP_COLUMNS
    default_breakdown = "rep"

    @extend_schema(parameters=_DATES, responses={200: _response_schema("Reps", selectors.REP_COLUMNS),
                                                 400: OpenApiResponse(description="Bad dates")})
    def get(self, request):
        """A row per rep (`key`: user id, `label`: email): `assigned` (assignments in the range), `within_sla`,
        `accepted` (reached sal), `qualified` (sql), `converted` (opportunity), `won` deals of those leads,
        `close_rate` = won / assigned, `revenue`."""
        return super().get(request)

    def rows(self, organization_id, params):
        return selectors.reps(organization_id, start=params["start"], end=params["end"])


class SourcesView(ReportView):
    name = "sources"
    columns = selectors.PERFORMANCE_COLUMNS
    breakdowns = selectors.SOURCE_BREAKDOWNS
    default_breakdown = "source"

    @extend_schema(parameters=[*_DATES, _breakdown(selectors.SOURCE_BREAKDOWNS, "source")],
                   responses={200: _response_schema("Sources", selectors.PERFORMANCE_COLUMNS),
                              400: OpenApiResponse(description="Bad dates or breakdown")})
    def get(self, request):
        """Per source of leads created in the range: `leads`, `mqls`, `sqls`, `deals`, `won_revenue`; `cost`:
        each campaign's cost dated in the range shared among the sources of its members who joined in the range,
        in proportion to their number (to the cent, the shares adding up to the cost; campaigns in the org's
        report currency only); `cost_per_lead`, `cost_per_mql`, `roi` (null without cost)."""
        return super().get(request)

    def rows(self, organization_id, params):
        return selectors.sources(organization_id, start=params["start"], end=params["end"],
                                 breakdown=params["breakdown"] or "source")


class CampaignsView(ReportView):
    name = "campaigns"
    columns = selectors.PERFORMANCE_COLUMNS
    default_breakdown = "campaign"

    def extra_params(self):
        models = selectors.ATTRIBUTION_MODELS
        return {"attribution": serializers.ChoiceField(
            choices=models, required=False, default="first_touch",
            error_messages={"invalid_choice": f"Unknown attribution; use one of: {', '.join(models)}."})}

    @extend_schema(parameters=[*_DATES, OpenApiParameter(
        "attribution", OpenApiTypes.STR, enum=list(selectors.ATTRIBUTION_MODELS),
        description="How won revenue is credited to the campaigns a lead joined (default first_touch).")],
        responses={200: _response_schema("Campaigns", selectors.PERFORMANCE_COLUMNS),
                   400: OpenApiResponse(description="Bad dates or attribution")})
    def get(self, request):
        """Per campaign (`key`: id, `label`: name): `leads` (members who joined in the range), `mqls`, `sqls`,
        `deals` of those members; `won_revenue` of deals won in the range as the attribution model credits it;
        `cost` (cost entries dated in the range), `cost_per_lead`, `cost_per_mql`, `roi` = (revenue − cost) /
        cost (null without cost)."""
        return super().get(request)

    def rows(self, organization_id, params):
        return selectors.campaigns(organization_id, start=params["start"], end=params["end"],
                                   attribution=params["attribution"])


class ScoreCalibrationView(ReportView):
    name = "score-calibration"
    columns = selectors.CALIBRATION_COLUMNS
    breakdowns = selectors.CALIBRATION_BREAKDOWNS
    default_breakdown = "band"

    @extend_schema(parameters=[*_DATES, _breakdown(selectors.CALIBRATION_BREAKDOWNS, "band")],
                   responses={200: _response_schema("ScoreCalibration", selectors.CALIBRATION_COLUMNS),
                              400: OpenApiResponse(description="Bad dates or breakdown")})
    def get(self, request):
        """Leads created in the range by score band of ten points (`key`: the band's lowest score), by grade, by
        predictive band (A–E; `key` empty for leads without a probability) or by scoring rule: `leads`,
        `reached_sql`, `sql_rate`, `won` (leads with a won deal), `won_rate`, `base_rate` (the win rate of all
        the leads created in the range) and `lift` (`won_rate` / `base_rate`)."""
        return super().get(request)

    def rows(self, organization_id, params):
        return selectors.score_calibration(organization_id, start=params["start"], end=params["end"],
                                           breakdown=params["breakdown"] or "band")


def _pipeline_param():
    return {"pipeline": serializers.UUIDField(required=False)}


def _pipeline_of(organization_id, params, *, required):
    """The pipeline a report is about: `?pipeline=`, else (where one is needed) the org's default; another org's is
    a 400 at `pipeline`."""
    pipelines = Pipeline.objects.for_org(organization_id)
    if params.get("pipeline"):
        pipeline = pipelines.filter(pk=params["pipeline"]).first()
        if pipeline is None:
            raise serializers.ValidationError({"pipeline": ["No such pipeline."]})
        return pipeline
    return pipelines.filter(is_default=True).first() if required else None


class ForecastView(ReportView):
    name = "forecast"
    columns = selectors.FORECAST_COLUMNS
    breakdowns = selectors.FORECAST_BREAKDOWNS
    default_breakdown = "owner"
    days_ahead = 180

    def extra_params(self):
        return _pipeline_param()

    @extend_schema(parameters=[*_DATES, _breakdown(selectors.FORECAST_BREAKDOWNS, "owner"), OpenApiParameter(
        "pipeline", OpenApiTypes.UUID, description="One pipeline only (default: every pipeline).")],
        responses={200: _response_schema("Forecast", selectors.FORECAST_COLUMNS),
                   400: OpenApiResponse(description="Bad dates, breakdown or pipeline")})
    def get(self, request):
        """Weighted pipeline against won, by month (default range: the last 90 days to 180 days ahead) and owner,
        per currency: `open_deals` expected to close in the month, their `pipeline` (Σ amount) and `weighted`
        (Σ amount × stage probability), `won_deals` and `won` (Σ amount of deals won in the month)."""
        return super().get(request)

    def rows(self, organization_id, params):
        pipeline = _pipeline_of(organization_id, params, required=False)
        return selectors.forecast(organization_id, start=params["start"], end=params["end"],
                                  breakdown=params.get("breakdown") or "owner",
                                  pipeline_id=pipeline.pk if pipeline else None)


class PipelineView(ReportView):
    name = "pipeline"
    columns = selectors.PIPELINE_COLUMNS

    def extra_params(self):
        return _pipeline_param()

    @extend_schema(parameters=[*_DATES, OpenApiParameter(
        "pipeline", OpenApiTypes.UUID, description="The pipeline (default: the org's default one).")],
        responses={200: _response_schema("Pipeline", selectors.PIPELINE_COLUMNS),
                   400: OpenApiResponse(description="Bad dates or pipeline")})
    def get(self, request):
        """Per stage of a pipeline, in order: `probability`, `deals_now` (open deals in it); of the deals that
        entered it in the range: `entered`, `moved_on` (reached a later stage that is not lost),
        `conversion_rate` (moved_on / entered), `lost`, and `avg_days_in_stage`."""
        return super().get(request)

    def rows(self, organization_id, params):
        pipeline = _pipeline_of(organization_id, params, required=True)
        if pipeline is None:
            return []
        return selectors.pipeline_stages(organization_id, start=params["start"], end=params["end"],
                                         pipeline_id=pipeline.pk)
