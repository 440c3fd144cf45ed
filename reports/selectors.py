"""The reports: read-only aggregates over one organization, each a fixed number of SQL statements.

Every report takes the organization, a date range `[start, end]` (whole days, both included, in the project's
timezone) and, where it applies, a breakdown; it returns a list of rows (dicts whose keys are the report's
COLUMNS). Nothing loads leads into Python: rows are groups, counted and measured by PostgreSQL.

Definitions shared by the reports:

- a lead *reached* a stage when it is in that stage or a later one of the funnel now, or its stage history
  (`stage_entered_at`) has that stage or a later one — so the funnel never widens from one stage to the next;
- durations come from stored timestamps: capture is the lead's `created_at`; MQL, assignment and first touch
  are the routing state's `mql_at`, `first_assigned_at` and `first_touch_at`; won is the deal's `closed_at`;
- percentiles are PostgreSQL's `percentile_cont` (interpolated); rates are fractions from 0 to 1, none when
  there is nothing to divide by;
- money is summed as stored; campaign figures count only deals in the campaign's currency.
"""

from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import (
    Aggregate,
    Avg,
    Case,
    Count,
    DateTimeField,
    Exists,
    F,
    FloatField,
    Func,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from campaigns.models import Campaign, CampaignCost, CampaignMember
from leads.models import Deal, DealStatus, Lead, LifecycleStage
from routing.models import Assignment, LeadRouting, RepProfile

_S = LifecycleStage
STAGE_ORDER = [_S.SUBSCRIBER, _S.LEAD, _S.MQL, _S.SAL, _S.SQL, _S.OPPORTUNITY, _S.CUSTOMER]
FUNNEL_STAGES = [_S.MQL.value, _S.SAL.value, _S.SQL.value, _S.OPPORTUNITY.value, _S.CUSTOMER.value]
CENT = Decimal("0.01")

# Breakdowns each report accepts (the first is the default where a report always groups).
FUNNEL_BREAKDOWNS = ("source_type", "source", "campaign", "owner", "team", "segment")
SPEED_BREAKDOWNS = ("team", "rep")
CYCLE_BREAKDOWNS = ("source", "campaign", "lost_reason")
SOURCE_BREAKDOWNS = ("source", "source_type")
CALIBRATION_BREAKDOWNS = ("band", "grade")
ATTRIBUTION_MODELS = ("first_touch", "last_touch", "linear")


def time_range(start, end):
    """Aware datetimes [from, to) covering the days start..end."""
    tz = timezone.get_current_timezone()
    return datetime.combine(start, time.min, tzinfo=tz), datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz)


def later_stages(stage) -> list[str]:
    return [s.value for s in STAGE_ORDER[STAGE_ORDER.index(stage):]]


def reached(stage, prefix: str = "") -> Q:
    stages = later_stages(stage)
    return Q(**{f"{prefix}lifecycle_stage__in": stages}) | Q(**{f"{prefix}stage_entered_at__has_any_keys": stages})


def _reached_sql(alias: str, param: str) -> str:
    return f"({alias}.lifecycle_stage = ANY(%({param})s) OR jsonb_exists_any({alias}.stage_entered_at, %({param})s))"


class Percentile(Aggregate):
    """percentile_cont(p) WITHIN GROUP (ORDER BY expression); NULLs are left out."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


def _elapsed(end: str, start, unit_seconds: int):
    """(end − start) in minutes or days, as a float; NULL when either side is missing."""
    start = F(start) if isinstance(start, str) else start
    return Func(F(end), start, template=f"EXTRACT(EPOCH FROM (%(expressions)s)) / {unit_seconds}.0",
                arg_joiner=" - ", output_field=FloatField())


def _rate(numerator, denominator):
    if not denominator:
        return None
    return round(numerator / denominator, 4)


def _num(value, digits=1):
    return None if value is None else round(float(value), digits)


def _money(value):
    return str(Decimal(value or 0).quantize(CENT, ROUND_HALF_UP))


def _grouped(queryset, breakdown, keys: dict, aggregates: dict) -> list[dict]:
    """One aggregate query: a single row ("all") without a breakdown, else a row per key, ordered by label."""
    if not breakdown:
        return [{"key": "all", "label": "All", **queryset.aggregate(**aggregates)}]
    key, label = keys[breakdown]
    rows = (queryset.order_by().values(key=key, label=label).annotate(**aggregates).order_by("label", "key"))
    return [{**row, "key": None if row["key"] is None else str(row["key"]), "label": row["label"] or ""}
            for row in rows]


def _lead_keys(prefix: str, segment=None) -> dict:
    keys = {
        "source_type": (F(f"{prefix}source_type"), F(f"{prefix}source_type")),
        "source": (F(f"{prefix}source"), F(f"{prefix}source")),
        "campaign": (F(f"{prefix}utm_campaign"), F(f"{prefix}utm_campaign")),
        "owner": (F(f"{prefix}owner_id"), F(f"{prefix}owner__email")),
        "team": (F(f"{prefix}routing__team_id"), F(f"{prefix}routing__team__name")),
    }
    if segment is not None:
        from leads.services.segments import segment_q

        inside = Case(When(segment_q(segment), then=Value("in")), default=Value("out"))
        keys["segment"] = (inside, inside)
    return keys


# --- 1. funnel

FUNNEL_COLUMNS = [("key", "str"), ("label", "str"), ("leads", "int")] + [
    (name, kind) for stage in FUNNEL_STAGES for name, kind in ((stage, "int"), (f"{stage}_rate", "float"))]


def funnel(organization_id, *, start, end, breakdown=None, segment=None) -> list[dict]:
    """Leads created in the range and how many reached each stage; `<stage>_rate` is the share of the previous
    step (leads for mql) that reached the stage."""
    since, until = time_range(start, end)
    leads = Lead.objects.for_org(organization_id).filter(created_at__gte=since, created_at__lt=until)
    aggregates = {"leads": Count("pk"), **{stage: Count("pk", filter=reached(stage)) for stage in FUNNEL_STAGES}}
    rows = _grouped(leads, breakdown, _lead_keys("", segment), aggregates)
    for row in rows:
        previous = row["leads"]
        for stage in FUNNEL_STAGES:
            row[f"{stage}_rate"] = _rate(row[stage], previous)
            previous = row[stage]
    return [{name: row[name] for name, _ in FUNNEL_COLUMNS} for row in rows]


# --- 2. speed to lead

SPEED_STEPS = {
    "capture_to_mql": ("mql_at", "lead__created_at"),
    "mql_to_assigned": ("first_assigned_at", "mql_at"),
    "assigned_to_touch": ("first_touch_at", "first_assigned_at"),
    "capture_to_touch": ("first_touch_at", "lead__created_at"),
}
SPEED_COLUMNS = [("key", "str"), ("label", "str"), ("leads", "int"), ("touched", "int"), ("with_sla", "int"),
                 ("within_sla", "int"), ("within_sla_rate", "float")] + [
    (f"{step}_{stat}_minutes", "float") for step in SPEED_STEPS for stat in ("median", "p90")]


def speed_to_lead(organization_id, *, start, end, breakdown=None) -> list[dict]:
    """Over routed leads created in the range: median and p90 minutes of each step, and the SLA share.

    The SLA deadline of a lead is the `sla_due_at` of its first Assignment (the earliest made); a lead first
    assigned without a deadline has none, even if a later one set it. `with_sla` counts leads that had one,
    `within_sla` those first touched at or before it (a lead never touched is not within);
    `within_sla_rate` = within_sla / with_sla. `rep` is the lead's owner now."""
    since, until = time_range(start, end)
    first_deadline = (Assignment.objects.filter(organization_id=organization_id, lead_id=OuterRef("lead_id"))
                      .order_by("created_at", "pk").values("sla_due_at")[:1])
    routings = (LeadRouting.objects.filter(organization_id=organization_id, lead__organization_id=organization_id,
                                           lead__created_at__gte=since, lead__created_at__lt=until)
                .annotate(first_deadline=Subquery(first_deadline, output_field=DateTimeField())))
    aggregates = {
        "leads": Count("pk"),
        "touched": Count("pk", filter=Q(first_touch_at__isnull=False)),
        "with_sla": Count("pk", filter=Q(first_deadline__isnull=False)),
        "within_sla": Count("pk", filter=Q(first_touch_at__lte=F("first_deadline"))),
    }
    for step, (finish, begin) in SPEED_STEPS.items():
        aggregates[f"{step}_median_minutes"] = Percentile(_elapsed(finish, begin, 60), 0.5)
        aggregates[f"{step}_p90_minutes"] = Percentile(_elapsed(finish, begin, 60), 0.9)
    keys = {"team": (F("team_id"), F("team__name")), "rep": (F("lead__owner_id"), F("lead__owner__email"))}
    rows = _grouped(routings, breakdown, keys, aggregates)
    for row in rows:
        row["within_sla_rate"] = _rate(row["within_sla"], row["with_sla"])
        for step in SPEED_STEPS:
            for stat in ("median", "p90"):
                row[f"{step}_{stat}_minutes"] = _num(row[f"{step}_{stat}_minutes"])
    return [{name: row[name] for name, _ in SPEED_COLUMNS} for row in rows]


# --- 3. sales cycle

CYCLE_COLUMNS = [("key", "str"), ("label", "str"), ("won", "int"), ("lost", "int")] + [
    (f"{span}_days_{stat}", "float") for span in ("created_to_won", "mql_to_won") for stat in ("median", "p90", "mean")]


def sales_cycle(organization_id, *, start, end, breakdown=None) -> list[dict]:
    """Deals closed (won or lost) in the range: counts, and days from the lead's creation and from its MQL
    (its stage history's mql time) to the win, over won deals of a lead."""
    since, until = time_range(start, end)
    deals = Deal.objects.for_org(organization_id).filter(
        status__in=[DealStatus.WON, DealStatus.LOST], closed_at__gte=since, closed_at__lt=until)
    won = Q(status=DealStatus.WON)
    mql_at = Cast(KeyTextTransform("mql", "lead__stage_entered_at"), DateTimeField())
    spans = {"created_to_won": _elapsed("closed_at", "lead__created_at", 86400),
             "mql_to_won": _elapsed("closed_at", mql_at, 86400)}
    aggregates = {"won": Count("pk", filter=won), "lost": Count("pk", filter=Q(status=DealStatus.LOST))}
    for span, expression in spans.items():
        aggregates[f"{span}_days_median"] = Percentile(expression, 0.5, filter=won)
        aggregates[f"{span}_days_p90"] = Percentile(expression, 0.9, filter=won)
        aggregates[f"{span}_days_mean"] = Avg(expression, filter=won)
    keys = {"source": (F("lead__source"), F("lead__source")),
            "campaign": (F("lead__utm_campaign"), F("lead__utm_campaign")),
            "lost_reason": (F("lost_reason"), F("lost_reason"))}
    rows = _grouped(deals, breakdown, keys, aggregates)
    for row in rows:
        for name, kind in CYCLE_COLUMNS:
            if kind == "float":
                row[name] = _num(row[name], 2)
    return [{name: row[name] for name, _ in CYCLE_COLUMNS} for row in rows]


# --- 4. rep performance

REP_COLUMNS = [("key", "str"), ("label", "str"), ("assigned", "int"), ("within_sla", "int"), ("accepted", "int"),
               ("qualified", "int"), ("converted", "int"), ("won", "int"), ("close_rate", "float"),
               ("revenue", "money")]


def reps(organization_id, *, start, end) -> list[dict]:
    """Per rep of the org (everyone with a rep profile): assignments made to them in the range (`assigned`),
    those whose lead was first touched by the assignment's deadline (`within_sla`), distinct leads among them
    that reached sal (`accepted`), sql (`qualified`) and opportunity (`converted`); won deals of those leads
    and their revenue; close_rate = won / assigned."""
    since, until = time_range(start, end)
    user_table = get_user_model()._meta.db_table
    sql = f"""
        WITH given AS (
            SELECT a.rep_id, a.lead_id, a.sla_due_at, r.first_touch_at, l.lifecycle_stage, l.stage_entered_at
            FROM {Assignment._meta.db_table} a
            JOIN {Lead._meta.db_table} l ON l.id = a.lead_id AND l.organization_id = a.organization_id
            LEFT JOIN {LeadRouting._meta.db_table} r ON r.lead_id = a.lead_id AND r.organization_id = a.organization_id
            WHERE a.organization_id = %(org)s AND a.rep_id IS NOT NULL
              AND a.created_at >= %(since)s AND a.created_at < %(until)s
        ), won AS (
            SELECT g.rep_id, count(*) AS deals, sum(d.amount) AS revenue
            FROM (SELECT DISTINCT rep_id, lead_id FROM given) g
            JOIN {Deal._meta.db_table} d ON d.organization_id = %(org)s AND d.lead_id = g.lead_id
            WHERE d.status = %(won)s
            GROUP BY g.rep_id
        )
        SELECT p.user_id, u.email, count(g.lead_id),
               count(*) FILTER (WHERE g.first_touch_at <= g.sla_due_at),
               count(DISTINCT g.lead_id) FILTER (WHERE {_reached_sql("g", "sal")}),
               count(DISTINCT g.lead_id) FILTER (WHERE {_reached_sql("g", "sql")}),
               count(DISTINCT g.lead_id) FILTER (WHERE {_reached_sql("g", "opportunity")}),
               coalesce(w.deals, 0), coalesce(w.revenue, 0)
        FROM {RepProfile._meta.db_table} p
        JOIN {user_table} u ON u.id = p.user_id
        LEFT JOIN given g ON g.rep_id = p.user_id
        LEFT JOIN won w ON w.rep_id = p.user_id
        WHERE p.organization_id = %(org)s
        GROUP BY p.user_id, u.email, w.deals, w.revenue
        ORDER BY u.email, p.user_id
    """
    params = {"org": organization_id, "since": since, "until": until, "won": DealStatus.WON,
              "sal": later_stages(_S.SAL), "sql": later_stages(_S.SQL), "opportunity": later_stages(_S.OPPORTUNITY)}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    return [{"key": str(user_id), "label": email, "assigned": assigned, "within_sla": within, "accepted": accepted,
             "qualified": qualified, "converted": converted, "won": won, "close_rate": _rate(won, assigned),
             "revenue": _money(revenue)}
            for user_id, email, assigned, within, accepted, qualified, converted, won, revenue in found]


# --- 5. sources and campaigns

PERFORMANCE_COLUMNS = [("key", "str"), ("label", "str"), ("leads", "int"), ("mqls", "int"), ("sqls", "int"),
                       ("deals", "int"), ("won_revenue", "money"), ("cost", "money"), ("cost_per_lead", "money"),
                       ("cost_per_mql", "money"), ("roi", "float")]


def _performance(row: dict, cost: Decimal, revenue: Decimal) -> dict:
    def unit(count):
        return None if not count or not cost else _money(cost / count)

    return {**row, "won_revenue": _money(revenue), "cost": _money(cost), "cost_per_lead": unit(row["leads"]),
            "cost_per_mql": unit(row["mqls"]), "roi": None if not cost else round(float((revenue - cost) / cost), 4)}


def sources(organization_id, *, start, end, breakdown="source") -> list[dict]:
    """Per source (or source type) over leads created in the range: leads, those that reached mql and sql,
    their deals (any time) and won revenue. Costs are recorded against campaigns, not sources, so a source's
    cost is 0 and its unit costs and ROI are none; see the campaigns report for spend."""
    since, until = time_range(start, end)
    column = {"source": "source", "source_type": "source_type"}[breakdown]
    sql = f"""
        SELECT l.{column}, count(*),
               count(*) FILTER (WHERE {_reached_sql("l", "mql")}),
               count(*) FILTER (WHERE {_reached_sql("l", "sql")}),
               coalesce(sum(d.deals), 0), coalesce(sum(d.won), 0)
        FROM {Lead._meta.db_table} l
        LEFT JOIN LATERAL (
            SELECT count(*) AS deals, sum(amount) FILTER (WHERE status = %(won)s) AS won
            FROM {Deal._meta.db_table} WHERE organization_id = l.organization_id AND lead_id = l.id
        ) d ON true
        WHERE l.organization_id = %(org)s AND l.created_at >= %(since)s AND l.created_at < %(until)s
        GROUP BY l.{column}
        ORDER BY l.{column}
    """
    params = {"org": organization_id, "since": since, "until": until, "won": DealStatus.WON,
              "mql": later_stages(_S.MQL), "sql": later_stages(_S.SQL)}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    return [_performance({"key": key, "label": key, "leads": leads, "mqls": mqls, "sqls": sqls,
                         "deals": int(deals)},  # sum() of counts is numeric in PostgreSQL
                         Decimal("0"), Decimal(won))
            for key, leads, mqls, sqls, deals, won in found]


def campaigns(organization_id, *, start, end, attribution="first_touch") -> list[dict]:
    """Per campaign of the org: members who joined in the range (`leads`), those that reached mql and sql, their
    deals created once they had joined; cost entries dated in the range; won revenue of deals won in the range
    in the campaign's currency, credited by the attribution model over the campaigns the lead had joined by the
    win (first touch: all to the first joined; last touch: all to the latest; linear: equal shares)."""
    if attribution not in ATTRIBUTION_MODELS:
        raise ValueError(f"Unknown attribution model {attribution!r}.")
    since, until = time_range(start, end)
    member, deal, lead = CampaignMember._meta.db_table, Deal._meta.db_table, Lead._meta.db_table
    sql = f"""
        WITH touches AS (
            SELECT d.amount, d.currency, m.campaign_id,
                   row_number() OVER (PARTITION BY d.id ORDER BY m.joined_at, m.id) AS from_first,
                   row_number() OVER (PARTITION BY d.id ORDER BY m.joined_at DESC, m.id DESC) AS from_last,
                   count(*) OVER (PARTITION BY d.id) AS touches
            FROM {deal} d JOIN {member} m ON m.organization_id = d.organization_id AND m.lead_id = d.lead_id
            WHERE d.organization_id = %(org)s AND d.status = %(won)s AND m.joined_at <= d.closed_at
              AND d.closed_at >= %(since)s AND d.closed_at < %(until)s
        ), credit AS (
            SELECT campaign_id, currency,
                   coalesce(sum(amount) FILTER (WHERE from_first = 1), 0) AS first_touch,
                   coalesce(sum(amount) FILTER (WHERE from_last = 1), 0) AS last_touch,
                   coalesce(sum(amount / touches), 0) AS linear
            FROM touches GROUP BY campaign_id, currency
        )
        SELECT c.id, c.name, coalesce(n.leads, 0), coalesce(n.mqls, 0), coalesce(n.sqls, 0), coalesce(n.deals, 0),
               coalesce((SELECT sum(amount) FROM {CampaignCost._meta.db_table}
                         WHERE organization_id = %(org)s AND campaign_id = c.id
                           AND date >= %(start)s AND date <= %(end)s), 0),
               coalesce(r.{attribution}, 0)
        FROM {Campaign._meta.db_table} c
        LEFT JOIN LATERAL (
            SELECT count(*) AS leads,
                   count(*) FILTER (WHERE {_reached_sql("l", "mql")}) AS mqls,
                   count(*) FILTER (WHERE {_reached_sql("l", "sql")}) AS sqls,
                   sum((SELECT count(*) FROM {deal} d WHERE d.organization_id = %(org)s AND d.lead_id = m.lead_id
                                                       AND d.created_at >= m.joined_at)) AS deals
            FROM {member} m JOIN {lead} l ON l.id = m.lead_id AND l.organization_id = m.organization_id
            WHERE m.organization_id = %(org)s AND m.campaign_id = c.id
              AND m.joined_at >= %(since)s AND m.joined_at < %(until)s
        ) n ON true
        LEFT JOIN credit r ON r.campaign_id = c.id AND r.currency = c.currency
        WHERE c.organization_id = %(org)s
        ORDER BY c.name, c.id
    """
    params = {"org": organization_id, "since": since, "until": until, "start": start, "end": end,
              "won": DealStatus.WON, "mql": later_stages(_S.MQL), "sql": later_stages(_S.SQL)}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    return [_performance({"key": str(pk), "label": name, "leads": leads, "mqls": mqls, "sqls": sqls,
                          "deals": int(deals)}, Decimal(cost), Decimal(revenue))
            for pk, name, leads, mqls, sqls, deals, cost, revenue in found]


# --- 6. score calibration

CALIBRATION_COLUMNS = [("key", "str"), ("label", "str"), ("leads", "int"), ("reached_sql", "int"),
                       ("sql_rate", "float"), ("won", "int"), ("won_rate", "float")]


def score_calibration(organization_id, *, start, end, breakdown="band") -> list[dict]:
    """Leads created in the range by score band of ten points (their score now; key = the band's lowest score)
    or by grade: how many reached sql and how many have a won deal, and those as rates."""
    since, until = time_range(start, end)
    leads = Lead.objects.for_org(organization_id).filter(created_at__gte=since, created_at__lt=until)
    has_won = Exists(Deal.objects.for_org(organization_id).filter(lead_id=OuterRef("pk"), status=DealStatus.WON))
    band = Func(F("score"), template="(floor(%(expressions)s / 10.0) * 10)::int", output_field=IntegerField())
    keys = {"band": (band, band), "grade": (F("grade"), F("grade"))}
    aggregates = {"leads": Count("pk"), "reached_sql": Count("pk", filter=reached(_S.SQL)),
                  "won": Count("pk", filter=Q(has_won))}
    rows = _grouped(leads, breakdown, keys, aggregates)
    if breakdown == "band":
        rows.sort(key=lambda row: int(row["key"]))
    for row in rows:
        if breakdown == "band":
            row["label"] = f"{row['key']} to {int(row['key']) + 9}"
        row["sql_rate"] = _rate(row["reached_sql"], row["leads"])
        row["won_rate"] = _rate(row["won"], row["leads"])
    return [{name: row[name] for name, _ in CALIBRATION_COLUMNS} for row in rows]
