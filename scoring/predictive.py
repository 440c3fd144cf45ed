"""Predictive scoring: each org's conversion model, learned from its own leads' outcomes and evaluated in SQL.

- An outcome is known when a lead converted (a won deal, the customer stage, or reaching SQL when the org counts
  that) or was lost (disqualified, or its deal lost). Its date orders the outcomes: the most recent fifth is held
  out, never seen by the fit, and every metric is measured on it, beside the rule score's on the same leads.
- Features are SQL expressions over a lead and its activity counts, built from a plain description (lead field,
  custom field key, activity type) that the stored model keeps; training reads them and the scoring statement
  evaluates them, so both see the same numbers. Activities after an outcome are not counted for training: they
  would tell the model the answer.
- The fitted logistic regression is stored as JSON (levels and their coefficients, means, scales) and evaluated
  by one UPDATE per chunk of leads: nothing stored is ever unpickled or executed.
"""

import re

import numpy as np
from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Coalesce
from django.utils import timezone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

from leadcrm import claims, errors, locks, rls
from leads.models import FUNNEL_RANK, ActivityType, LifecycleStage

from .calculation import PLAN_FOR_SETS
from .models import PredictiveModel, PredictiveStatus, ScoringSettings

MIN_OUTCOMES = 50  # of each kind, converted and lost
HOLDOUT_SHARE = 0.2
MAX_LEVELS = 30  # per category; the rarer ones are pooled into OTHER
MIN_LEVEL_SHARE = 0.01
MIN_LEVEL_LEADS = 5
MAX_CUSTOM_FIELDS = 10
MAX_ACTIVITY_TYPES = 15
MIN_PRESENCE = 0.05  # a custom field or activity type must concern this share of the outcomes to be used
REGULARISATION = 1.0  # sklearn's C: L2, on standardised numbers and 0/1 categories
THRESHOLDS = [round(step / 20, 2) for step in range(1, 20)]  # 0.05 … 0.95
BANDS = ["A", "B", "C", "D", "E"]
OTHER = "(other)"
# Records of the outcome itself or of the app's bookkeeping: counting them would let the model read the answer.
NOT_FEATURES = [ActivityType.STAGE_CHANGE, ActivityType.OWNER_CHANGE, ActivityType.SCORE_CHANGE,
                ActivityType.MERGE, ActivityType.DEAL_CREATED, ActivityType.DEAL_WON, ActivityType.DEAL_LOST]
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,63}$")  # custom field keys and activity types quoted in SQL

# The lead fields a model may use, as SQL over the lead row `l`.
LEAD_CATEGORIES = {"source_type": "l.source_type", "industry": "lower(l.industry)", "country": "l.country",
                   "utm_source": "lower(l.utm_source)", "utm_medium": "lower(l.utm_medium)"}
LEAD_NUMBERS = {"company_size": "ln(1 + l.company_size)", "fit_score": "l.fit_score::float8",
                "behavior_score": "l.behavior_score::float8"}


class NotEnoughOutcomes(errors.Conflict):
    default_code = "not_enough_outcomes"


# ----------------------------------------------------------------------------------------------- outcomes


def _outcomes_sql() -> str:
    """A CTE `outcomes` (id, converted, outcome_at) of the org's leads whose outcome is known. Params: org, sql."""
    customer, disqualified = LifecycleStage.CUSTOMER.value, LifecycleStage.DISQUALIFIED.value
    converted = (f"(d.won_at IS NOT NULL OR l.lifecycle_stage = '{customer}' "
                 f"OR (%(sql)s AND l.reached_rank >= {FUNNEL_RANK[LifecycleStage.SQL]}))")
    return f"""
        outcomes AS (
            SELECT l.id, {converted} AS converted,
                   coalesce(CASE WHEN d.won_at IS NOT NULL OR l.lifecycle_stage = '{customer}'
                                 THEN coalesce(d.won_at, (l.stage_entered_at ->> '{customer}')::timestamptz)
                                 WHEN {converted} THEN (l.stage_entered_at ->> 'sql')::timestamptz
                                 WHEN l.lifecycle_stage = '{disqualified}'
                                 THEN (l.stage_entered_at ->> '{disqualified}')::timestamptz
                                 ELSE d.lost_at END, l.updated_at) AS outcome_at
            FROM leads_lead l
            LEFT JOIN (SELECT lead_id, max(closed_at) FILTER (WHERE status = 'won') AS won_at,
                              max(closed_at) FILTER (WHERE status = 'lost') AS lost_at
                       FROM leads_deal WHERE organization_id = %(org)s AND lead_id IS NOT NULL AND status <> 'open'
                       GROUP BY lead_id) d ON d.lead_id = l.id
            WHERE l.organization_id = %(org)s AND l.erased_at IS NULL
              AND ({converted} OR l.lifecycle_stage = '{disqualified}' OR d.lost_at IS NOT NULL)
        )"""


def _outcome_params(organization_id) -> dict:
    settings = ScoringSettings.objects.filter(organization_id=organization_id).first()
    return {"org": organization_id, "sql": bool(settings and settings.sql_counts_as_converted),
            "excluded": [str(kind) for kind in NOT_FEATURES]}


def outcome_counts(organization_id) -> tuple[int, int]:
    """(converted, lost) outcomes of the org's leads."""
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {_outcomes_sql()} SELECT count(*) FILTER (WHERE converted), "
                       "count(*) FILTER (WHERE NOT converted) FROM outcomes", _outcome_params(organization_id))
        return cursor.fetchone()


def shortfall(converted: int, lost: int) -> str | None:
    """What is missing before a model can be trained, in words; None when nothing is."""
    missing = [f"{MIN_OUTCOMES - count} more {kind} leads" for count, kind in ((converted, "converted"),
                                                                              (lost, "lost"))
               if count < MIN_OUTCOMES]
    if not missing:
        return None
    return (f"Training needs at least {MIN_OUTCOMES} converted and {MIN_OUTCOMES} lost leads; there are {converted} "
            f"and {lost}: {' and '.join(missing)} needed.")


# ----------------------------------------------------------------------------------------------- features


def feature_sql(feature: dict) -> str:
    """The SQL expression of a described feature over the lead `l` and its activity counts `c.counts`."""
    source, name = feature["source"], feature["name"]
    if source == "lead":
        return {**LEAD_CATEGORIES, **LEAD_NUMBERS}[name]
    if not _SAFE_KEY.match(name):
        raise ValueError(name)
    if source == "activity":
        return f"ln(1 + coalesce((c.counts ->> '{name}')::float8, 0))"
    if feature["kind"] == "number":
        return (f"CASE WHEN jsonb_typeof(l.custom_fields -> '{name}') = 'number' "
                f"THEN (l.custom_fields ->> '{name}')::float8 END")
    return f"coalesce(l.custom_fields ->> '{name}', '')"


def feature_label(feature: dict) -> str:
    return {"lead": feature["name"], "custom": f"custom_fields.{feature['name']}",
            "activity": f"{feature['name']} activities"}[feature["source"]]


TRAINING_TYPES = "a.type <> ALL(%(excluded)s)"
MODEL_TYPES = "a.type = ANY(%(counted)s)"  # the types a fitted model counts: the rest need not be read


def _activity_counts_sql(leads_sql: str, *, until_outcome: bool, bounds: str = "") -> str:
    """A CTE `c` of each lead's activity counts by type (jsonb), for the leads `leads_sql` selects. Training counts
    every type but the outcome's own records up to the outcome; scoring counts what the model uses, up to now.
    `bounds` (conditions on `a.lead_id`) keeps the read to the activities of a chunk's leads, by the index that
    starts with the org and the lead, where the hash join alone would read every activity of the org."""
    cutoff = "AND a.occurred_at <= o.outcome_at" if until_outcome else ""
    join = "JOIN outcomes o ON o.id = a.lead_id" if until_outcome else ""
    types = TRAINING_TYPES if until_outcome else MODEL_TYPES
    return f"""
        c AS (
            SELECT lead_id, jsonb_object_agg(type, n) AS counts
            FROM (SELECT a.lead_id, a.type, count(*) AS n FROM leads_activity a {join}
                  WHERE a.organization_id = %(org)s AND {types} {cutoff}{bounds}
                    AND a.lead_id IN ({leads_sql})
                  GROUP BY a.lead_id, a.type) per_type
            GROUP BY lead_id
        )"""


def _discover(cursor, params: dict) -> list[dict]:
    """The features of the org: the lead fields, and the custom fields and activity types that enough outcomes
    have (most common first, capped)."""
    features = [{"source": "lead", "name": name, "kind": "category"} for name in LEAD_CATEGORIES]
    features += [{"source": "lead", "name": name, "kind": "number"} for name in LEAD_NUMBERS]
    cursor.execute(f"WITH {_outcomes_sql()} SELECT count(*) FROM outcomes", params)
    enough = max(1, MIN_PRESENCE * cursor.fetchone()[0])
    cursor.execute(f"""
        WITH {_outcomes_sql()}
        SELECT kv.key, count(*) FILTER (WHERE jsonb_typeof(kv.value) = 'number') AS numbers,
               count(*) FILTER (WHERE jsonb_typeof(kv.value) = 'string') AS texts
        FROM outcomes o JOIN leads_lead l ON l.id = o.id AND l.organization_id = %(org)s,
             jsonb_each(l.custom_fields) kv
        GROUP BY kv.key ORDER BY count(*) DESC, kv.key""", params)
    custom = [{"source": "custom", "name": key, "kind": "number" if numbers >= texts else "category"}
              for key, numbers, texts in cursor.fetchall()
              if max(numbers, texts) >= enough and _SAFE_KEY.match(key)]
    features += custom[:MAX_CUSTOM_FIELDS]
    cursor.execute(f"""
        WITH {_outcomes_sql()}
        SELECT a.type, count(DISTINCT a.lead_id) FROM leads_activity a JOIN outcomes o ON o.id = a.lead_id
        WHERE a.organization_id = %(org)s AND {TRAINING_TYPES} AND a.occurred_at <= o.outcome_at
        GROUP BY a.type ORDER BY 2 DESC, 1""", params)
    activity = [{"source": "activity", "name": kind, "kind": "number"}
                for kind, leads in cursor.fetchall() if leads >= enough and _SAFE_KEY.match(kind)]
    return features + activity[:MAX_ACTIVITY_TYPES]


def _training_rows(cursor, params: dict, features: list[dict]) -> list[tuple]:
    """(id, converted, outcome_at, rule score, *feature values) of every outcome, oldest outcome first."""
    columns = ", ".join(feature_sql(feature) for feature in features)
    cursor.execute(f"""
        WITH {_outcomes_sql()}, {_activity_counts_sql("SELECT id FROM outcomes", until_outcome=True)}
        SELECT o.id, o.converted, o.outcome_at, l.score, {columns}
        FROM outcomes o JOIN leads_lead l ON l.id = o.id AND l.organization_id = %(org)s
        LEFT JOIN c ON c.lead_id = o.id
        ORDER BY o.outcome_at, o.id""", params)
    return cursor.fetchall()


# ----------------------------------------------------------------------------------------------- fitting


def _levels(values: list[str]) -> list[str]:
    """The levels of a category worth a column of their own: common enough, most common first, capped."""
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    least = max(MIN_LEVEL_LEADS, MIN_LEVEL_SHARE * len(values))
    common = sorted((value for value, count in counts.items() if count >= least), key=lambda v: (-counts[v], v))
    return common[:MAX_LEVELS]


def _encoder(features: list[dict], columns: list[list]) -> list[dict]:
    """Each usable feature with what encoding it needs (levels; mean and scale), learnt from the training rows.
    A feature that does not vary there is left out."""
    encoded = []
    for feature, values in zip(features, columns, strict=True):
        if feature["kind"] == "category":
            levels = _levels(values)
            if len(levels) + (len(set(values) - set(levels)) > 0) > 1:
                encoded.append({**feature, "levels": levels})
            continue
        known = np.array([value for value in values if value is not None], dtype=float)
        if len(known) and known.std() > 0:
            encoded.append({**feature, "mean": float(known.mean()), "scale": float(known.std())})
    return encoded


def _design(encoded: list[dict], columns: dict[str, list]) -> np.ndarray:
    """The model's input matrix: one 0/1 column per level and OTHER, one standardised column per number (a
    missing number counts as the mean)."""
    parts = []
    for feature in encoded:
        values = columns[_key(feature)]
        if feature["kind"] == "category":
            index = {level: position for position, level in enumerate(feature["levels"])}
            block = np.zeros((len(values), len(index) + 1))
            block[np.arange(len(values)), [index.get(value, len(index)) for value in values]] = 1
        else:
            block = np.array([[feature["mean"] if value is None else float(value)] for value in values])
            block = (block - feature["mean"]) / feature["scale"]
        parts.append(block)
    return np.hstack(parts)


def _key(feature: dict) -> str:
    return f"{feature['source']}:{feature['name']}"


def _with_coefficients(encoded: list[dict], coefficients) -> list[dict]:
    model, position = [], 0
    for feature in encoded:
        if feature["kind"] == "category":
            width = len(feature["levels"]) + 1
            weights = [float(weight) for weight in coefficients[position:position + width]]
            model.append({**feature, "levels": dict(zip(feature["levels"], weights[:-1], strict=True)),
                          "other": weights[-1]})
        else:
            width = 1
            model.append({**feature, "coef": float(coefficients[position])})
        position += width
    return model


def _auc(converted, ranking) -> float | None:
    return round(float(roc_auc_score(converted, ranking)), 4) if 0 < converted.sum() < len(converted) else None


def _calibration(converted, probabilities) -> list[dict]:
    order = np.argsort(probabilities, kind="stable")
    return [{"decile": number + 1, "leads": len(part), "predicted": round(float(probabilities[part].mean()), 4),
             "actual": round(float(converted[part].mean()), 4)}
            for number, part in enumerate(np.array_split(order, 10)) if len(part)]


def threshold_table(converted, probabilities, thresholds=THRESHOLDS) -> list[dict]:
    """Per threshold (of probability, or of any ranking such as the rule score): the share of leads at or above it
    (handed to sales), how many of those converted (precision), and the share of the converted leads they hold
    (recall)."""
    total_converted = int(converted.sum())
    table = []
    for threshold in thresholds:
        handed = probabilities >= threshold
        caught = int(converted[handed].sum())
        table.append({"threshold": threshold, "handed_off": round(float(handed.mean()), 4),
                      "precision": round(caught / int(handed.sum()), 4) if handed.any() else None,
                      "recall": round(caught / total_converted, 4) if total_converted else None})
    return table


def fit(features: list[dict], rows: list[tuple]) -> tuple[dict, dict, list[dict]]:
    """Fit on the older outcomes, measure on the most recent HOLDOUT_SHARE. Returns (model, metrics, thresholds)."""
    holdout_size = max(1, round(len(rows) * HOLDOUT_SHARE))
    train, holdout = rows[:-holdout_size], rows[-holdout_size:]
    columns = lambda part: {_key(f): [row[4 + i] for row in part] for i, f in enumerate(features)}  # noqa: E731
    train_columns, holdout_columns = columns(train), columns(holdout)
    encoded = _encoder(features, [train_columns[_key(feature)] for feature in features])
    converted = np.array([row[1] for row in train], dtype=int)
    regression = LogisticRegression(C=REGULARISATION, max_iter=5000)
    regression.fit(_design(encoded, train_columns), converted)
    train_probabilities = regression.predict_proba(_design(encoded, train_columns))[:, 1]
    probabilities = regression.predict_proba(_design(encoded, holdout_columns))[:, 1]
    actual = np.array([row[1] for row in holdout], dtype=int)
    model = {"features": _with_coefficients(encoded, regression.coef_[0]),
             "intercept": float(regression.intercept_[0]),
             # the fifths of the training leads' probabilities: A is the likeliest fifth
             "band_cutoffs": [float(cut) for cut in np.quantile(train_probabilities, [0.8, 0.6, 0.4, 0.2])]}
    metrics = {
        "auc": _auc(actual, probabilities),
        "rule_auc": _auc(actual, np.array([row[3] for row in holdout], dtype=float)),
        "base_rate": round(float(actual.mean()), 4),
        "brier": round(float(brier_score_loss(actual, probabilities)), 4) if len(actual) else None,
        "calibration": _calibration(actual, probabilities),
        "holdout_from": holdout[0][2].isoformat(),
    }
    metrics["beats_rules"] = (metrics["auc"] is not None and metrics["rule_auc"] is not None
                              and metrics["auc"] > metrics["rule_auc"])
    return model, metrics, threshold_table(actual, probabilities)


# ----------------------------------------------------------------------------------------------- scoring in SQL


class _Params(dict):
    """Named parameters of a statement built from parts: each value gets a fresh name."""

    def __call__(self, value) -> str:
        name = f"v{len(self)}"
        self[name] = value
        return f"%({name})s"


def probability_sql(model: dict, params: _Params) -> str:
    """SQL of the model's probability for the lead `l` (activity counts in `c`); its values go into `params`."""
    terms = [params(model["intercept"])]
    for feature in model["features"]:
        expression = feature_sql(feature)
        if feature["kind"] == "category":
            whens = " ".join(f"WHEN {params(level)} THEN {params(weight)}"
                             for level, weight in feature["levels"].items())
            terms.append(f"(CASE {expression} {whens} ELSE {params(feature['other'])} END)")
        else:
            mean = params(feature["mean"])
            terms.append(f"{params(feature['coef'] / feature['scale'])} * (coalesce({expression}, {mean}) - {mean})")
    # exp() of a large number overflows; beyond ±35 the probability is 0 or 1 to the 4 decimals stored anyway.
    return f"1 / (1 + exp(-greatest(-35, least(35, {' + '.join(terms)}))))"


def band_sql(model: dict, column: str, params: _Params) -> str:
    whens = " ".join(f"WHEN {column} >= {params(cut)} THEN '{band}'"
                     for band, cut in zip(BANDS, model["band_cutoffs"], strict=False))
    return f"CASE {whens} ELSE '{BANDS[-1]}' END"


def band_of(model: dict, probability: float) -> str:
    return next((band for band, cut in zip(BANDS, model["band_cutoffs"], strict=False) if probability >= cut),
                BANDS[-1])


_SCOPE_TESTS = {"id": "l.id = {}", "id__gte": "l.id >= {}", "id__lte": "l.id <= {}", "id__in": "l.id = ANY({})"}


def _counted(model: dict) -> list[str]:
    return [feature["name"] for feature in model["features"] if feature["source"] == "activity"]


def write_probabilities(cursor, *, organization_id, model: dict, scope: dict, crossing=None) -> list:
    """One statement: the probability and band of the org's leads in `scope` (as for scoring), where they
    changed. With `crossing` (a threshold), returns the recycled leads whose probability went from below it (or
    none) to at or above it; else nothing."""
    params = _Params(org=organization_id, counted=_counted(model), now=timezone.now())
    crossed = (f"RETURNING l.id, s.stage = {params(LifecycleStage.RECYCLED.value)} "
               f"AND coalesce(s.old_probability < {params(crossing)}, true) "
               f"AND s.probability >= {params(crossing)}") if crossing is not None else ""
    bounds = "".join(f" AND {_SCOPE_TESTS[key].format(params(list(value) if key == 'id__in' else value))}"
                     for key, value in scope.items())
    probability = probability_sql(model, params)
    band = band_sql(model, "p.probability", params)
    leads_sql = f"SELECT l.id FROM leads_lead l WHERE l.organization_id = %(org)s{bounds}"
    cursor.execute(f"""
        WITH {_activity_counts_sql(leads_sql, until_outcome=False, bounds=bounds.replace("l.id", "a.lead_id"))},
        p AS (SELECT l.id, round(({probability})::numeric, 4) AS probability,
                     l.conversion_probability AS old_probability, l.lifecycle_stage AS stage
              FROM leads_lead l LEFT JOIN c ON c.lead_id = l.id
              WHERE l.organization_id = %(org)s{bounds}),
        s AS (SELECT p.*, {band} AS band FROM p)
        UPDATE leads_lead l SET conversion_probability = s.probability, predictive_band = s.band, updated_at = %(now)s
        FROM s
        WHERE l.id = s.id AND l.organization_id = %(org)s{bounds}
          AND (l.conversion_probability, l.predictive_band) IS DISTINCT FROM (s.probability, s.band)
        {crossed}""", params)
    return [lead_id for lead_id, over in cursor.fetchall() if over] if crossing is not None else []


def explain(lead, model: dict, top: int = 3) -> list[dict]:
    """The features that move this lead's probability most, with their signed contribution to the log-odds
    (coefficient × the lead's standardised value, or the coefficient of its category)."""
    columns = ", ".join(feature_sql(feature) for feature in model["features"])
    with connection.cursor() as cursor:
        cursor.execute(f"""
            WITH {_activity_counts_sql("SELECT %(lead)s::uuid", until_outcome=False)}
            SELECT {columns} FROM leads_lead l LEFT JOIN c ON c.lead_id = l.id
            WHERE l.organization_id = %(org)s AND l.id = %(lead)s""",
                       {"org": lead.organization_id, "lead": lead.pk, "counted": _counted(model)})
        values = cursor.fetchone()
    factors = []
    for feature, value in zip(model["features"], values or (), strict=False):
        if feature["kind"] == "category":
            shown, contribution = value, feature["levels"].get(value, feature["other"])
        else:
            shown = value
            contribution = feature["coef"] * ((feature["mean"] if value is None else value) - feature["mean"]) \
                / feature["scale"]
        factors.append({"feature": feature_label(feature), "value": shown, "contribution": round(contribution, 4)})
    return sorted(factors, key=lambda factor: -abs(factor["contribution"]))[:top]


# ----------------------------------------------------------------------------------------------- training runs


@transaction.atomic
def request_training(*, organization_id) -> PredictiveModel:
    """Queue a training run (the task trains after this transaction). Refused while outcomes are too few."""
    if problem := shortfall(*outcome_counts(organization_id)):
        raise NotEnoughOutcomes(problem)
    from . import services

    # The settings row is locked so that two requests number their versions one after the other.
    ScoringSettings.objects.select_for_update().get(pk=services.get_settings(organization_id).pk)
    latest = PredictiveModel.objects.for_org(organization_id).order_by("-version").first()
    version = PredictiveModel.objects.create(organization_id=organization_id,
                                             version=(latest.version + 1) if latest else 1)

    def enqueue():
        from .tasks import train_model

        train_model.delay(str(organization_id), str(version.pk))

    transaction.on_commit(enqueue)
    return version


MAX_ATTEMPTS = 3  # a run whose worker died this many times (out of memory, say) is given up


def outcomes_digest(organization_id) -> str:
    """What the org's outcomes are now, in one set-based query: how many, how many converted, and a checksum of
    which leads and which way, so a lead changing sides shows too. Equal digests: nothing to learn anew."""
    with connection.cursor() as cursor:
        cursor.execute(PLAN_FOR_SETS)
        cursor.execute(f"""
            WITH {_outcomes_sql()}
            SELECT count(*), count(*) FILTER (WHERE converted),
                   coalesce(sum(hashtext(id::text || converted::text)::bigint), 0)
            FROM outcomes""", _outcome_params(organization_id))
        return ":".join(str(value) for value in cursor.fetchone())


def _start(organization_id, version_id) -> PredictiveModel | None:
    """Mark a queued run training (or take up one whose worker died), committed at once so the run shows as
    training and a dead worker's run can be told apart; None when there is nothing to do. The caller holds the
    run's lock."""
    with transaction.atomic():
        run = PredictiveModel.objects.for_org(organization_id).select_for_update().filter(pk=version_id).first()
        if run is None or run.status not in (PredictiveStatus.QUEUED, PredictiveStatus.TRAINING):
            return None  # done already (a repeated delivery of the task), or no such run
        if run.attempts >= MAX_ATTEMPTS:
            run.status = PredictiveStatus.FAILED
            run.message = (f"Training stopped {run.attempts} times without finishing (its worker died, perhaps out "
                           "of memory). Request another run, or ask an administrator to check the workers.")
        else:
            run.status, run.started_at, run.attempts = PredictiveStatus.TRAINING, timezone.now(), run.attempts + 1
        run.save(update_fields=["status", "message", "started_at", "attempts"])
    return run if run.status == PredictiveStatus.TRAINING else None


def _run(organization_id, version_id) -> PredictiveModel | None:
    """Train version `version_id`: the run, when it is ready to score (its row says what happened otherwise)."""
    runs = PredictiveModel.objects.for_org(organization_id).filter(pk=version_id, status=PredictiveStatus.TRAINING)
    params = _outcome_params(organization_id)
    digest = outcomes_digest(organization_id)
    with connection.cursor() as cursor:
        cursor.execute(PLAN_FOR_SETS)  # joins of whole sets: a nested loop over the outcomes would be quadratic
        features = _discover(cursor, params)
        rows = _training_rows(cursor, params, features)
    converted = sum(1 for row in rows if row[1])
    counts = {"positives": converted, "negatives": len(rows) - converted, "outcomes_digest": digest}
    if problem := shortfall(converted, len(rows) - converted):
        runs.update(status=PredictiveStatus.INSUFFICIENT, message=problem, **counts)
        return None
    model, metrics, thresholds = fit(features, rows)
    holdout_size = max(1, round(len(rows) * HOLDOUT_SHARE))
    if not runs.update(status=PredictiveStatus.READY, trained_at=timezone.now(), model=model, metrics=metrics,
                       thresholds=thresholds, training_size=len(rows) - holdout_size, holdout_size=holdout_size,
                       **counts):
        return None  # given up meanwhile
    ScoringSettings.objects.filter(organization_id=organization_id).update(predictive_model_id=version_id)
    return PredictiveModel.objects.for_org(organization_id).get(pk=version_id)


def train(*, organization_id, version_id) -> None:
    """Train a queued version (or one whose worker died); when it is ready it scores every lead of the org,
    set-based chunk by chunk. While it trains it holds the run's lock: a second delivery leaves it alone, and a
    worker that dies frees it, so the sweeper (abandoned_runs) can hand the run to another."""
    from . import services

    with locks.try_lock(locks.TRAINING, version_id) as acquired:
        if not acquired or _start(organization_id, version_id) is None:
            return
        try:
            with transaction.atomic():
                trained = _run(organization_id, version_id)
        except Exception as exc:
            PredictiveModel.objects.for_org(organization_id).filter(pk=version_id).update(
                status=PredictiveStatus.FAILED, message=str(exc)[:1000])
            raise
    if trained is not None:
        services.write_all_probabilities(organization_id=organization_id)


def abandoned_runs(*, older_than, limit: int = 20) -> list:
    """(run id, org id) of training runs queued or training for longer than `older_than` (a timedelta) that no
    worker holds: their task never ran, or its worker died. Each is claimed for `older_than`, so a run whose new
    task waits in the queue is not enqueued again meanwhile."""
    now = timezone.now()
    due = Coalesce("swept_until", ExpressionWrapper(Coalesce("started_at", "created_at") + older_than,
                                                    output_field=DateTimeField()))
    found = []
    for organization_id in rls.lookup_ids("scoring_organizations_with_stale_training", now - older_than):
        with rls.scope(organization_id):  # each org's runs under its own scope
            waiting = PredictiveModel.objects.for_org(organization_id).filter(
                status__in=(PredictiveStatus.QUEUED, PredictiveStatus.TRAINING))
            found += [(row.pk, organization_id) for row in claims.claim(
                waiting, due=due, lease_field="swept_until", limit=limit, lease=older_than, now=now)]
    return [(pk, organization_id) for pk, organization_id in found if not locks.is_held(locks.TRAINING, pk)]


def retrain_changed() -> list:
    """Nightly: queue a new run for every org with a trained model whose outcomes changed since the model that
    scores its leads read them (one digest query per org), unless a run is already waiting or there are too few
    outcomes now. Returns the orgs queued."""
    queued = []
    for organization_id in rls.lookup_ids("scoring_organizations_with_models"):
        with rls.scope(organization_id):  # each org under its own scope
            runs = PredictiveModel.objects.for_org(organization_id)
            if runs.filter(status__in=(PredictiveStatus.QUEUED, PredictiveStatus.TRAINING)).exists():
                continue
            active = active_model(organization_id)
            if active is not None and active.outcomes_digest == outcomes_digest(organization_id):
                continue
            try:
                request_training(organization_id=organization_id)
            except NotEnoughOutcomes:
                continue
            queued.append(organization_id)
    return queued


def active_model(organization_id) -> PredictiveModel | None:
    settings = ScoringSettings.objects.filter(organization_id=organization_id).select_related(
        "predictive_model").first()
    return settings.predictive_model if settings else None

