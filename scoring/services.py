"""Scoring changes: rules and settings (each change re-scores the org), instant and bulk (re)calculation."""

import decimal
import itertools
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

from django.conf import settings as django_settings
from django.db import connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from leadcrm import audit, claims, events, locks, rls
from leads import activity_types
from leads.conditions import (
    SCORE_FIELDS,
    ConditionError,
    activity_q,
    validate_activity_condition,
    validate_lead_condition,
)
from leads.models import Activity, Grade, Lead, LifecycleStage
from leads.services import promote_to_mql

from . import predictive, selectors
from .calculation import PLAN_AS_USUAL, PLAN_FOR_SETS, Config, Rule, scored_leads_sql
from .models import MqlRule, RecalculationStatus, RuleKind, ScoringRule, ScoringSettings

logger = logging.getLogger(__name__)

RECALC_CHUNK = 10_000  # leads per transaction of a bulk recalculation (and per progress step)
POINTS_LIMIT = 1000

# A new org's starting rule set, meant to be edited (documented in the README).
DEFAULT_RULES = [
    ("Submitted a form", RuleKind.BEHAVIOR, 15, {"activity_type": "form_submission"}, 3, None),
    ("Visited the pricing page", RuleKind.BEHAVIOR, 10,
     {"activity_type": "page_view", "property": "url", "op": "contains", "value": "/pricing"}, 3, 30),
    ("Clicked an email", RuleKind.BEHAVIOR, 5, {"activity_type": "email_click"}, 5, 60),
    ("Unsubscribed", RuleKind.BEHAVIOR, -25, {"activity_type": "unsubscribe"}, 1, None),
    ("Target industry", RuleKind.FIT, 20,
     {"field": "industry", "op": "in", "value": ["Software", "Technology", "Financial Services", "Finance"]},
     None, None),
    ("Company of 50 to 5,000 people", RuleKind.FIT, 15,
     {"field": "company_size", "op": "between", "value": [50, 5000]}, None, None),
    ("Decision-maker title", RuleKind.FIT, 15,
     {"field": "job_title", "op": "contains", "value": ["chief", "head", "director", "vp", "founder", "owner"]},
     None, None),
    ("No company given", RuleKind.FIT, -10, {"field": "company", "op": "is_empty"}, None, None),
]
DEFAULT_SETTINGS = {
    "mql_score": 50, "mql_min_grade": Grade.C,
    "grade_bands": {"A": 40, "B": 30, "C": 15, "D": 0},
    "temperature_bands": {"warm": 25, "hot": 60},
}
# Fit rules may not test what scoring itself writes (nor the stage the MQL hand-off moves).
NOT_FOR_FIT_RULES = (*SCORE_FIELDS, "lifecycle_stage")


# ----------------------------------------------------------------------------------------------- checks


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def clean_rule(*, kind, condition, points, max_occurrences=None, window_days=None, organization_id=None) -> dict:
    """Check a rule's parts; raises ConditionError({field: [messages]}). Returns the cleaned condition. With the
    org, a behaviour rule may name its own activity types too."""
    errors = {}
    if isinstance(points, bool) or not isinstance(points, int) or not -POINTS_LIMIT <= points <= POINTS_LIMIT:
        errors["points"] = [f"Must be a whole number from -{POINTS_LIMIT} to {POINTS_LIMIT}."]
    if kind not in RuleKind.values:
        errors["kind"] = [f"Must be one of {', '.join(RuleKind.values)}."]
    try:
        if kind == RuleKind.FIT:
            if isinstance(condition, dict) and condition.get("field") in NOT_FOR_FIT_RULES:
                raise ConditionError({"field": [f"A fit rule cannot test {condition['field']}, which scoring sets."]})
            condition = validate_lead_condition(condition, allow_score_fields=False)
        elif kind == RuleKind.BEHAVIOR:
            condition = validate_activity_condition(
                condition, types=activity_types.known(organization_id) if organization_id else None)
    except ConditionError as exc:
        errors["condition"] = [f"{key}: {message}" for key, messages in exc.errors.items() for message in messages]
    if kind == RuleKind.FIT and (max_occurrences is not None or window_days is not None):
        errors["max_occurrences" if max_occurrences is not None else "window_days"] = [
            "Only behaviour rules count occurrences in a window."]
    if max_occurrences is not None and not _whole(max_occurrences, 1, 100_000):
        errors["max_occurrences"] = ["Must be a whole number from 1 to 100,000, or empty for no cap."]
    if window_days is not None and not _whole(window_days, 1, 36_500):
        errors["window_days"] = ["Must be a whole number of days from 1 to 36,500, or empty for all time."]
    if errors:
        raise ConditionError(errors)
    return condition


def _ordered_bands(value, labels: list[str], name: str) -> dict:
    """`labels` best first; each band's lowest value must be strictly above the next one's."""
    if not isinstance(value, dict) or set(value) != set(labels):
        raise ConditionError({name: [f"Give exactly {', '.join(labels)}."]})
    for label in labels:
        if not _whole(value[label], -100_000, 100_000):
            raise ConditionError({name: [f"{label} must be a whole number."]})
    for higher, lower in itertools.pairwise(labels):
        if value[higher] <= value[lower]:
            raise ConditionError({name: [f"{higher} ({value[higher]}) must be above {lower} ({value[lower]})."]})
    return {label: value[label] for label in labels}


def clean_settings(data: dict) -> dict:
    cleaned = dict(data)
    errors = {}
    for name, labels in (("grade_bands", ["A", "B", "C", "D"]), ("temperature_bands", ["hot", "warm"])):
        if name in data:
            try:
                cleaned[name] = _ordered_bands(data[name], labels, name)
            except ConditionError as exc:
                errors.update(exc.errors)
    if "mql_min_grade" in data and data["mql_min_grade"] not in Grade.values:
        errors["mql_min_grade"] = [f"Must be one of {', '.join(Grade.values)}."]
    if "mql_score" in data and not _whole(data["mql_score"], -100_000, 100_000):
        errors["mql_score"] = ["Must be a whole number from -100,000 to 100,000."]
    if "mql_rule" in data and data["mql_rule"] not in MqlRule.values:
        errors["mql_rule"] = [f"Must be one of {', '.join(MqlRule.values)}."]
    if "mql_probability" in data:
        try:
            probability = decimal.Decimal(str(data["mql_probability"]))
        except (decimal.InvalidOperation, ValueError):
            probability = None
        if (probability is None or isinstance(data["mql_probability"], bool) or not probability.is_finite()
                or not 0 < probability <= 1 or probability != round(probability, 4)):
            errors["mql_probability"] = ["Must be a probability above 0 and at most 1, with up to 4 decimals "
                                         "(0.6 is 60%)."]
        else:
            cleaned["mql_probability"] = probability
    if "mql_probability_anyway" in data and not isinstance(data["mql_probability_anyway"], bool):
        errors["mql_probability_anyway"] = ["Must be true or false."]
    half_life = data.get("decay_half_life_days")
    if half_life is not None and not _whole(half_life, 1, 3650):
        errors["decay_half_life_days"] = ["Must be a whole number of days from 1 to 3,650, or empty for no decay."]
    if errors:
        raise ConditionError(errors)
    return cleaned


# ----------------------------------------------------------------------------------------------- config


def setup_organization(*, organization_id) -> ScoringSettings:
    """The org's settings with the default rule set, created once."""
    settings, created = ScoringSettings.objects.get_or_create(organization_id=organization_id,
                                                              defaults=DEFAULT_SETTINGS)
    if created:
        ScoringRule.objects.bulk_create(
            ScoringRule(organization_id=organization_id, name=name, kind=kind, points=points, condition=condition,
                        max_occurrences=cap, window_days=window)
            for name, kind, points, condition, cap, window in DEFAULT_RULES
        )
    return settings


def get_settings(organization_id) -> ScoringSettings:
    # the predictive model rides along: instant scoring writes its probability too, without another query
    settings = (ScoringSettings.objects.filter(organization_id=organization_id)
                .select_related("predictive_model").first())
    return settings or setup_organization(organization_id=organization_id)


def rule_of(rule: ScoringRule) -> Rule:
    return Rule(id=rule.pk, name=rule.name, kind=rule.kind, points=rule.points, condition=rule.condition,
                max_occurrences=rule.max_occurrences, window_days=rule.window_days)


def load_config(organization_id, *, draft: Rule | None = None, replaces=None, settings=None,
                rules: list[Rule] | None = None) -> Config:
    """The org's active rules and settings; with `draft`, as they would be with that rule added (or put in
    place of rule `replaces`); with `rules`, as they would be with those in place of all the active ones."""
    settings = settings or get_settings(organization_id)
    if rules is None:
        rules = [rule_of(rule) for rule in ScoringRule.objects.for_org(organization_id).filter(active=True)
                 if rule.pk != replaces]
    else:
        rules = list(rules)
    if draft is not None:
        rules.append(draft)
    return Config(
        rules=rules, grade_bands=settings.grade_bands, temperature_bands=settings.temperature_bands,
        mql_score=settings.mql_score, mql_min_grade=settings.mql_min_grade,
        decay_half_life_days=settings.decay_half_life_days,
        predictive=settings.predictive_model.model if settings.predictive_model_id else None,
        mql_probability=settings.mql_probability if handoff(settings).by_probability else None,
    )


@dataclass(frozen=True)
class Handoff:
    """What hands the org's leads to sales now, and why, in words for the settings page and the API."""

    by_probability: bool
    reason: str


def handoff(settings: ScoringSettings) -> Handoff:
    """The one rule of which MQL rule applies: the probability only when the org chose it, a model scores its leads,
    and that model beats the rule score on its holdout or the admin chose to use it anyway; else score and grade."""
    if settings.mql_rule != MqlRule.PROBABILITY:
        return Handoff(False, "Score and grade hand leads to sales.")
    model = settings.predictive_model if settings.predictive_model_id else None
    if model is None:
        return Handoff(False, "No conversion model is trained yet: score and grade hand leads to sales until one is.")
    metrics = model.metrics or {}
    if metrics.get("beats_rules"):
        return Handoff(True, f"Conversion probability hands leads to sales (model v{model.version} beats the rule "
                             f"score on its holdout: AUC {metrics.get('auc')} against {metrics.get('rule_auc')}).")
    if settings.mql_probability_anyway:
        return Handoff(True, f"Conversion probability hands leads to sales, as chosen, although model "
                             f"v{model.version} does not beat the rule score on its holdout (AUC {metrics.get('auc')} "
                             f"against {metrics.get('rule_auc')}).")
    return Handoff(False, f"Model v{model.version} does not beat the rule score on its holdout (AUC "
                          f"{metrics.get('auc')} against {metrics.get('rule_auc')}): score and grade hand leads to "
                          "sales unless you tick “use it anyway”.")


def request_recalculation(*, organization_id) -> None:
    """Mark the stored scores stale and re-score the org in the background (after this transaction)."""
    get_settings(organization_id)
    ScoringSettings.objects.filter(organization_id=organization_id).update(
        config_version=F("config_version") + 1, recalc_status=RecalculationStatus.QUEUED, recalc_error="",
        recalc_swept_until=timezone.now() + timedelta(seconds=django_settings.SWEEP_AFTER_SECONDS))

    def enqueue():
        from .tasks import recalculate

        recalculate.delay(str(organization_id))

    transaction.on_commit(enqueue)


@transaction.atomic
def save_rule(*, organization_id, rule: ScoringRule | None = None, actor=None, **fields) -> ScoringRule:
    """Create (rule None) or change a rule; the org is re-scored."""
    rule = rule or ScoringRule(organization_id=organization_id)
    before = audit.stored(rule)
    for name, value in fields.items():
        setattr(rule, name, value)
    rule.condition = clean_rule(kind=rule.kind, condition=rule.condition, points=rule.points,
                                max_occurrences=rule.max_occurrences, window_days=rule.window_days,
                                organization_id=organization_id)
    rule.save()
    audit.record_save(organization=organization_id, actor=actor, obj=rule, before=before)
    request_recalculation(organization_id=organization_id)
    return rule


@transaction.atomic
def delete_rule(*, rule: ScoringRule, actor=None) -> None:
    organization_id = rule.organization_id
    with audit.Deletion(rule, organization=organization_id, actor=actor):
        rule.delete()
    request_recalculation(organization_id=organization_id)


@transaction.atomic
def update_settings(*, organization_id, actor=None, **fields) -> ScoringSettings:
    fields = clean_settings(fields)
    settings = ScoringSettings.objects.select_for_update().get(pk=get_settings(organization_id).pk)
    before = audit.snapshot(settings)
    for name, value in fields.items():
        setattr(settings, name, value)
    settings.save(update_fields=[*fields, "updated_at"])
    audit.record_save(organization=organization_id, actor=actor, obj=settings, before=before)
    request_recalculation(organization_id=organization_id)
    settings.refresh_from_db()
    return settings


# ----------------------------------------------------------------------------------------------- scoring


def _mql_reason(config: Config) -> str:
    if config.mql_probability is not None:
        return f"Reached the MQL threshold: conversion probability {config.mql_probability:.1%} or more."
    return (f"Reached the MQL threshold: score {config.mql_score} or more "
            f"and grade {config.mql_min_grade} or better.")


def promote(*, organization_id, config: Config, scope: dict, crossed) -> list:
    """Move the leads of `scope` over the MQL rule to MQL (a recycled one only when it is in `crossed`: it came
    back over the threshold just now), and say so. Returns their ids. Inside the caller's transaction."""
    promoted = promote_to_mql(
        organization_id=organization_id, reason=_mql_reason(config),
        leads=config.meets_mql() & (Q(**scope) & ~Q(lifecycle_stage=LifecycleStage.RECYCLED) | Q(pk__in=crossed)))
    if promoted:
        events.emit(events.LEAD_MQL, organization_id=organization_id, lead_ids=promoted)
    return promoted


def _bounds_sql(scope: dict) -> tuple[str, list]:
    tests = {"id": "l.id = %s", "id__gte": "l.id >= %s", "id__lte": "l.id <= %s", "id__in": "l.id = ANY(%s)"}
    return "".join(f" AND {tests[key]}" for key in scope), [list(v) if key == "id__in" else v
                                                           for key, v in scope.items()]


def score_leads(*, organization_id, config: Config, scope: dict) -> list:
    """Re-score the org's leads in `scope` in one statement: store the new numbers where they changed, keep a
    snapshot where the score changed, and promote those now over the threshold to MQL. Returns MQL ids."""
    scored_sql, params = scored_leads_sql(organization_id, config, scope)
    # The same bounds on the updated table, so the join reads only the scope's leads, not the whole org's.
    bounds_sql, bounds = _bounds_sql(scope)
    parts = ("fit_gained", "fit_lost", "behavior_gained", "behavior_lost", "fit_score", "behavior_score", "score",
             "grade", "temperature", "score_rules")
    sql = f"""
        WITH {scored_sql},
        changed AS (
            UPDATE leads_lead l SET {", ".join(f"{part} = s.{part}" for part in parts)}, updated_at = %s
            FROM scored s
            WHERE l.id = s.id AND l.organization_id = %s{bounds_sql}
              AND ({", ".join(f"l.{part}" for part in parts)}) IS DISTINCT FROM ({", ".join(f"s.{p}" for p in parts)})
            RETURNING l.id, l.score, l.fit_score, l.behavior_score, s.old_score, s.stage,
                      s.old_score >= %s AND s.old_grade = ANY(%s) AS was_over
        ),
        snapshots AS (
            INSERT INTO scoring_scoresnapshot (organization_id, lead_id, recorded_at, score, fit_score, behavior_score)
            SELECT %s, id, %s, score, fit_score, behavior_score FROM changed WHERE score <> old_score
        )
        SELECT id FROM changed WHERE stage = %s AND NOT was_over
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Even for a handful of leads: an org that grew since its statistics were taken (a busy new org) is
            # planned as a few rows, and a nested loop would then scan all its leads once per lead.
            cursor.execute(PLAN_FOR_SETS)
            # A new score is a change like any other: integrations syncing leads get it (leadcrm/sync.py).
            cursor.execute(sql, [*params, timezone.now(), organization_id, *bounds, config.mql_score,
                                 config.mql_grades(), organization_id, config.now, LifecycleStage.RECYCLED])
            # A recycled lead comes back to MQL only by crossing the threshold after it was recycled: from below
            # it before this statement to over it now, not because a re-score found it still over.
            crossed = [row[0] for row in cursor.fetchall()]
            if config.predictive:  # the new score is one of the model's inputs
                crossed_probability = predictive.write_probabilities(
                    cursor, organization_id=organization_id, model=config.predictive, scope=scope,
                    crossing=config.mql_probability)
                if config.mql_probability is not None:  # the probability rule hands off: its crossings count
                    crossed = crossed_probability
            cursor.execute(PLAN_AS_USUAL)  # the promotion below picks a handful of rows by index
        return promote(organization_id=organization_id, config=config, scope=scope, crossed=crossed)


def score_lead(*, organization_id, lead_id) -> None:
    """Instant scoring of one lead with the org's current rules."""
    score_leads(organization_id=organization_id, config=load_config(organization_id), scope={"id": lead_id})


def score_lead_set(*, organization_id, lead_ids) -> None:
    """Re-score a set of the org's leads (a bulk edit's) in one statement."""
    if lead_ids:
        score_leads(organization_id=organization_id, config=load_config(organization_id),
                    scope={"id__in": [UUID(str(lead_id)) for lead_id in lead_ids]})


def _org_lock(organization_id):
    """One bulk recalculation per org at a time; the lock is freed if the worker dies."""
    return locks.try_lock(locks.RECALCULATION, organization_id)


def _chunks(organization_id):
    """(low, high) id bounds of consecutive chunks of the org's leads, in id order (keyset, no OFFSET scans
    beyond one chunk)."""
    leads = Lead.objects.for_org(organization_id).order_by("id").values_list("id", flat=True)
    low = leads.first()
    while low is not None:
        high = leads.filter(id__gte=low)[RECALC_CHUNK - 1:RECALC_CHUNK].first()
        if high is None:
            high = leads.order_by("-id").first()
        yield low, high
        low = leads.filter(id__gt=high).first()


def write_all_probabilities(*, organization_id) -> int:
    """The active model's probability for every lead of the org: one statement per chunk, a transaction each; when
    the probability hands leads to sales, those now over its threshold become MQLs in the same transaction.
    Returns how many leads were promoted."""
    config = load_config(organization_id)
    if not config.predictive:
        return 0
    promoted = 0
    for low, high in _chunks(organization_id):
        scope = {"id__gte": low, "id__lte": high}
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(PLAN_FOR_SETS)
            crossed = predictive.write_probabilities(cursor, organization_id=organization_id,
                                                     model=config.predictive, scope=scope,
                                                     crossing=config.mql_probability)
            if config.mql_probability is not None:
                cursor.execute(PLAN_AS_USUAL)
                promoted += len(promote(organization_id=organization_id, config=config, scope=scope,
                                        crossed=crossed))
    return promoted


def _settings_row(organization_id):
    return ScoringSettings.objects.filter(organization_id=organization_id)


def _recalculate_once(organization_id) -> bool:
    """One pass over the org with the rules of one config version. True when the stored scores are current."""
    settings = get_settings(organization_id)
    version = settings.config_version
    if settings.scored_version >= version:
        if settings.recalc_status != RecalculationStatus.IDLE:
            _settings_row(organization_id).update(recalc_status=RecalculationStatus.IDLE)
        return True
    config = load_config(organization_id, settings=settings)
    total = Lead.objects.for_org(organization_id).count()
    _settings_row(organization_id).update(recalc_status=RecalculationStatus.RUNNING, recalc_done=0,
                                          recalc_total=total, recalc_started_at=timezone.now(), recalc_error="")
    done = 0
    for low, high in _chunks(organization_id):
        if _settings_row(organization_id).values_list("config_version", flat=True).get() != version:
            return False  # the rules changed under us: start again with the new ones
        score_leads(organization_id=organization_id, config=config, scope={"id__gte": low, "id__lte": high})
        done = min(total, done + RECALC_CHUNK)
        _settings_row(organization_id).update(recalc_done=done)
    finished = _settings_row(organization_id).filter(config_version=version).update(
        scored_version=version, recalc_status=RecalculationStatus.IDLE, recalc_done=total,
        recalc_finished_at=timezone.now())
    return bool(finished)


def recalculate_organization(*, organization_id) -> None:
    """Re-score every lead of the org, set-based in chunks, until the scores match the latest configuration.

    Edits made meanwhile are not lost: each bumps `config_version`, which makes a running pass start over, and
    a pass that could not take the lock leaves the work to the holder, which checks again after letting go.
    """
    while True:
        with _org_lock(organization_id) as acquired:
            if not acquired:
                return
            try:
                while not _recalculate_once(organization_id):
                    pass
            except Exception as exc:
                _settings_row(organization_id).update(recalc_status=RecalculationStatus.FAILED,
                                                      recalc_error=str(exc)[:1000])
                raise
        settings = get_settings(organization_id)
        if settings.scored_version >= settings.config_version:
            return


NEVER = datetime(1970, 1, 1, tzinfo=UTC)  # a re-scoring requested before sweeps kept a lease is due at once


def stalled_recalculations() -> list:
    """Orgs whose stored scores are behind their rules while no worker re-scores them: the task was lost (a killed
    worker, a broker restarted empty). Each is claimed for SWEEP_AFTER_SECONDS, so its new task has that long to
    start; the lock tells a running recalculation from a dead one."""
    lease = timedelta(seconds=django_settings.SWEEP_AFTER_SECONDS)
    stalled = []
    for organization_id in selectors.organizations_behind():  # each claimed under its own scope
        with rls.scope(organization_id):
            behind = ScoringSettings.objects.filter(organization_id=organization_id,
                                                    scored_version__lt=F("config_version"))
            claimed = claims.claim(behind, due=Coalesce("recalc_swept_until", Value(NEVER)),
                                   lease_field="recalc_swept_until", limit=1, lease=lease)
        if claimed and not locks.is_held(locks.RECALCULATION, organization_id):
            stalled.append(organization_id)
    return stalled


def apply_decay() -> int:
    """Nightly: re-score every org that has decay on, so behaviour points fade. Returns how many orgs."""
    organization_ids = selectors.organizations_with_decay()  # each is then re-scored under its own org
    for organization_id in organization_ids:
        with rls.scope(organization_id), transaction.atomic():
            request_recalculation(organization_id=organization_id)
    return len(organization_ids)


def _leads_past_a_window(organization_id, since, now) -> list:
    """Ids of the org's leads with an activity that a windowed rule counted until some instant in (since, now]:
    one query over the activity index, only the leads whose score that changes."""
    expired = Q(pk__in=[])
    for rule in ScoringRule.objects.for_org(organization_id).filter(kind=RuleKind.BEHAVIOR, active=True,
                                                                    window_days__isnull=False):
        window = timedelta(days=rule.window_days)
        ran_out = Q(occurred_at__lte=now - window) & (Q() if since is None else Q(occurred_at__gt=since - window))
        expired |= Q(type=rule.condition["activity_type"]) & activity_q(rule.condition) & ran_out
    return list(Activity.objects.for_org(organization_id).filter(expired).order_by()
                .values_list("lead_id", flat=True).distinct())


def expire_windows(*, now=None) -> int:
    """Nightly: re-score the leads whose activities just left a rule's `window_days`, so their points go without
    waiting for new activity. Set-based per org, from where the last run stopped. Returns how many leads."""
    now = now or timezone.now()
    total = 0
    for organization_id in selectors.organizations_with_windows():
        with rls.scope(organization_id), transaction.atomic():
            settings = ScoringSettings.objects.select_for_update().get(pk=get_settings(organization_id).pk)
            lead_ids = _leads_past_a_window(organization_id, settings.windows_expired_through, now)
            config = replace(load_config(organization_id, settings=settings), now=now)
            for start in range(0, len(lead_ids), RECALC_CHUNK):
                score_leads(organization_id=organization_id, config=config,
                            scope={"id__in": lead_ids[start:start + RECALC_CHUNK]})
            _settings_row(organization_id).update(windows_expired_through=now)
        total += len(lead_ids)
    return total
