"""Reads of scoring: why a lead has its score, its score over time, and what a draft rule would change."""

from django.db import connection, transaction

from leadcrm import rls
from leads.services import MQL_FROM_STAGES

from .calculation import PLAN_FOR_SETS, Config, contributions_sql, scored_leads_sql
from .models import ScoreSnapshot

# Score histogram bins: below 0, ten bins of ten points, 100 and above.
HISTOGRAM_LABELS = ["< 0", *(f"{low}–{low + 9}" for low in range(0, 100, 10)), "≥ 100"]
_BIN = "least(greatest(floor({0} / 10.0)::int + 1, 0), 11)"


def score_explanation(lead, config: Config) -> list[dict]:
    """Each rule that contributes to the lead's score: {rule, name, kind, points, count}, biggest effect first."""
    contrib, params = contributions_sql(lead.organization_id, config, {"id": lead.pk})
    rules = config.ordered_rules
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(PLAN_FOR_SETS)
        cursor.execute(f"WITH {contrib} SELECT idx, points, matches FROM contrib", params)
        rows = cursor.fetchall()
    contributions = [
        {"rule": rules[idx].id, "name": rules[idx].name, "kind": rules[idx].kind, "points": round(points),
         "count": matches}
        for idx, points, matches in rows
    ]
    return sorted(contributions, key=lambda row: (-abs(row["points"]), row["name"]))


def score_history(lead, limit: int = 200) -> list[dict]:
    """The lead's score after each change, oldest first (the latest `limit` changes)."""
    snapshots = (ScoreSnapshot.objects.for_org(lead.organization_id).filter(lead=lead)
                 .order_by("-recorded_at").values("recorded_at", "score", "fit_score", "behavior_score")[:limit])
    return list(reversed(snapshots))


def preview(organization_id, config: Config) -> dict:
    """What scoring the org with `config` would change, compared with the stored scores; changes nothing.

    One aggregate query over the org: counts of leads whose score goes up or down, whose grade changes, that
    would become MQL, and the score histogram before and after.
    """
    scored, params = scored_leads_sql(organization_id, config, {})
    sql = f"""
        WITH {scored},
        bins AS (SELECT {_BIN.format("old_score")} AS before_bin, {_BIN.format("score")} AS after_bin FROM scored)
        SELECT
            (SELECT count(*) FROM scored),
            (SELECT count(*) FROM scored WHERE score > old_score),
            (SELECT count(*) FROM scored WHERE score < old_score),
            (SELECT count(*) FROM scored WHERE grade <> old_grade),
            (SELECT count(*) FROM scored
             WHERE stage = ANY(%s) AND score >= %s AND grade = ANY(%s)),
            (SELECT array_agg(coalesce(n, 0) ORDER BY b) FROM generate_series(0, 11) b
             LEFT JOIN (SELECT before_bin, count(*) AS n FROM bins GROUP BY 1) x ON x.before_bin = b),
            (SELECT array_agg(coalesce(n, 0) ORDER BY b) FROM generate_series(0, 11) b
             LEFT JOIN (SELECT after_bin, count(*) AS n FROM bins GROUP BY 1) y ON y.after_bin = b)
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(PLAN_FOR_SETS)
        cursor.execute(sql, [*params, list(MQL_FROM_STAGES), config.mql_score, config.mql_grades()])
        total, gain, lose, grade_changes, new_mqls, before, after = cursor.fetchone()
    return {
        "leads": total,
        "score_changes": gain + lose,
        "gain_points": gain,
        "lose_points": lose,
        "grade_changes": grade_changes,
        "new_mqls": new_mqls,
        "histogram": {"labels": HISTOGRAM_LABELS, "before": before, "after": after},
    }


# ----------------------------------------------------------------------------------------------- finding the org
# The beat's sweeps, through the SECURITY DEFINER functions of migration 0002 (leadcrm/rls.py).


def organizations_behind() -> list:
    """Orgs whose stored scores are behind their rules."""
    return rls.lookup_ids("scoring_organizations_behind")


def organizations_with_windows() -> list:
    """Orgs without decay (those are re-scored whole each night) that have an active rule counting a window."""
    return rls.lookup_ids("scoring_organizations_with_windows")


def organizations_with_decay() -> list:
    return rls.lookup_ids("scoring_organizations_with_decay")
