"""Browser pages of the reports: a dashboard of key numbers and charts, and a page per report with a date range
form, the rows as a table and a link to the same report as CSV (the API's `?format=csv`, which takes the session).

The pages validate their query with the API's ReportParams and read rows through the API views' `rows`, so a page
and `/api/v1/reports/<name>/` always agree.
"""

from decimal import Decimal
from urllib.parse import urlencode

from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET
from rest_framework import serializers

from leadcrm.tenancy import ORG_WIDE_ROLES
from leadcrm.views import role_required
from leads.models import Segment

from . import api, selectors

org_wide = role_required(*ORG_WIDE_ROLES)

# name -> (title, what it shows, API view)
REPORTS = {
    "funnel": ("Funnel", "Leads created in the range and how many reached each stage.", api.FunnelView),
    "speed-to-lead": ("Speed to lead", "Minutes from capture to MQL, assignment and first touch; the SLA share.",
                      api.SpeedToLeadView),
    "sales-cycle": ("Sales cycle", "Deals won or lost in the range and the days it took to win.",
                    api.SalesCycleView),
    "reps": ("Rep performance", "Per rep: assignments in the range and what became of them.", api.RepsView),
    "sources": ("Sources", "Per source of leads created in the range: MQLs, SQLs, deals, won revenue.",
                api.SourcesView),
    "campaigns": ("Campaigns", "Per campaign: members who joined in the range, cost, won revenue and ROI.",
                  api.CampaignsView),
    "score-calibration": ("Score calibration", "Do higher scores win more often? Leads by score band or grade.",
                          api.ScoreCalibrationView),
}
TOP_SOURCES = 5


def _validate(query, view=None):
    """The query string checked as the API checks it: (params, errors)."""
    view = view or api.ReportView()
    params = api.ReportParams(data=query, breakdowns=view.breakdowns, default_breakdown=view.default_breakdown,
                              extra=view.extra_params())
    if params.is_valid():
        return params.validated_data, {}
    return None, {field: [str(problem) for problem in problems] for field, problems in params.errors.items()}


def _label(column: str) -> str:
    return column.replace("_", " ").capitalize()


def _cell(value, kind, column):
    if value is None:
        return "—"
    if kind == "float" and (column.endswith("_rate") or column == "roi"):
        return f"{value * 100:.1f}%"
    return value


def _table(columns, rows):
    """Header and cells of a report's rows; `key` is an id, the label names the row instead."""
    shown = [(column, kind) for column, kind in columns if column != "key"]
    header = [_label(column) for column, _ in shown]
    body = [[_cell(row[column], kind, column) for column, kind in shown] for row in rows]
    return header, body


def _period(params) -> dict:
    return {"start": params["start"].isoformat(), "end": params["end"].isoformat()}


@org_wide
@require_GET
def dashboard(request):
    """Key numbers of the date range, each linking to its report, with a funnel chart and the top sources."""
    params, errors = _validate(request.GET)
    context = {"errors": errors, "query": request.GET, "reports": [(key, entry[0]) for key, entry in REPORTS.items()]}
    if errors:
        return render(request, "reports/dashboard.html", context, status=400)
    organization_id, period = request.organization.pk, _period(params)
    [funnel] = selectors.funnel(organization_id, start=params["start"], end=params["end"])
    [speed] = selectors.speed_to_lead(organization_id, start=params["start"], end=params["end"])
    sources = selectors.sources(organization_id, start=params["start"], end=params["end"])
    top = sorted(sources, key=lambda row: (-row["leads"], row["label"] or ""))[:TOP_SOURCES]
    won_revenue = sum((Decimal(row["won_revenue"]) for row in sources), Decimal("0.00"))

    def link(name):
        return f"{reverse('reports:report', args=[name])}?{urlencode(period)}"

    context.update({
        "period": period,
        "cards": [
            ("Leads created", funnel["leads"], link("funnel")),
            ("MQLs", funnel["mql"], link("funnel")),
            ("SQLs", funnel["sql"], link("funnel")),
            ("Won revenue", f"{won_revenue:.2f}", link("sources")),
            ("Speed to lead (median minutes to first touch)",
             "—" if speed["capture_to_touch_median_minutes"] is None else speed["capture_to_touch_median_minutes"],
             link("speed-to-lead")),
        ],
        "top_sources": top,
        "sources_link": link("sources"),
        "funnel_chart": {"type": "bar", "labels": ["Leads", "MQL", "SAL", "SQL", "Opportunity", "Customer"],
                         "datasets": [{"label": "Leads", "data": [funnel["leads"]] + [
                             funnel[stage] for stage in selectors.FUNNEL_STAGES]}]},
        "sources_chart": {"type": "bar", "labels": [row["label"] or "(none)" for row in top],
                          "datasets": [{"label": "Leads", "data": [row["leads"] for row in top]},
                                       {"label": "MQLs", "data": [row["mqls"] for row in top]}]},
    })
    return render(request, "reports/dashboard.html", context)


@org_wide
@require_GET
def report(request, name):
    """One report: the date range (and breakdown) form, the rows as a table, and the CSV link."""
    if name not in REPORTS:
        raise Http404()
    title, description, view_class = REPORTS[name]
    view = view_class()
    organization_id = request.organization.pk
    params, errors = _validate(request.GET, view)
    rows = []
    if not errors:
        try:
            rows = view.rows(organization_id, params)
        except serializers.ValidationError as exc:
            errors = {field: [str(problem) for problem in problems] for field, problems in exc.detail.items()}
    header, body = _table(view.columns, rows)
    csv_query = {key: value for key, value in request.GET.items() if key != "format"}
    if params:
        csv_query.update(_period(params))
    context = {
        "name": name, "title": title, "description": description, "query": request.GET, "errors": errors,
        "breakdowns": view.breakdowns, "default_breakdown": view.default_breakdown,
        "attributions": selectors.ATTRIBUTION_MODELS if name == "campaigns" else (),
        "segments": list(Segment.objects.for_org(organization_id).order_by("name").only("pk", "name")[:200])
        if name == "funnel" else [],
        "header": header, "body": body, "params": params, "period": _period(params) if params else None,
        "selected_breakdown": (params or {}).get("breakdown", view.default_breakdown) if params
        else request.GET.get("breakdown"),
        "csv_url": f"{reverse(f'report-{name}')}?{urlencode({**csv_query, 'format': 'csv'})}",
        "reports": [(key, entry[0]) for key, entry in REPORTS.items()],
    }
    return render(request, "reports/report.html", context, status=400 if errors else 200)
