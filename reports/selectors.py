"""The reports: read-only aggregates over one organization, each a fixed number of SQL statements.

Every report takes the organization, a date range `[start, end]` (whole days, both included, in the project's
timezone) and, where it applies, a breakdown; it returns a list of rows (dicts whose keys are the report's
COLUMNS). Nothing loads leads into Python: rows are groups, counted and measured by PostgreSQL.

Definitions shared by the reports:

- a lead *reached* a stage when it is in that stage or a later one of the funnel now, or its stage history
  (`stage_entered_at`) has that stage or a later one — so the funnel never widens from one stage to the next
  (PostgreSQL keeps this as `Lead.reached_rank`, and the lead index by creation time carries it with the other
  columns the reports group by, so reports over leads created in a range read that index alone);
- durations come from stored timestamps: capture is the lead's `created_at`; MQL, assignment and first touch
  are the routing state's `mql_at`, `first_assigned_at` and `first_touch_at`; won is the deal's `closed_at`;
- percentiles are PostgreSQL's `percentile_cont` (interpolated); rates are fractions from 0 to 1, none when
  there is nothing to divide by;
- money is summed as stored; campaign figures count only deals in the campaign's currency; the sources report
  shares campaign cost out among the sources of the campaigns' members (see `sources`).
"""

from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth import get_user_model
from django.db.models import (
    Aggregate,
    Avg,
    Case,
    Count,
    DateTimeField,
    F,
    FloatField,
    Func,
    IntegerField,
    Q,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from campaigns.models import Campaign, CampaignCost, CampaignMember
from leadcrm import replica
from leads.models import FUNNEL_RANK, Deal, DealStatus, Lead, LifecycleStage
from routing.models import Assignment, LeadRouting, RepProfile, Team
from scoring.models import ScoringRule

_S = LifecycleStage
FUNNEL_STAGES = [_S.MQL.value, _S.SAL.value, _S.SQL.value, _S.OPPORTUNITY.value, _S.CUSTOMER.value]
CENT = Decimal("0.01")

# Breakdowns each report accepts (the first is the default where a report always groups).
FUNNEL_BREAKDOWNS = ("source_type", "source", "campaign", "owner", "team", "segment")
SPEED_BREAKDOWNS = ("team", "rep")
CYCLE_BREAKDOWNS = ("source", "campaign", "lost_reason")
SOURCE_BREAKDOWNS = ("source", "source_type")
CALIBRATION_BREAKDOWNS = ("band", "grade", "predictive_band", "rule")
ATTRIBUTION_MODELS = ("first_touch", "last_touch", "linear")


def time_range(start, end):
    """Aware datetimes [from, to) covering the days start..end."""
    tz = timezone.get_current_timezone()
    return datetime.combine(start, time.min, tzinfo=tz), datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz)


def reached(stage) -> Q:
    return Q(reached_rank__gte=FUNNEL_RANK[stage])


def _reached_sql(alias: str, stage) -> str:
    return f"{alias}.reached_rank >= {FUNNEL_RANK[stage]:d}"


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

SPEED_SQL = {  # (finish, begin) columns of the routed leads below
    "capture_to_mql": ("r.mql_at", "r.created_at"),
    "mql_to_assigned": ("r.first_assigned_at", "r.mql_at"),
    "assigned_to_touch": ("r.first_touch_at", "r.first_assigned_at"),
    "capture_to_touch": ("r.first_touch_at", "r.created_at"),
}
SPEED_STEPS = list(SPEED_SQL)
SPEED_COLUMNS = [("key", "str"), ("label", "str"), ("leads", "int"), ("touched", "int"), ("with_sla", "int"),
                 ("within_sla", "int"), ("within_sla_rate", "float")] + [
    (f"{step}_{stat}_minutes", "float") for step in SPEED_STEPS for stat in ("median", "p90")]


def speed_to_lead(organization_id, *, start, end, breakdown=None) -> list[dict]:
    """Over routed leads created in the range: median and p90 minutes of each step, and the SLA share.

    The SLA deadline of a lead is the deadline of its first assignment (the routing state keeps it); a lead first
    assigned without a deadline has none, even if a later one set it. `with_sla` counts leads that had one,
    `within_sla` those first touched at or before it (a lead never touched is not within);
    `within_sla_rate` = within_sla / with_sla. `rep` is the lead's owner now."""
    since, until = time_range(start, end)
    user_table = get_user_model()._meta.db_table
    key, label, joins = {
        None: ("'all'", "'All'", ""),
        "team": ("r.team_id::text", "t.name", f"LEFT JOIN {Team._meta.db_table} t ON t.id = r.team_id"),
        "rep": ("r.owner_id::text", "u.email", f"LEFT JOIN {user_table} u ON u.id = r.owner_id"),
    }[breakdown]
    # One sort per step gives both percentiles: percentile_cont over an array of fractions answers an array.
    steps = [f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY extract(epoch FROM ({finish} - {begin})) / 60.0)"
             for finish, begin in SPEED_SQL.values()]
    sql = f"""
        WITH routed AS (
            SELECT r.team_id, l.owner_id, l.created_at, r.mql_at, r.first_assigned_at, r.first_touch_at,
                   r.first_sla_due_at
            FROM {Lead._meta.db_table} l
            JOIN {LeadRouting._meta.db_table} r ON r.lead_id = l.id AND r.organization_id = l.organization_id
            WHERE l.organization_id = %(org)s AND l.created_at >= %(since)s AND l.created_at < %(until)s
        )
        SELECT {key}, {label}, count(*), count(r.first_touch_at), count(r.first_sla_due_at),
               count(*) FILTER (WHERE r.first_touch_at <= r.first_sla_due_at), {", ".join(steps)}
        FROM routed r
        {joins}
        GROUP BY 1, 2 ORDER BY 2, 1
    """
    with replica.connection().cursor() as cursor:
        cursor.execute(sql, {"org": organization_id, "since": since, "until": until})
        found = cursor.fetchall()
    if not breakdown and not found:  # no routed leads: one row of zeros
        found = [("all", "All", 0, 0, 0, 0, *[None] * len(steps))]
    return [{"key": row_key, "label": row_label or "", "leads": leads, "touched": touched, "with_sla": with_sla,
             "within_sla": within, "within_sla_rate": _rate(within, with_sla),
             **{name: _num(value) for (name, _), value in zip(
                 SPEED_COLUMNS[7:], [value for pair in pairs for value in (pair or (None, None))], strict=True)}}
            for row_key, row_label, leads, touched, with_sla, within, *pairs in found]


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
            SELECT a.rep_id, a.lead_id, a.sla_due_at, r.first_touch_at, l.reached_rank
            FROM {Assignment._meta.db_table} a
            JOIN {Lead._meta.db_table} l ON l.id = a.lead_id AND l.organization_id = a.organization_id
            LEFT JOIN {LeadRouting._meta.db_table} r ON r.lead_id = a.lead_id AND r.organization_id = a.organization_id
            WHERE a.organization_id = %(org)s AND a.rep_id IS NOT NULL
              AND a.created_at >= %(since)s AND a.created_at < %(until)s
        ), per_rep AS (
            SELECT rep_id, count(*) AS assigned, count(*) FILTER (WHERE first_touch_at <= sla_due_at) AS within
            FROM given GROUP BY rep_id
        ), rep_leads AS (
            SELECT DISTINCT rep_id, lead_id, reached_rank FROM given
        ), outcomes AS (
            SELECT g.rep_id,
                   count(*) FILTER (WHERE {_reached_sql("g", _S.SAL)}) AS accepted,
                   count(*) FILTER (WHERE {_reached_sql("g", _S.SQL)}) AS qualified,
                   count(*) FILTER (WHERE {_reached_sql("g", _S.OPPORTUNITY)}) AS converted,
                   sum(w.deals) AS won, sum(w.revenue) AS revenue
            FROM rep_leads g
            LEFT JOIN (SELECT lead_id, count(*) AS deals, sum(amount) AS revenue FROM {Deal._meta.db_table}
                       WHERE organization_id = %(org)s AND status = %(won)s AND lead_id IS NOT NULL
                       GROUP BY lead_id) w ON w.lead_id = g.lead_id
            GROUP BY g.rep_id
        )
        SELECT p.user_id, u.email, coalesce(n.assigned, 0), coalesce(n.within, 0), coalesce(o.accepted, 0),
               coalesce(o.qualified, 0), coalesce(o.converted, 0), coalesce(o.won, 0), coalesce(o.revenue, 0)
        FROM {RepProfile._meta.db_table} p
        JOIN {user_table} u ON u.id = p.user_id
        LEFT JOIN per_rep n ON n.rep_id = p.user_id
        LEFT JOIN outcomes o ON o.rep_id = p.user_id
        WHERE p.organization_id = %(org)s
        ORDER BY u.email, p.user_id
    """
    params = {"org": organization_id, "since": since, "until": until, "won": DealStatus.WON}
    with replica.connection().cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    return [{"key": str(user_id), "label": email, "assigned": assigned, "within_sla": within, "accepted": accepted,
             "qualified": qualified, "converted": converted, "won": int(won), "close_rate": _rate(int(won), assigned),
             "revenue": _money(revenue)}
            for user_id, email, assigned, within, accepted, qualified, converted, won, revenue in found]


# --- 5. sources and campaigns

PERFORMANCE_COLUMNS = [("key", "str"), ("label", "str"), ("leads", "int"), ("mqls", "int"), ("sqls", "int"),
                       ("deals", "int"), ("won_revenue", "money"), ("cost", "money"), ("cost_per_lead", "money"),
                       ("cost_per_mql", "money"), ("roi", "float")]


# Deals per lead of the org, counted once and joined by hash (not looked up lead by lead).
_DEALS_PER_LEAD = f"""
    SELECT lead_id, count(*) AS deals, sum(amount) FILTER (WHERE status = %(won)s) AS won
    FROM {Deal._meta.db_table} WHERE organization_id = %(org)s AND lead_id IS NOT NULL GROUP BY lead_id"""


def _performance(row: dict, cost: Decimal, revenue: Decimal) -> dict:
    def unit(count):
        return None if not count or not cost else _money(cost / count)

    return {**row, "won_revenue": _money(revenue), "cost": _money(cost), "cost_per_lead": unit(row["leads"]),
            "cost_per_mql": unit(row["mqls"]), "roi": None if not cost else round(float((revenue - cost) / cost), 4)}


# The currency the org reports money in: the one most of its campaigns use, else most of its deals, else USD.
# A SQL expression, so a report can filter by it inside its own (single) query.
_REPORT_CURRENCY_SQL = f"""coalesce(
    (SELECT currency FROM {Campaign._meta.db_table} WHERE organization_id = %(org)s
     GROUP BY currency ORDER BY count(*) DESC, currency LIMIT 1),
    (SELECT currency FROM {Deal._meta.db_table} WHERE organization_id = %(org)s
     GROUP BY currency ORDER BY count(*) DESC, currency LIMIT 1),
    'USD')"""


def report_currency(organization_id) -> str:
    """The currency the reports show org-wide sums in (see _REPORT_CURRENCY_SQL); amounts are not converted."""
    with replica.connection().cursor() as cursor:
        cursor.execute(f"SELECT {_REPORT_CURRENCY_SQL}", {"org": organization_id})
        return cursor.fetchone()[0]


def sources(organization_id, *, start, end, breakdown="source") -> list[dict]:
    """Per source (or source type) over leads created in the range: leads, those that reached mql and sql,
    their deals (any time) and won revenue; and the campaign cost attributed to the source.

    Cost is recorded on campaigns, so a campaign's cost entries dated in the range are shared out among the sources
    of its members who joined in the range, in proportion to how many members each source brought (a campaign
    spending 2,550.50 with 3 members from A and 1 from B gives A 1,912.875 and B 637.625). Shares are rounded down
    to the cent and the cents left over go, one each, to the largest remainders (ties: the bigger share, then the
    source's name), so the shares add up to the campaign's cost exactly: A 1,912.88, B 637.62. Only campaigns in
    the org's report currency count (see report_currency); a campaign with no member joined in the range gives its
    cost to no source. A source whose members joined in the range but whose leads were created earlier has a row
    with its cost and no leads."""
    since, until = time_range(start, end)
    column = {"source": "source", "source_type": "source_type"}[breakdown]
    sql = f"""
        WITH counted AS (
            SELECT l.{column} AS key, count(*) AS leads,
                   count(*) FILTER (WHERE {_reached_sql("l", _S.MQL)}) AS mqls,
                   count(*) FILTER (WHERE {_reached_sql("l", _S.SQL)}) AS sqls,
                   coalesce(sum(d.deals), 0) AS deals, coalesce(sum(d.won), 0) AS won
            FROM {Lead._meta.db_table} l
            LEFT JOIN ({_DEALS_PER_LEAD}) d ON d.lead_id = l.id
            WHERE l.organization_id = %(org)s AND l.created_at >= %(since)s AND l.created_at < %(until)s
            GROUP BY l.{column}
        ), spend AS (
            SELECT c.id AS campaign_id, sum(x.amount) AS cost
            FROM {Campaign._meta.db_table} c
            JOIN {CampaignCost._meta.db_table} x ON x.campaign_id = c.id AND x.organization_id = c.organization_id
            WHERE c.organization_id = %(org)s AND c.currency = {_REPORT_CURRENCY_SQL}
              AND x.date >= %(start)s AND x.date <= %(end)s
            GROUP BY c.id
        ), brought AS (  -- members per campaign and source
            SELECT m.campaign_id, l.{column} AS key, count(*) AS members
            FROM {CampaignMember._meta.db_table} m
            JOIN {Lead._meta.db_table} l ON l.id = m.lead_id AND l.organization_id = m.organization_id
            WHERE m.organization_id = %(org)s AND m.joined_at >= %(since)s AND m.joined_at < %(until)s
              AND m.campaign_id IN (SELECT campaign_id FROM spend)
            GROUP BY m.campaign_id, l.{column}
        ), shares AS (
            SELECT b.campaign_id, b.key, b.members, s.cost,
                   s.cost * b.members / sum(b.members) OVER (PARTITION BY b.campaign_id) AS exact
            FROM brought b JOIN spend s ON s.campaign_id = b.campaign_id
        ), cents AS (
            SELECT campaign_id, key, floor(exact * 100) / 100 AS base,
                   row_number() OVER (PARTITION BY campaign_id
                                      ORDER BY exact - floor(exact * 100) / 100 DESC, members DESC, key) AS place,
                   round((cost - sum(floor(exact * 100) / 100) OVER (PARTITION BY campaign_id)) * 100) AS left_over
            FROM shares
        ), attributed AS (
            SELECT key, sum(base + CASE WHEN place <= left_over THEN 0.01 ELSE 0 END) AS cost
            FROM cents GROUP BY key
        )
        SELECT coalesce(n.key, a.key), coalesce(n.leads, 0), coalesce(n.mqls, 0), coalesce(n.sqls, 0),
               coalesce(n.deals, 0), coalesce(n.won, 0), coalesce(a.cost, 0)
        FROM counted n FULL JOIN attributed a ON a.key = n.key
        ORDER BY 1
    """
    params = {"org": organization_id, "since": since, "until": until, "start": start, "end": end,
              "won": DealStatus.WON}
    with replica.connection().cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    return [_performance({"key": key, "label": key, "leads": leads, "mqls": mqls, "sqls": sqls,
                         "deals": int(deals)},  # sum() of counts is numeric in PostgreSQL
                         Decimal(cost), Decimal(won))
            for key, leads, mqls, sqls, deals, won, cost in found]


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
        ), joined AS (
            SELECT m.campaign_id, m.lead_id, m.joined_at, l.reached_rank
            FROM {member} m JOIN {lead} l ON l.id = m.lead_id AND l.organization_id = m.organization_id
            WHERE m.organization_id = %(org)s AND m.joined_at >= %(since)s AND m.joined_at < %(until)s
        ), counts AS (
            SELECT campaign_id, count(*) AS leads, count(*) FILTER (WHERE {_reached_sql("joined", _S.MQL)}) AS mqls,
                   count(*) FILTER (WHERE {_reached_sql("joined", _S.SQL)}) AS sqls
            FROM joined GROUP BY campaign_id
        ), deals AS (
            SELECT j.campaign_id, count(*) AS deals
            FROM joined j JOIN {deal} d ON d.organization_id = %(org)s AND d.lead_id = j.lead_id
                                       AND d.created_at >= j.joined_at
            GROUP BY j.campaign_id
        ), costs AS (
            SELECT campaign_id, sum(amount) AS cost FROM {CampaignCost._meta.db_table}
            WHERE organization_id = %(org)s AND date >= %(start)s AND date <= %(end)s GROUP BY campaign_id
        )
        SELECT c.id, c.name, coalesce(n.leads, 0), coalesce(n.mqls, 0), coalesce(n.sqls, 0), coalesce(k.deals, 0),
               coalesce(x.cost, 0), coalesce(r.{attribution}, 0)
        FROM {Campaign._meta.db_table} c
        LEFT JOIN counts n ON n.campaign_id = c.id
        LEFT JOIN deals k ON k.campaign_id = c.id
        LEFT JOIN costs x ON x.campaign_id = c.id
        LEFT JOIN credit r ON r.campaign_id = c.id AND r.currency = c.currency
        WHERE c.organization_id = %(org)s
        ORDER BY c.name, c.id
    """
    params = {"org": organization_id, "since": since, "until": until, "start": start, "end": end,
              "won": DealStatus.WON}
    with replica.connection().cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    return [_performance({"key": str(pk), "label": name, "leads": leads, "mqls": mqls, "sqls": sqls,
                          "deals": int(deals)}, Decimal(cost), Decimal(revenue))
            for pk, name, leads, mqls, sqls, deals, cost, revenue in found]


# --- 6. score calibration

CALIBRATION_COLUMNS = [("key", "str"), ("label", "str"), ("leads", "int"), ("reached_sql", "int"),
                       ("sql_rate", "float"), ("won", "int"), ("won_rate", "float"), ("base_rate", "float"),
                       ("lift", "float")]
NO_PROBABILITY = "No probability yet"


def score_calibration(organization_id, *, start, end, breakdown="band") -> list[dict]:
    """Leads created in the range by score band of ten points (their score now; key = the band's lowest score),
    by grade, by predictive band (A–E, from the conversion model), or by scoring rule (the leads each rule adds to
    or takes from now, every rule of the org listed): how many reached sql and how many have a won deal, and those
    as rates; beside them the base rate (the win rate of all the leads created in the range) and each row's lift
    over it (its win rate / the base rate: 2.0 wins twice as often as the average lead)."""
    since, until = time_range(start, end)
    leads = Lead.objects.for_org(organization_id).filter(created_at__gte=since, created_at__lt=until)
    # IN (…) rather than EXISTS: PostgreSQL hashes the won deals' lead ids once instead of probing per lead
    has_won = Q(pk__in=Deal.objects.for_org(organization_id).filter(status=DealStatus.WON).values("lead_id"))
    aggregates = {"leads": Count("pk"), "reached_sql": Count("pk", filter=reached(_S.SQL)),
                  "won": Count("pk", filter=has_won)}
    if breakdown == "rule":
        rows = _calibration_by_rule(organization_id, since=since, until=until)
        totals = leads.aggregate(leads=aggregates["leads"], won=aggregates["won"])
        return _with_lift(rows, won=totals["won"], leads=totals["leads"])
    band = Func(F("score"), template="(floor(%(expressions)s / 10.0) * 10)::int", output_field=IntegerField())
    keys = {"band": (band, band), "grade": (F("grade"), F("grade")),
            "predictive_band": (F("predictive_band"), F("predictive_band"))}
    rows = _grouped(leads, breakdown, keys, aggregates)
    if breakdown == "band":
        rows.sort(key=lambda row: int(row["key"]))
    for row in rows:
        if breakdown == "band":
            row["label"] = f"{row['key']} to {int(row['key']) + 9}"
        elif breakdown == "predictive_band" and not row["key"]:
            row["key"], row["label"] = "", NO_PROBABILITY
    if breakdown == "predictive_band":  # A (likeliest) first, the leads without a probability last
        rows.sort(key=lambda row: (not row["key"], row["key"]))
    return _with_lift([_calibration_row(row) for row in rows], won=sum(row["won"] for row in rows),
                      leads=sum(row["leads"] for row in rows))


def _with_lift(rows: list[dict], *, won: int, leads: int) -> list[dict]:
    """Each row's base rate (`won` of `leads`, all the leads of the range) and its win rate's lift over it."""
    for row in rows:
        row["base_rate"] = _rate(won, leads)
        row["lift"] = round(row["won"] * leads / (row["leads"] * won), 2) if won and row["leads"] else None
    return rows


def _calibration_row(row: dict) -> dict:
    row = {**row, "sql_rate": _rate(row["reached_sql"], row["leads"]), "won_rate": _rate(row["won"], row["leads"]),
           "base_rate": None, "lift": None}
    return {name: row[name] for name, _ in CALIBRATION_COLUMNS}


def _calibration_by_rule(organization_id, *, since, until) -> list[dict]:
    sql = f"""
        WITH leads AS (
            SELECT l.score_rules, {_reached_sql("l", _S.SQL)} AS reached_sql, w.lead_id IS NOT NULL AS won
            FROM {Lead._meta.db_table} l
            LEFT JOIN (SELECT DISTINCT lead_id FROM {Deal._meta.db_table}
                       WHERE organization_id = %(org)s AND status = %(won)s AND lead_id IS NOT NULL) w
                   ON w.lead_id = l.id
            WHERE l.organization_id = %(org)s AND l.created_at >= %(since)s AND l.created_at < %(until)s
              AND l.score_rules <> '{{}}'
        ), hits AS (
            SELECT rule_id, count(*) AS leads, count(*) FILTER (WHERE reached_sql) AS reached_sql,
                   count(*) FILTER (WHERE won) AS won
            FROM leads CROSS JOIN LATERAL unnest(score_rules) AS rule_id
            GROUP BY rule_id
        )
        SELECT r.id, r.name, r.kind, r.points, coalesce(h.leads, 0), coalesce(h.reached_sql, 0), coalesce(h.won, 0)
        FROM {ScoringRule._meta.db_table} r LEFT JOIN hits h ON h.rule_id = r.id
        WHERE r.organization_id = %(org)s
        ORDER BY r.kind DESC, r.name, r.id  -- fit rules first, as on the scoring page
    """
    params = {"org": organization_id, "since": since, "until": until, "won": DealStatus.WON}
    with replica.connection().cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    return [_calibration_row({"key": str(pk), "label": f"{name} ({kind}, {points:+d})", "leads": leads,
                              "reached_sql": reached_sql, "won": won})
            for pk, name, kind, points, leads, reached_sql, won in found]


# --- 8. forecast and pipeline (deal stages)

FORECAST_BREAKDOWNS = ("owner", "month")
FORECAST_COLUMNS = [("key", "str"), ("label", "str"), ("month", "str"), ("owner", "str"), ("currency", "str"),
                    ("open_deals", "int"), ("pipeline", "money"), ("weighted", "money"), ("won_deals", "int"),
                    ("won", "money")]


def forecast(organization_id, *, start, end, breakdown="owner", pipeline_id=None) -> list[dict]:
    """By month (and, with the owner breakdown, by owner) and currency: open deals expected to close in the month
    (`open_deals`, their `pipeline` amount and `weighted` = Σ amount × the stage's probability / 100, to the cent
    per row), against deals won in the month (`won_deals`, `won`, by close date). Months of [start, end] that have
    any; one statement."""
    since, until = time_range(start, end)
    by_owner = breakdown != "month"
    owner = "d.owner_id" if by_owner else "NULL::integer"
    pipeline = "AND d.pipeline_id = %(pipeline)s" if pipeline_id else ""
    user_table = get_user_model()._meta.db_table
    sql = f"""
        WITH rows AS (
            SELECT date_trunc('month', d.expected_close)::date AS month, {owner} AS owner_id, d.currency,
                   1 AS open_deals, d.amount AS pipeline, d.amount * s.probability / 100.0 AS weighted,
                   0 AS won_deals, 0 AS won
            FROM leads_deal d JOIN leads_stage s ON s.organization_id = %(org)s AND s.id = d.stage_id
            WHERE d.organization_id = %(org)s AND d.status = 'open' {pipeline}
              AND d.expected_close >= %(start)s AND d.expected_close <= %(end)s
            UNION ALL
            SELECT date_trunc('month', d.closed_at AT TIME ZONE %(tz)s)::date, {owner}, d.currency,
                   0, 0, 0, 1, d.amount
            FROM leads_deal d
            WHERE d.organization_id = %(org)s AND d.status = 'won' {pipeline}
              AND d.closed_at >= %(since)s AND d.closed_at < %(until)s
        )
        SELECT r.month, r.owner_id, u.email, r.currency, sum(r.open_deals), sum(r.pipeline), sum(r.weighted),
               sum(r.won_deals), sum(r.won)
        FROM rows r LEFT JOIN {user_table} u ON u.id = r.owner_id
        GROUP BY r.month, r.owner_id, u.email, r.currency
        ORDER BY r.month, u.email NULLS LAST, r.currency
    """
    params = {"org": organization_id, "start": start, "end": end, "since": since, "until": until,
              "tz": timezone.get_current_timezone_name(), "pipeline": pipeline_id}
    with replica.connection().cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    rows = []
    for month, owner_id, email, currency, open_deals, amount, weighted, won_deals, won in found:
        label = f"{month:%Y-%m}" + (f" · {email or 'no owner'}" if by_owner else "")
        rows.append({"key": f"{month:%Y-%m}" + (f":{owner_id or ''}" if by_owner else ""), "label": label,
                     "month": f"{month:%Y-%m}", "owner": (email or "") if by_owner else None, "currency": currency,
                     "open_deals": open_deals, "pipeline": _money(amount), "weighted": _money(weighted),
                     "won_deals": won_deals, "won": _money(won)})
    return rows


PIPELINE_COLUMNS = [("key", "str"), ("label", "str"), ("probability", "int"), ("deals_now", "int"),
                    ("entered", "int"), ("moved_on", "int"), ("conversion_rate", "float"), ("lost", "int"),
                    ("avg_days_in_stage", "float")]


def pipeline_stages(organization_id, *, start, end, pipeline_id) -> list[dict]:
    """Per stage of the pipeline, in order: `deals_now` (open deals in it now); over the stays that began in
    [start, end]: `entered` (deals), `moved_on` (of those, deals that later reached a further stage that is not
    lost), `conversion_rate` = moved_on / entered (none for won and lost stages), `lost` (of those, deals that
    went on to be lost), and `avg_days_in_stage` (each stay until it ended, or until now). One statement."""
    since, until = time_range(start, end)
    sql = """
        WITH stays AS (
            SELECT h.deal_id, h.stage_id, h.entered_at, coalesce(h.left_at, now()) AS until_at
            FROM leads_dealstagechange h
            WHERE h.organization_id = %(org)s AND h.entered_at >= %(since)s AND h.entered_at < %(until)s
        ),
        later AS (
            SELECT st.deal_id, st.stage_id,
                   bool_or(ls.position > s.position AND ls.kind <> 'lost') AS moved_on,
                   bool_or(ls.kind = 'lost') AS lost
            FROM stays st
            JOIN leads_stage s ON s.organization_id = %(org)s AND s.id = st.stage_id
            JOIN leads_dealstagechange n ON n.organization_id = %(org)s AND n.deal_id = st.deal_id
              AND n.entered_at > st.entered_at
            JOIN leads_stage ls ON ls.organization_id = %(org)s AND ls.id = n.stage_id
            GROUP BY st.deal_id, st.stage_id
        )
        SELECT s.id, s.name, s.probability, s.kind,
               (SELECT count(*) FROM leads_deal d WHERE d.organization_id = %(org)s AND d.stage_id = s.id
                  AND d.status = 'open'),
               count(DISTINCT st.deal_id),
               count(DISTINCT l.deal_id) FILTER (WHERE l.moved_on),
               count(DISTINCT l.deal_id) FILTER (WHERE l.lost),
               avg(EXTRACT(EPOCH FROM st.until_at - st.entered_at) / 86400.0)
        FROM leads_stage s
        LEFT JOIN stays st ON st.stage_id = s.id
        LEFT JOIN later l ON l.deal_id = st.deal_id AND l.stage_id = s.id
        WHERE s.organization_id = %(org)s AND s.pipeline_id = %(pipeline)s
        GROUP BY s.id, s.name, s.probability, s.kind, s.position
        ORDER BY s.position
    """
    with replica.connection().cursor() as cursor:
        cursor.execute(sql, {"org": organization_id, "since": since, "until": until, "pipeline": pipeline_id})
        found = cursor.fetchall()
    return [{"key": str(stage_id), "label": name, "probability": probability, "deals_now": now,
             "entered": entered, "moved_on": moved_on,
             "conversion_rate": _rate(moved_on, entered) if kind == "open" else None, "lost": lost,
             "avg_days_in_stage": _num(days, 2)}
            for stage_id, name, probability, kind, now, entered, moved_on, lost, days in found]
