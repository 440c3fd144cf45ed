"""Advice from the org's conversion model: a draft rule set learnt from its outcomes, and where to put the MQL
threshold.

- Suggested rules: every level of a category the model uses becomes a candidate fit rule (`field is level`), every
  number a few `field is at least cut` rules at its quartiles, every activity type a behaviour rule counted once
  and one counted up to three times. An L1-regularised logistic regression on the older outcomes keeps a handful
  of them; a plain refit on those gives their weights, and 1 unit of log-odds becomes POINTS_PER_LOG_ODDS points.
  The draft is measured on the same held-out recent outcomes as the model and the current rules.
- Threshold advice: per rule score threshold, on the model's holdout, the share of leads at or above it (handed
  off), how many of them converted (precision) and the share of converters they hold (recall). An admin picks a
  recall target or a row, and the MQL score is set through the scoring settings service.
"""

import math
import warnings

import numpy as np
from django.db import connection, transaction
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from leadcrm import audit, errors
from leads.conditions import ConditionError

from . import predictive, services
from .calculation import PLAN_FOR_SETS, Rule
from .models import PredictiveStatus, RuleKind, ScoringRule

MAX_RULES = 12  # "a handful": more and the rule list stops being read
POINTS_PER_LOG_ODDS = 20  # 20 points more doubles the odds about 2.7 times
NUMBER_CUTS = (0.25, 0.5, 0.75)  # quartiles of a number become `at least` rules
ACTIVITY_CAPS = (1, 3)  # an activity type counted once (did it at all), and up to three times
L1_STRENGTHS = np.logspace(-3, 1, 25)  # sklearn's C, weakest first: the first that keeps MAX_RULES wins
SCORE_THRESHOLD_ROWS = 20
LEARNED_PREFIX = "Learned: "


class NoModel(errors.Conflict):
    default_code = "no_predictive_model"


def _ready_model(organization_id):
    version = predictive.active_model(organization_id)
    if version is None or version.status != PredictiveStatus.READY:
        raise NoModel("Train a predictive model first: advice is learnt from it.")
    return version


# ----------------------------------------------------------------------------------------------- candidates


def _nice(value: float) -> float | int:
    """A cut point a person would write: two significant figures, whole when it is whole."""
    if value == 0:
        return 0
    digits = 1 - int(math.floor(math.log10(abs(value))))
    rounded = round(value, digits)
    return int(rounded) if float(rounded).is_integer() else rounded


def _label(value) -> str:
    return "empty" if value == "" else str(value)


def _candidates(features: list[dict], train_columns: list[list]) -> list[dict]:
    """Rules a draft may use: each {rule fields…, "column": (feature position, test)}."""
    candidates = []
    for position, (feature, values) in enumerate(zip(features, train_columns, strict=True)):
        source, name = feature["source"], feature["name"]
        field = name if source == "lead" else f"custom_fields.{name}"
        if source == "activity":
            for cap in ACTIVITY_CAPS:
                title = f"{name.replace('_', ' ')}" + (" (once)" if cap == 1 else f" (each, up to {cap})")
                candidates.append(
                    {
                        "name": title,
                        "kind": RuleKind.BEHAVIOR,
                        "condition": {"activity_type": name},
                        "max_occurrences": cap,
                        "column": (position, "count", cap),
                    }
                )
        elif feature["kind"] == "category":
            for level in feature["levels"]:
                condition = (
                    {"field": field, "op": "is_empty"} if level == "" else {"field": field, "op": "eq", "value": level}
                )
                candidates.append(
                    {
                        "name": f"{name.replace('_', ' ')} is {_label(level)}",
                        "kind": RuleKind.FIT,
                        "condition": condition,
                        "max_occurrences": None,
                        "column": (position, "eq", level),
                    }
                )
        elif source != "lead" or name not in services.NOT_FOR_FIT_RULES:  # not the rule score's own parts
            known = [value for value in values if value is not None]
            if not known:
                continue
            if source == "lead" and name == "company_size":  # the model keeps ln(1 + size); a rule reads the size
                known = [math.expm1(value) for value in known]
            cuts = sorted({_nice(float(cut)) for cut in np.quantile(known, NUMBER_CUTS)})
            for cut in cuts:
                candidates.append(
                    {
                        "name": f"{name.replace('_', ' ')} at least {cut:,}",
                        "kind": RuleKind.FIT,
                        "condition": {"field": field, "op": "gte", "value": cut},
                        "max_occurrences": None,
                        "column": (position, "gte", cut),
                    }
                )
    return candidates


def _column(candidate: dict, feature: dict, values: list) -> np.ndarray:
    """What the candidate rule adds for each lead, in units of its points (0/1, or a capped count)."""
    _, test, argument = candidate["column"]
    if test == "count":
        counts = np.array([0 if value is None else round(math.expm1(value)) for value in values], dtype=float)
        return np.minimum(counts, argument)
    if test == "eq":
        return np.array([(value or "").lower() == argument.lower() for value in values], dtype=float)
    if feature["source"] == "lead" and feature["name"] == "company_size":
        values = [None if value is None else math.expm1(value) for value in values]
    return np.array([value is not None and value >= argument - 1e-9 for value in values], dtype=float)


def _matrix(candidates, features, columns) -> np.ndarray:
    if not candidates:
        return np.zeros((len(columns[0]) if columns else 0, 0))
    return np.column_stack(
        [
            _column(candidate, features[candidate["column"][0]], columns[candidate["column"][0]])
            for candidate in candidates
        ]
    )


def _select(design: np.ndarray, converted: np.ndarray) -> list[int]:
    """The columns an L1 fit keeps, at the weakest penalty that keeps at most MAX_RULES of them."""
    chosen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for strength in L1_STRENGTHS:
            lasso = LogisticRegression(l1_ratio=1, C=strength, solver="liblinear", max_iter=1000)
            lasso.fit(design, converted)
            kept = [index for index, weight in enumerate(lasso.coef_[0]) if abs(weight) > 1e-6]
            if len(kept) > MAX_RULES:
                break
            chosen = kept
    return chosen


# ----------------------------------------------------------------------------------------------- suggestion


def _split(rows: list[tuple]):
    holdout_size = max(1, round(len(rows) * predictive.HOLDOUT_SHARE))
    return rows[:-holdout_size], rows[-holdout_size:]


def draft_rules(features: list[dict], rows: list[tuple]) -> tuple[list[dict], dict]:
    """A handful of integer-point rules fitted on the older outcomes `rows` (as predictive._training_rows reads
    them), and the holdout AUC of the draft and of the current rule score. Pure: reads and writes nothing."""
    train, holdout = _split(rows)
    columns = lambda part: [[row[4 + i] for row in part] for i in range(len(features))]  # noqa: E731
    train_columns, holdout_columns = columns(train), columns(holdout)
    candidates = _candidates(features, train_columns)
    design = _matrix(candidates, features, train_columns)
    converted = np.array([row[1] for row in train], dtype=int)
    chosen = _select(design, converted) if design.shape[1] and 0 < converted.sum() < len(converted) else []
    rules = []
    if chosen:
        refit = LogisticRegression(C=1.0, max_iter=5000).fit(design[:, chosen], converted)
        for index, weight in zip(chosen, refit.coef_[0], strict=True):
            points = max(-services.POINTS_LIMIT, min(services.POINTS_LIMIT, round(weight * POINTS_PER_LOG_ODDS)))
            if points:
                rules.append({**candidates[index], "points": int(points)})
    rules.sort(key=lambda rule: (-abs(rule["points"]), rule["name"]))
    actual = np.array([row[1] for row in holdout], dtype=int)
    draft_score = (
        _matrix(rules, features, holdout_columns) @ np.array([rule["points"] for rule in rules])
        if rules
        else np.zeros(len(holdout))
    )
    metrics = {
        "draft_auc": predictive._auc(actual, draft_score),
        "rule_auc": predictive._auc(actual, np.array([row[3] for row in holdout], dtype=float)),
        "holdout_size": len(holdout),
    }
    return [
        {key: rule[key] for key in ("name", "kind", "points", "condition", "max_occurrences")}
        | {"name": LEARNED_PREFIX + rule["name"], "window_days": None}
        for rule in rules
    ], metrics


def _draft_config(organization_id, rules: list[dict]):
    drafts = [
        Rule(
            id=None,
            name=rule["name"],
            kind=rule["kind"],
            points=rule["points"],
            condition=rule["condition"],
            max_occurrences=rule.get("max_occurrences"),
            window_days=rule.get("window_days"),
        )
        for rule in rules
    ]
    return services.load_config(organization_id, rules=drafts)


def suggest_rules(organization_id) -> dict:
    """The draft rule set learnt from the active model's features on the org's outcomes now, its holdout AUC
    beside the current rules' and the model's, and what saving it would change (the rule preview). Saves
    nothing."""
    from . import selectors

    version = _ready_model(organization_id)
    if problem := predictive.shortfall(*predictive.outcome_counts(organization_id)):
        raise predictive.NotEnoughOutcomes(problem)
    features = [
        {key: feature[key] for key in ("source", "name", "kind")}
        | ({"levels": list(feature["levels"])} if feature["kind"] == "category" else {})
        for feature in version.model["features"]
    ]
    params = predictive._outcome_params(organization_id)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(PLAN_FOR_SETS)
        rows = predictive._training_rows(cursor, params, features)
    rules, metrics = draft_rules(features, rows)
    return {
        "version": version.version,
        "rules": rules,
        "auc": {"draft": metrics["draft_auc"], "rules": metrics["rule_auc"], "model": version.metrics.get("auc")},
        "holdout_size": metrics["holdout_size"],
        "preview": selectors.preview(organization_id, _draft_config(organization_id, rules)),
    }


@transaction.atomic
def apply_rules(*, organization_id, rules: list[dict], actor=None) -> list[ScoringRule]:
    """Put `rules` in place of the org's active rules: those are switched off (kept, so they can come back), the new
    ones saved, and the org re-scored once. All or nothing: one unusable rule saves none."""
    if not isinstance(rules, list) or not rules:
        raise ConditionError({"rules": ["Give at least one rule."]})
    cleaned, problems = [], {}
    for number, rule in enumerate(rules, start=1):
        try:
            if not isinstance(rule, dict) or not str(rule.get("name") or "").strip():
                raise ConditionError({"name": ["Each rule needs a name."]})
            condition = services.clean_rule(
                kind=rule.get("kind"),
                condition=rule.get("condition"),
                points=rule.get("points"),
                max_occurrences=rule.get("max_occurrences"),
                window_days=rule.get("window_days"),
                organization_id=organization_id,
            )
        except ConditionError as exc:
            problems[f"rules[{number}]"] = [
                f"{key}: {message}" for key, messages in exc.errors.items() for message in messages
            ]
            continue
        cleaned.append(
            ScoringRule(
                organization_id=organization_id,
                name=str(rule["name"]).strip()[:200],
                kind=rule["kind"],
                points=rule["points"],
                condition=condition,
                max_occurrences=rule.get("max_occurrences"),
                window_days=rule.get("window_days"),
            )
        )
    if problems:
        raise ConditionError(problems)
    for old in ScoringRule.objects.for_org(organization_id).filter(active=True).order_by("id"):
        before = audit.snapshot(old)
        old.active = False
        old.save(update_fields=["active", "updated_at"])
        audit.record_save(organization=organization_id, actor=actor, obj=old, before=before)
    for rule in cleaned:
        rule.save()
        audit.record_save(organization=organization_id, actor=actor, obj=rule, before=None)
    services.request_recalculation(organization_id=organization_id)
    return cleaned


# ----------------------------------------------------------------------------------------------- thresholds


def _holdout(organization_id, version) -> tuple[np.ndarray, np.ndarray]:
    """(converted, rule score) of the outcomes the model held out: those known since its holdout began."""
    params = {**predictive._outcome_params(organization_id), "since": version.metrics.get("holdout_from")}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(PLAN_FOR_SETS)
        cursor.execute(
            f"""
            WITH {predictive._outcomes_sql()}
            SELECT o.converted, l.score FROM outcomes o JOIN leads_lead l ON l.id = o.id AND l.organization_id = %(org)s
            WHERE o.outcome_at >= %(since)s""",
            params,
        )
        found = cursor.fetchall()
    return np.array([row[0] for row in found], dtype=int), np.array([row[1] for row in found], dtype=float)


def score_thresholds(scores: np.ndarray, mql_score: int | None = None) -> list[int]:
    """Up to SCORE_THRESHOLD_ROWS rule score thresholds spread over the scores (and the current MQL score)."""
    if not len(scores):
        return [mql_score] if mql_score is not None else []
    picks = {int(value) for value in np.quantile(scores, np.linspace(0, 1, SCORE_THRESHOLD_ROWS), method="lower")}
    if mql_score is not None:
        picks.add(int(mql_score))
    return sorted(picks)


def threshold_advice(organization_id) -> dict:
    """The hand-off tables of the active model's holdout: by rule score (what the MQL threshold reads) and by
    probability; with the current MQL score."""
    settings = services.get_settings(organization_id)
    version = predictive.active_model(organization_id)
    if version is None or version.status != PredictiveStatus.READY:
        return {"version": None, "mql_score": settings.mql_score, "score": [], "probability": []}
    found = {
        "version": version.version,
        "mql_score": settings.mql_score,
        "score": [],
        "probability": version.thresholds,
    }
    if version.metrics.get("holdout_from"):
        converted, scores = _holdout(organization_id, version)
        found["holdout_size"] = len(converted)
        # the rules may have changed since training (a suggestion saved): how they rank the same leads now
        found["rule_auc_now"] = predictive._auc(converted, scores)
        found["score"] = predictive.threshold_table(
            converted, scores, thresholds=score_thresholds(scores, settings.mql_score)
        )
    return found


def threshold_for_recall(table: list[dict], recall: float) -> dict | None:
    """The highest threshold of `table` that still catches `recall` of the converters (fewest leads handed off)."""
    enough = [row for row in table if row["recall"] is not None and row["recall"] >= recall]
    return max(enough, key=lambda row: row["threshold"]) if enough else None


def set_mql_score_for_recall(*, organization_id, recall: float, actor=None):
    """Set the MQL score to the highest threshold that catches `recall` (0–1) of the held-out converters."""
    if not 0 < recall <= 1:
        raise errors.Invalid(errors={"recall": ["Give a share of converters from 1% to 100%."]})
    table = threshold_advice(organization_id)["score"]
    if not table:
        raise NoModel("Train a predictive model first: its held-out outcomes measure each threshold.")
    row = threshold_for_recall(table, recall)
    if row is None:
        raise errors.Invalid(errors={"recall": ["No threshold catches that many converters."]})
    return services.update_settings(organization_id=organization_id, actor=actor, mql_score=int(row["threshold"]))
