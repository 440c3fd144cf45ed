"""How a score is computed, as one SQL statement over any set of leads.

The same statement scores one lead (instant scoring), a chunk of an org (bulk recalculation) or a whole org
with draft rules (preview), so all three agree by construction. Per lead:

- each active fit rule whose condition matches the lead adds its points once;
- each active behaviour rule adds its points for every matching activity (inside its window), counting at most
  `max_occurrences` of the most recent ones, each weighted by 0.5 ** (age in days / half-life) when decay is on;
- fit_gained / fit_lost / behavior_gained / behavior_lost are the positive and negative sums (behaviour rounded),
  fit_score and behavior_score their totals, score = fit_score + behavior_score;
- grade comes from fit_score through the org's bands, temperature from score through its bands.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from leads.conditions import activity_q, as_boolean, lead_q
from leads.models import Activity, Grade, Lead

GRADES_BEST_FIRST = [Grade.A, Grade.B, Grade.C, Grade.D, Grade.F]
# The statements join sets of leads to sets of matches; with stale statistics (fresh tables, just-imported
# rows) the planner may pick a nested loop that re-runs the match scan for every lead. Hash joins are right
# for every size here, so rule the nested loop out for the transaction. (JIT, which that rule's huge cost
# estimates would switch on, is off for the app's connections: see DATABASES in settings.)
PLAN_FOR_SETS = "SET LOCAL enable_nestloop = off"
PLAN_AS_USUAL = "SET LOCAL enable_nestloop = on"


@dataclass(frozen=True)
class Rule:
    """What the calculation needs of a rule (a saved ScoringRule or a draft under preview)."""

    id: object
    name: str
    kind: str
    points: int
    condition: dict
    max_occurrences: int | None = None
    window_days: int | None = None


@dataclass
class Config:
    rules: list[Rule]
    grade_bands: dict
    temperature_bands: dict
    mql_score: int
    mql_min_grade: str
    decay_half_life_days: int | None
    now: datetime = field(default_factory=timezone.now)
    predictive: dict | None = None  # the org's fitted conversion model (scoring/predictive.py), if it has one
    # The MQL threshold on conversion_probability when the org hands off by probability and its model may be used
    # for that (services.handoff); None: score and grade decide.
    mql_probability: Decimal | None = None

    @property
    def fit_rules(self) -> list[Rule]:
        return [rule for rule in self.rules if rule.kind == "fit"]

    @property
    def behavior_rules(self) -> list[Rule]:
        return [rule for rule in self.rules if rule.kind == "behavior"]

    @property
    def ordered_rules(self) -> list[Rule]:
        """The rules in the order of their index in the SQL (fit first)."""
        return self.fit_rules + self.behavior_rules

    def mql_grades(self) -> list[str]:
        return GRADES_BEST_FIRST[: GRADES_BEST_FIRST.index(self.mql_min_grade) + 1]

    def meets_mql(self) -> Q:
        if self.mql_probability is not None:
            return Q(conversion_probability__gte=self.mql_probability)
        return Q(score__gte=self.mql_score, grade__in=self.mql_grades())


def _subquery(queryset):
    sql, params = queryset.query.sql_with_params()
    return sql, list(params)


def _rule_values(rules: list[Rule], first_index: int, flag_alias: str, with_cap: bool):
    """A VALUES list with one row per rule: (index, points[, cap], the rule's match flag of this row)."""
    rows, params = [], []
    for offset, rule in enumerate(rules):
        index = first_index + offset
        if with_cap:
            rows.append(f"(%s::int, %s::float8, %s::int, {flag_alias}.r{index})")
            params += [index, rule.points, rule.max_occurrences]
        else:
            rows.append(f"(%s::int, %s::float8, {flag_alias}.r{index})")
            params += [index, rule.points]
    return ", ".join(rows), params


def contributions_sql(organization_id, config: Config, scope: dict) -> tuple[str, list]:
    """CTEs ending in `contrib(lead_id, idx, kind, points, matches)` for the leads `scope` selects
    (lookups on Lead.id: `{"id": x}`, `{"id__gte": lo, "id__lte": hi}` or `{}` for the whole org)."""
    ctes, params = [], []
    fit_rules, behavior_rules = config.fit_rules, config.behavior_rules

    if fit_rules:
        flags = {f"r{i}": as_boolean(lead_q(rule.condition)) for i, rule in enumerate(fit_rules)}
        leads = Lead.objects.for_org(organization_id).filter(**scope).annotate(**flags).values_list("id", *flags)
        leads_sql, leads_params = _subquery(leads)
        values, values_params = _rule_values(fit_rules, 0, "f", with_cap=False)
        ctes.append(
            f"fit AS (SELECT f.id AS lead_id, m.idx, m.points, 1 AS matches FROM ({leads_sql}) f "
            f"CROSS JOIN LATERAL (VALUES {values}) m(idx, points, hit) WHERE m.hit)"
        )
        params += leads_params + values_params
    else:
        ctes.append("fit AS (SELECT NULL::uuid AS lead_id, 0 AS idx, 0::float8 AS points, 0 AS matches WHERE false)")

    if behavior_rules:
        first = len(fit_rules)
        flags = {}
        for offset, rule in enumerate(behavior_rules):
            q = activity_q(rule.condition)
            if rule.window_days is not None:
                q &= Q(occurred_at__gte=config.now - timedelta(days=rule.window_days))
            flags[f"r{first + offset}"] = as_boolean(q)
        types = sorted({rule.condition["activity_type"] for rule in behavior_rules})
        activities = (
            Activity.objects.for_org(organization_id)
            .filter(type__in=types, **{f"lead_{key}": v for key, v in scope.items()})
            .annotate(**flags).values_list("lead_id", "occurred_at", *flags)
        )
        activities_sql, activities_params = _subquery(activities)
        values, values_params = _rule_values(behavior_rules, first, "a", with_cap=True)
        if config.decay_half_life_days:
            weight = ("power(0.5::float8, greatest(0, extract(epoch FROM (%s::timestamptz - occurred_at)))"
                      " / 86400.0 / %s)")
            weight_params = [config.now, config.decay_half_life_days]
        else:
            weight, weight_params = "1", []
        ctes.append(
            f"hits AS (SELECT a.lead_id, m.idx, m.points, m.cap, a.occurred_at, "
            f"row_number() OVER (PARTITION BY a.lead_id, m.idx ORDER BY a.occurred_at DESC) AS n "
            f"FROM ({activities_sql}) a CROSS JOIN LATERAL (VALUES {values}) m(idx, points, cap, hit) WHERE m.hit)"
        )
        ctes.append(
            f"behavior AS (SELECT lead_id, idx, sum(points * {weight}) AS points, count(*) AS matches "
            f"FROM hits WHERE cap IS NULL OR n <= cap GROUP BY lead_id, idx)"
        )
        params += activities_params + values_params + weight_params
    else:
        ctes.append("behavior AS (SELECT NULL::uuid AS lead_id, 0 AS idx, 0::float8 AS points, 0::bigint AS matches "
                    "WHERE false)")

    ctes.append(
        "contrib AS (SELECT lead_id, idx, 'fit' AS kind, points, matches FROM fit "
        "UNION ALL SELECT lead_id, idx, 'behavior' AS kind, points, matches FROM behavior)"
    )
    return ",\n".join(ctes), params


def _band_case(column: str, bands: list[tuple[str, int]], otherwise: str) -> tuple[str, list]:
    whens = " ".join(f"WHEN {column} >= %s THEN %s" for _ in bands)
    params = [value for label, low in bands for value in (low, label)]
    return f"CASE {whens} ELSE %s END", [*params, otherwise]


def scored_leads_sql(organization_id, config: Config, scope: dict) -> tuple[str, list]:
    """CTEs ending in `scored`: per lead in scope its new numbers beside the stored ones (old_*)."""
    contrib, params = contributions_sql(organization_id, config, scope)
    leads = Lead.objects.for_org(organization_id).filter(**scope).values_list(
        "id", "score", "grade", "temperature", "lifecycle_stage")
    leads_sql, leads_params = _subquery(leads)
    grade_case, grade_params = _band_case(
        "fit_score", [(grade, config.grade_bands[grade]) for grade in "ABCD"], Grade.F)
    temperature_case, temperature_params = _band_case(
        "score", [("hot", config.temperature_bands["hot"]), ("warm", config.temperature_bands["warm"])], "cold")
    sql = f"""{contrib},
sums AS (
    SELECT l.id, l.score AS old_score, l.grade AS old_grade, l.temperature AS old_temperature,
           l.lifecycle_stage AS stage,
           coalesce(sum(c.points) FILTER (WHERE c.kind = 'fit' AND c.points > 0), 0)::int AS fit_gained,
           coalesce(sum(c.points) FILTER (WHERE c.kind = 'fit' AND c.points < 0), 0)::int AS fit_lost,
           round(coalesce(sum(c.points) FILTER (WHERE c.kind = 'behavior' AND c.points > 0), 0)::numeric)::int
               AS behavior_gained,
           round(coalesce(sum(c.points) FILTER (WHERE c.kind = 'behavior' AND c.points < 0), 0)::numeric)::int
               AS behavior_lost,
           coalesce(array_agg(DISTINCT (%s::uuid[])[c.idx + 1] ORDER BY (%s::uuid[])[c.idx + 1])
                    FILTER (WHERE (%s::uuid[])[c.idx + 1] IS NOT NULL), '{{}}') AS score_rules
    FROM ({leads_sql}) l LEFT JOIN contrib c ON c.lead_id = l.id
    GROUP BY l.id, l.score, l.grade, l.temperature, l.lifecycle_stage
),
totals AS (
    SELECT s.*, s.fit_gained + s.fit_lost AS fit_score, s.behavior_gained + s.behavior_lost AS behavior_score,
           s.fit_gained + s.fit_lost + s.behavior_gained + s.behavior_lost AS score
    FROM sums s
),
scored AS (
    SELECT t.*, {grade_case} AS grade, {temperature_case} AS temperature FROM totals t
)"""
    # a draft rule under preview has no id yet: it is left out of score_rules
    rule_ids = [str(rule.id) if rule.id else None for rule in config.ordered_rules]
    return sql, params + [rule_ids] * 3 + leads_params + grade_params + temperature_params
