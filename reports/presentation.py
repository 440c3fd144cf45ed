"""How the report pages show the rows the API answers: headings a person reads ("MQL", "Capture → MQL, 90th
percentile"), the format of each column (a count, money, a share, a duration), each report's chart and its empty
state. The API and CSV keep the machine keys and values; only the pages use this module."""

from decimal import Decimal

from leads.models import SourceType

# Breakdown and attribution choices as the forms name them.
BREAKDOWN_LABELS = {
    "source_type": "Source type", "source": "Source", "campaign": "Campaign (UTM)", "owner": "Owner",
    "team": "Team", "segment": "In or out of a segment", "rep": "Rep", "lost_reason": "Lost reason",
    "band": "Score band", "grade": "Grade", "predictive_band": "Predictive band", "rule": "Scoring rule",
    "month": "Month",
}
ATTRIBUTION_LABELS = {"first_touch": "First touch", "last_touch": "Last touch", "linear": "Linear (equal shares)"}

_STAGES = {"mql": "MQL", "sal": "SAL", "sql": "SQL", "opportunity": "Opportunity", "customer": "Customer"}
_STEPS = {"capture_to_mql": "Capture → MQL", "mql_to_assigned": "MQL → assigned",
          "assigned_to_touch": "Assigned → first touch", "capture_to_touch": "Capture → first touch"}
_STATS = {"median": "median", "p90": "90th percentile", "mean": "mean"}


def _funnel_labels():
    labels, previous = {"leads": "Leads"}, "Lead"
    for stage, name in _STAGES.items():
        labels[stage] = name
        labels[f"{stage}_rate"] = f"{previous} → {name}"
        previous = name
    return labels


_PERFORMANCE = {"mqls": "MQLs", "sqls": "SQLs", "deals": "Deals", "won_revenue": "Won revenue",
                "cost_per_lead": "Cost per lead", "cost_per_mql": "Cost per MQL", "roi": "ROI"}

COLUMN_LABELS = {
    "funnel": _funnel_labels(),
    "speed-to-lead": {
        "leads": "Routed leads", "touched": "Touched", "with_sla": "With an SLA", "within_sla": "Touched within SLA",
        "within_sla_rate": "Share within SLA",
        **{f"{step}_{stat}_minutes": f"{name}, {_STATS[stat]}" for step, name in _STEPS.items()
           for stat in ("median", "p90")}},
    "sales-cycle": {
        "won": "Won", "lost": "Lost",
        **{f"{span}_days_{stat}": f"{name}, {label}"
           for span, name in (("created_to_won", "Created → won"), ("mql_to_won", "MQL → won"))
           for stat, label in _STATS.items()}},
    "reps": {"assigned": "Assigned", "within_sla": "Touched within SLA", "accepted": "Accepted (SAL)",
             "qualified": "Qualified (SQL)", "converted": "Converted (opportunity)", "won": "Deals won",
             "close_rate": "Close rate", "revenue": "Revenue"},
    "sources": {"leads": "Leads", "cost": "Campaign cost (shared)", **_PERFORMANCE},
    "campaigns": {"leads": "Members joined", "cost": "Cost", **_PERFORMANCE},
    "score-calibration": {"leads": "Leads", "reached_sql": "Reached SQL", "sql_rate": "SQL rate", "won": "Won",
                          "won_rate": "Win rate", "base_rate": "Base win rate", "lift": "Lift (× base)"},
    "forecast": {"month": "Month", "owner": "Owner", "currency": "Currency", "open_deals": "Open deals",
                 "pipeline": "Pipeline", "weighted": "Weighted pipeline", "won_deals": "Deals won", "won": "Won"},
    "pipeline": {"probability": "Win probability (%)", "deals_now": "Open deals now", "entered": "Entered",
                 "moved_on": "Moved on", "conversion_rate": "Stage conversion", "lost": "Then lost",
                 "avg_days_in_stage": "Average time in stage"},
}

# The heading of the first column: what a row is.
_ROW_NAMES = {"reps": "Rep", "campaigns": "Campaign", "forecast": "Month · owner", "pipeline": "Stage"}
_SEGMENT_SIDES = {"in": "In the segment", "out": "Not in the segment"}


def row_heading(name, breakdown) -> str:
    return _ROW_NAMES.get(name) or BREAKDOWN_LABELS.get(breakdown) or "Group"


def column_format(column: str, kind: str) -> tuple[str, str]:
    """(format, unit) of a column for the `report_cell` template filter."""
    if column.endswith("_minutes"):
        return "duration", "minutes"
    if "_days_" in column:
        return "duration", "days"
    if kind == "float" and (column.endswith("_rate") or column == "roi"):
        return "percent", ""
    if kind == "money":
        return "money", ""
    if kind in ("int", "float"):
        return "number", ""
    return "text", ""


def table(name, columns, rows, breakdown, currency_of):
    """Header and body of a report's table; each cell is {value, format, unit, currency}. `currency_of(row)` names
    a row's currency."""
    shown = [(column, kind) for column, kind in columns if column not in ("key", "label")]
    labels = COLUMN_LABELS[name]
    header = [row_heading(name, breakdown)] + [labels.get(column, column) for column, _ in shown]
    formats = [column_format(column, kind) for column, kind in shown]
    body = []
    for row in rows:
        currency = currency_of(row)
        cells = [{"value": row[column], "format": fmt, "unit": unit, "currency": currency}
                 for (column, _), (fmt, unit) in zip(shown, formats, strict=True)]
        body.append({"label": row_label(row, breakdown), "cells": cells})
    return header, body


def row_label(row, breakdown) -> str:
    if breakdown == "segment":
        return _SEGMENT_SIDES.get(row["label"], row["label"])
    if breakdown == "source_type" and row["label"] in SourceType.values:
        return SourceType(row["label"]).label
    return row["label"] or "(none)"


# --- charts: {type, labels, datasets} for static/js/app.js, at most MAX_BARS groups

MAX_BARS = 12
GREY, BLUE, GREEN, ORANGE = "#8e9aaf", "#1e88e5", "#2e7d32", "#ef6c00"


def _series(label, values, colour):
    return {"label": label, "data": values, "backgroundColor": colour, "borderColor": colour}


def _hours(minutes):
    return None if minutes is None else round(minutes / 60, 1)


def _percent(rate):
    return None if rate is None else round(rate * 100, 1)


def _money(value):
    return float(Decimal(value)) if value is not None else None


def chart(name, rows, breakdown) -> dict | None:
    """The chart of a report's rows (None without rows); its description goes in the figure's caption."""
    if not rows:
        return None
    rows = rows[:MAX_BARS]
    labels = [row_label(row, breakdown) for row in rows]
    if name == "funnel":
        if len(rows) == 1:
            [row] = rows
            return {"type": "bar", "labels": ["Leads", *_STAGES.values()],
                    "datasets": [_series("Leads", [row["leads"]] + [row[stage] for stage in _STAGES], BLUE)],
                    "caption": "Leads created in the range and how many reached each stage."}
        return {"type": "bar", "labels": labels,
                "datasets": [_series("Leads", [row["leads"] for row in rows], GREY),
                             _series("MQL", [row["mql"] for row in rows], BLUE),
                             _series("SQL", [row["sql"] for row in rows], GREEN),
                             _series("Customer", [row["customer"] for row in rows], ORANGE)],
                "caption": "Leads, MQLs, SQLs and customers of each group."}
    if name == "speed-to-lead":
        if len(rows) == 1:
            [row] = rows
            return {"type": "bar", "labels": list(_STEPS.values()),
                    "datasets": [_series("Median (hours)", [_hours(row[f"{step}_median_minutes"]) for step in _STEPS],
                                         BLUE),
                                 _series("90th percentile (hours)",
                                         [_hours(row[f"{step}_p90_minutes"]) for step in _STEPS], GREY)],
                    "caption": "Hours each step took: the median lead and the slowest tenth."}
        return {"type": "bar", "labels": labels,
                "datasets": [_series("Capture → first touch, median (hours)",
                                     [_hours(row["capture_to_touch_median_minutes"]) for row in rows], BLUE),
                             _series("Share within SLA (%)", [_percent(row["within_sla_rate"]) for row in rows],
                                     GREEN)],
                "caption": "Hours from capture to first touch (median) and the share touched within the SLA."}
    if name == "sales-cycle":
        return {"type": "bar", "labels": labels,
                "datasets": [_series("Won", [row["won"] for row in rows], GREEN),
                             _series("Lost", [row["lost"] for row in rows], GREY)],
                "caption": "Deals won and lost in the range."}
    if name == "reps":
        return {"type": "bar", "labels": labels,
                "datasets": [_series("Assigned", [row["assigned"] for row in rows], GREY),
                             _series("Deals won", [row["won"] for row in rows], BLUE)],
                "caption": "Leads assigned to each rep in the range and deals won of them."}
    if name == "sources":
        return {"type": "bar", "labels": labels,
                "datasets": [_series("Leads", [row["leads"] for row in rows], GREY),
                             _series("MQLs", [row["mqls"] for row in rows], BLUE)],
                "caption": "Leads and MQLs of each source."}
    if name == "forecast":
        return {"type": "bar", "labels": [f"{row['label']} ({row['currency']})" for row in rows],
                "datasets": [_series("Weighted pipeline", [_money(row["weighted"]) for row in rows], BLUE),
                             _series("Won", [_money(row["won"]) for row in rows], GREEN),
                             _series("Pipeline", [_money(row["pipeline"]) for row in rows], GREY)],
                "caption": "Each month's open deals weighted by their stage's win probability, against deals won, "
                           "in each row's currency."}
    if name == "pipeline":
        return {"type": "bar", "labels": labels,
                "datasets": [_series("Stage conversion (%)", [_percent(row["conversion_rate"]) for row in rows],
                                     BLUE),
                             _series("Average days in stage", [row["avg_days_in_stage"] for row in rows], GREY)],
                "caption": "The share of deals that moved on from each stage, and how long they stayed in it."}
    if name == "campaigns":
        return {"type": "bar", "labels": labels,
                "datasets": [_series("Cost", [_money(row["cost"]) for row in rows], GREY),
                             _series("Won revenue", [_money(row["won_revenue"]) for row in rows], GREEN)],
                "caption": "What each campaign cost and the won revenue credited to it, in its own currency."}
    return {"type": "bar", "labels": labels,
            "datasets": [_series("SQL rate (%)", [_percent(row["sql_rate"]) for row in rows], GREY),
                         _series("Win rate (%)", [_percent(row["won_rate"]) for row in rows], BLUE)],
            "caption": "Share of leads that reached SQL and that won: higher scores should win more often."}


# --- empty states: when the report has nothing to show, and what to do about it

_COUNTED = {"funnel": "leads", "speed-to-lead": "leads", "sales-cycle": ("won", "lost"), "reps": "assigned",
            "sources": ("leads", "cost"), "campaigns": ("leads", "cost"), "score-calibration": "leads",
            "forecast": ("open_deals", "won_deals"), "pipeline": ("deals_now", "entered")}


# Reports that list everything of a kind (every rep, campaign, scoring rule) even when nothing happened to it.
_LISTS = {"reps", "campaigns", "score-calibration", "pipeline"}


def is_quiet(name, rows) -> bool:
    """Nothing happened in the range: every row counts nothing."""
    counted = _COUNTED[name]
    counted = (counted,) if isinstance(counted, str) else counted
    return not any(Decimal(row[column] or 0) for row in rows for column in counted)


def is_empty(name, rows, breakdown) -> bool:
    """Nothing to show: no rows, or no numbers in a report whose rows are groups of what happened. A report that
    lists every rep, campaign or scoring rule still shows them when nothing happened (with what to do)."""
    listed = name in _LISTS and (name != "score-calibration" or breakdown == "rule")
    return not rows or (not listed and is_quiet(name, rows))
