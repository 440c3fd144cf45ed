"""Tests of the condition language and of scoring. The helpers below make data with the ORM, so each test
decides exactly which rules and settings an org has."""

import itertools
from dataclasses import replace
from datetime import timedelta

from django.utils import timezone

from leads.models import Activity, Lead
from scoring import services
from scoring.models import ScoringRule, ScoringSettings

_numbers = itertools.count()
SCORE_PARTS = ("fit_gained", "fit_lost", "behavior_gained", "behavior_lost", "fit_score", "behavior_score", "score",
               "grade", "temperature")


def make_lead(org, **fields) -> Lead:
    fields.setdefault("email", f"lead{next(_numbers)}@example.test")
    return Lead.objects.create(organization_id=getattr(org, "pk", org), **fields)


def add_activity(lead, type, *, properties=None, at=None, days_ago=0) -> Activity:
    at = (at or timezone.now()) - timedelta(days=days_ago)
    return Activity.objects.create(organization_id=lead.organization_id, lead=lead, type=type,
                                   properties=properties or {}, occurred_at=at)


def set_rules(org, *rules, **settings) -> list[ScoringRule]:
    """Replace the org's rules (each a dict of ScoringRule fields, checked by clean_rule) and change settings,
    without asking for a recalculation."""
    organization_id = getattr(org, "pk", org)
    services.get_settings(organization_id)
    ScoringRule.objects.filter(organization_id=organization_id).delete()
    created = []
    for number, rule in enumerate(rules):
        rule = {"name": f"rule {number}", **rule}
        rule["condition"] = services.clean_rule(
            kind=rule["kind"], condition=rule["condition"], points=rule["points"],
            max_occurrences=rule.get("max_occurrences"), window_days=rule.get("window_days"))
        created.append(ScoringRule.objects.create(organization_id=organization_id, **rule))
    if settings:
        ScoringSettings.objects.filter(organization_id=organization_id).update(**settings)
    return created


def fit(points, condition, **fields) -> dict:
    return {"kind": "fit", "points": points, "condition": condition, **fields}


def behavior(points, condition, **fields) -> dict:
    return {"kind": "behavior", "points": points, "condition": condition, **fields}


def score_org(org, *, now=None, scope=None) -> list:
    """Score the org's leads (all, or `scope`) with its current rules, as of `now`. Returns the MQL ids."""
    organization_id = getattr(org, "pk", org)
    config = services.load_config(organization_id)
    if now is not None:
        config = replace(config, now=now)
    return services.score_leads(organization_id=organization_id, config=config, scope=scope or {})


def numbers(lead) -> dict:
    lead.refresh_from_db()
    return {part: getattr(lead, part) for part in SCORE_PARTS}
