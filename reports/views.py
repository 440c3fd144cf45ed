"""Browser pages of the reports: an overview, a marketer's and a sales manager's home page (key numbers and charts,
each card linking to its report), and a page per report with a date range form, the rows as a table and a link to
the same report as CSV (the API's `?format=csv`, which takes the session).

The pages validate their query with the API's ReportParams and read rows through the API views' `rows`, so a page
and `/api/v1/reports/<name>/` always agree.
"""

from decimal import Decimal
from urllib.parse import urlencode
from uuid import UUID

from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET
from rest_framework import serializers

from campaigns.models import Campaign
from leadcrm import replica
from leadcrm.policy import Action, allowed
from leads.models import Pipeline, Segment

from . import api, presentation, selectors
from .templatetags.report_format import duration, money, number

org_wide = allowed(Action.REPORTS)

# name -> (title, what it shows, API view)
REPORTS = {
    "funnel": ("Funnel", "Leads created in the range and how many reached each stage.", api.FunnelView),
    "speed-to-lead": ("Speed to lead", "How long leads waited from capture to MQL, assignment and first touch; "
                      "the share touched within the SLA.",
                      api.SpeedToLeadView),
    "sales-cycle": ("Sales cycle", "Deals won or lost in the range and the days it took to win.",
                    api.SalesCycleView),
    "reps": ("Rep performance", "Per rep: assignments in the range and what became of them.", api.RepsView),
    "sources": ("Sources", "Per source of leads created in the range: MQLs, SQLs, deals, won revenue and the "
                "campaign cost they brought.",
                api.SourcesView),
    "campaigns": ("Campaigns", "Per campaign: members who joined in the range, cost, won revenue and ROI.",
                  api.CampaignsView),
    "score-calibration": ("Score calibration", "Do higher scores win more often? Leads by score band or grade.",
                          api.ScoreCalibrationView),
    "forecast": ("Forecast", "Open deals by expected close month, weighted by their stage's win probability, "
                 "against deals won.", api.ForecastView),
    "pipeline": ("Pipeline stages", "Per stage: deals in it now, how many of those that entered it in the range "
                 "moved on, and the average days spent in it.", api.PipelineView),
}
TOP_SOURCES = 5


def _validate(query, view=None):
    """The query string checked as the API checks it: (params, errors)."""
    view = view or api.ReportView()
    params = api.ReportParams(data=query, breakdowns=view.breakdowns, default_breakdown=view.default_breakdown,
                              extra=view.extra_params(), days_ahead=view.days_ahead)
    if params.is_valid():
        return params.validated_data, {}
    return None, {field: [str(problem) for problem in problems] for field, problems in params.errors.items()}


def _period(params) -> dict:
    return {"start": params["start"].isoformat(), "end": params["end"].isoformat()}


def _link(name, period) -> str:
    return f"{reverse('reports:report', args=[name])}?{urlencode(period)}"


def _percent(rate) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def _dated_page(template, build):
    """A page of key numbers over the date range of the query string; `build(organization_id, params, period)`
    returns its context. A bad range shows the form with its errors (400)."""

    @org_wide
    @require_GET
    def page(request):
        params, errors = _validate(request.GET)
        context = {"errors": errors, "query": request.GET,
                   "reports": [(key, entry[0]) for key, entry in REPORTS.items()]}
        if errors:
            return render(request, template, context, status=400)
        period = _period(params)
        with replica.reading():
            context.update(period=period, **build(request.organization.pk, params, period))
        return render(request, template, context)

    page.__doc__ = build.__doc__
    return page


def _funnel_chart(funnel) -> dict:
    return {"type": "bar", "labels": ["Leads", "MQL", "SAL", "SQL", "Opportunity", "Customer"],
            "datasets": [{"label": "Leads", "data": [funnel["leads"]] + [
                funnel[stage] for stage in selectors.FUNNEL_STAGES]}]}


def _sources_chart(top) -> dict:
    return {"type": "bar", "labels": [row["label"] or "(none)" for row in top],
            "datasets": [{"label": "Leads", "data": [row["leads"] for row in top]},
                         {"label": "MQLs", "data": [row["mqls"] for row in top]}]}


def _top_sources(organization_id, params):
    sources = selectors.sources(organization_id, start=params["start"], end=params["end"])
    top = sorted(sources, key=lambda row: (-row["leads"], row["label"] or ""))[:TOP_SOURCES]
    return top, sum((Decimal(row["won_revenue"]) for row in sources), Decimal("0.00"))


def _overview(organization_id, params, period):
    """Key numbers of the date range, each linking to its report, with a funnel chart and the top sources."""
    start, end = params["start"], params["end"]
    [funnel] = selectors.funnel(organization_id, start=start, end=end)
    [speed] = selectors.speed_to_lead(organization_id, start=start, end=end)
    top, won_revenue = _top_sources(organization_id, params)
    return {
        "cards": [
            ("Leads created", number(funnel["leads"]), _link("funnel", period)),
            ("MQLs", number(funnel["mql"]), _link("funnel", period)),
            ("SQLs", number(funnel["sql"]), _link("funnel", period)),
            ("Won revenue", money(won_revenue, selectors.report_currency(organization_id)), _link("sources", period)),
            ("Speed to lead (median time to first touch)", duration(speed["capture_to_touch_median_minutes"]),
             _link("speed-to-lead", period)),
        ],
        "top_sources": top, "sources_link": _link("sources", period),
        "funnel_chart": _funnel_chart(funnel), "sources_chart": _sources_chart(top),
    }


def _marketing(organization_id, params, period):
    """The marketer's home: leads and MQLs, what campaigns cost and returned, the funnel, the top sources and
    whether higher scores really win more often."""
    start, end = params["start"], params["end"]
    [funnel] = selectors.funnel(organization_id, start=start, end=end)
    campaigns = selectors.campaigns(organization_id, start=start, end=end)
    calibration = selectors.score_calibration(organization_id, start=start, end=end, breakdown="band")
    top, _ = _top_sources(organization_id, params)
    spend = sum((Decimal(row["cost"]) for row in campaigns), Decimal("0.00"))
    returned = sum((Decimal(row["won_revenue"]) for row in campaigns), Decimal("0.00"))
    campaign_mqls = sum(row["mqls"] for row in campaigns)
    currency = selectors.report_currency(organization_id)
    ranked = sorted((row for row in campaigns if row["leads"] or Decimal(row["cost"])),
                    key=lambda row: (row["roi"] is None, -(row["roi"] or 0), row["label"]))[:TOP_SOURCES]
    return {
        "cards": [
            ("Leads created", number(funnel["leads"]), _link("funnel", period)),
            ("MQLs", number(funnel["mql"]), _link("funnel", period)),
            ("Lead to MQL", _percent(funnel["mql_rate"]), _link("funnel", period)),
            ("Campaign spend", money(spend, currency), _link("campaigns", period)),
            ("Cost per campaign MQL", money(spend / campaign_mqls, currency) if campaign_mqls and spend else "—",
             _link("campaigns", period)),
            ("Campaign ROI", _percent(float((returned - spend) / spend)) if spend else "—",
             _link("campaigns", period)),
        ],
        "top_campaigns": ranked, "campaigns_link": _link("campaigns", period),
        "calibration_link": _link("score-calibration", period),
        "funnel_chart": _funnel_chart(funnel), "sources_chart": _sources_chart(top),
        "calibration_chart": {"type": "bar", "labels": [row["label"] for row in calibration],
                              "datasets": [{"label": "Reached SQL (%)",
                                            "data": [round((row["sql_rate"] or 0) * 100, 1) for row in calibration]},
                                           {"label": "Won (%)",
                                            "data": [round((row["won_rate"] or 0) * 100, 1) for row in calibration]}]},
    }


def _sales(organization_id, params, period):
    """The sales manager's home: how fast leads are touched, deals won and lost, and each rep's results."""
    start, end = params["start"], params["end"]
    [speed] = selectors.speed_to_lead(organization_id, start=start, end=end)
    [cycle] = selectors.sales_cycle(organization_id, start=start, end=end)
    lost = [row for row in selectors.sales_cycle(organization_id, start=start, end=end, breakdown="lost_reason")
            if row["lost"]]
    reps = selectors.reps(organization_id, start=start, end=end)
    assigned, won = sum(row["assigned"] for row in reps), sum(row["won"] for row in reps)
    leaders = sorted(reps, key=lambda row: (-Decimal(row["revenue"]), -row["won"], row["label"]))
    minutes = speed["capture_to_touch_median_minutes"]
    return {
        "cards": [
            ("Median time to first touch", duration(minutes), _link("speed-to-lead", period)),
            ("Touched within SLA", _percent(speed["within_sla_rate"]), _link("speed-to-lead", period)),
            ("Deals won", number(cycle["won"]), _link("sales-cycle", period)),
            ("Deals lost", number(cycle["lost"]), _link("sales-cycle", period)),
            ("Median time to win", duration(cycle["created_to_won_days_median"], "days"),
             _link("sales-cycle", period)),
            ("Close rate", _percent(won / assigned if assigned else None), _link("reps", period)),
        ],
        "leaders": leaders, "reps_link": _link("reps", period),
        "reps_chart": {"type": "bar", "labels": [row["label"] for row in leaders],
                       "datasets": [{"label": "Assigned", "data": [row["assigned"] for row in leaders]},
                                    {"label": "Won", "data": [row["won"] for row in leaders]}]},
        "lost_chart": {"type": "bar", "labels": [row["label"] or "(none)" for row in lost],
                       "datasets": [{"label": "Deals lost", "data": [row["lost"] for row in lost]}]},
        "lost_link": _link("sales-cycle", period) + "&breakdown=lost_reason",
    }


dashboard = _dated_page("reports/dashboard.html", _overview)
marketing = _dated_page("reports/marketing.html", _marketing)
sales = _dated_page("reports/sales.html", _sales)


def _currency_of(name, organization_id, rows):
    """A row's currency: a campaign's own on the campaigns report, else the org's report currency."""
    if name == "campaigns":
        currencies = dict(Campaign.objects.for_org(organization_id).values_list("pk", "currency"))
        return lambda row: currencies.get(UUID(row["key"]), "")
    if name == "forecast":
        return lambda row: row["currency"]  # each row is of one currency
    if not any(kind == "money" for _, kind in REPORTS[name][2].columns):
        return lambda row: ""
    currency = selectors.report_currency(organization_id)
    return lambda row: currency


@org_wide
@require_GET
def report(request, name):
    """One report: the date range (and breakdown) form, the chart beside the rows as a table, and the CSV link."""
    if name not in REPORTS:
        raise Http404()
    title, description, view_class = REPORTS[name]
    view = view_class()
    organization_id = request.organization.pk
    params, errors = _validate(request.GET, view)
    rows = []
    with replica.reading():  # the report's figures and the row currencies beside them: the replica when it may
        if not errors:
            try:
                rows = view.rows(organization_id, params)
            except serializers.ValidationError as exc:
                errors = {field: [str(problem) for problem in problems] for field, problems in exc.detail.items()}
        breakdown = (params or {}).get("breakdown", view.default_breakdown)
        empty = not errors and presentation.is_empty(name, rows, breakdown)
        quiet = not errors and not empty and presentation.is_quiet(name, rows)
        header, body = ((), ()) if errors or empty else presentation.table(
            name, view.columns, rows, breakdown, _currency_of(name, organization_id, rows))
    chart = None if errors or empty or quiet else presentation.chart(name, rows, breakdown)
    csv_query = {key: value for key, value in request.GET.items() if key != "format"}
    if params:
        csv_query.update(_period(params))
    context = {
        "name": name, "title": title, "description": description, "query": request.GET, "errors": errors,
        "breakdowns": [(choice, presentation.BREAKDOWN_LABELS.get(choice, choice)) for choice in view.breakdowns],
        "default_breakdown": view.default_breakdown,
        "attributions": list(presentation.ATTRIBUTION_LABELS.items()) if name == "campaigns" else (),
        "segments": list(Segment.objects.for_org(organization_id).order_by("name").only("pk", "name")[:200])
        if name == "funnel" else [],
        "pipelines": list(Pipeline.objects.for_org(organization_id).order_by("-is_default", "name"))
        if name in ("forecast", "pipeline") else [],
        "header": header, "body": body, "empty": empty, "quiet": quiet, "rows": rows, "chart": chart,
        "params": params, "period": _period(params) if params else None,
        "selected_breakdown": breakdown if params else request.GET.get("breakdown"),
        "csv_url": f"{reverse(f'report-{name}')}?{urlencode({**csv_query, 'format': 'csv'})}",
        "reports": [(key, entry[0]) for key, entry in REPORTS.items()],
    }
    return render(request, "reports/report.html", context, status=400 if errors else 200)
