"""The score calculation (fit and behaviour rules, caps, windows, decay, bands, the four parts), the checks of
rules and settings, the MQL hand-off, and a property test against a reference implementation."""

import re
import uuid
from dataclasses import replace
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from unittest import mock

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadcrm import events
from leadcrm.models import Organization
from leads.conditions import NO_VALUE_OPS, OPS_BY_KIND, ConditionError
from leads.models import Activity, Lead
from scoring import services
from scoring.models import ScoringRule, ScoringSettings

from . import (
    SCORE_PARTS,
    add_activity,
    behavior,
    fit,
    make_lead,
    numbers,
    score_org,
    set_rules,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()
BANDS = {"grade_bands": {"A": 40, "B": 30, "C": 15, "D": 0}, "temperature_bands": {"hot": 60, "warm": 25}}


# ----------------------------------------------------------------------------------------------- fit


def test_fit_rules_add_their_points_once_per_matching_lead(org):
    set_rules(
        org,
        fit(20, {"field": "industry", "op": "in", "value": ["software"]}),
        fit(15, {"field": "company_size", "op": "between", "value": [50, 5000]}),
        fit(-10, {"field": "company", "op": "is_empty"}),
        fit(7, {"field": "custom_fields.plan", "op": "eq", "value": "pro"}),
        **BANDS,
    )
    both = make_lead(org, industry="Software", company_size=100, company="Acme", custom_fields={"plan": "Pro"})
    negative = make_lead(org, industry="Retail", company="")
    nothing = make_lead(org, industry="Retail", company="Initech", company_size=None)
    score_org(org)
    assert numbers(both) == {"fit_gained": 42, "fit_lost": 0, "behavior_gained": 0, "behavior_lost": 0,
                             "fit_score": 42, "behavior_score": 0, "score": 42, "grade": "A", "temperature": "warm"}
    assert numbers(negative) == {"fit_gained": 0, "fit_lost": -10, "behavior_gained": 0, "behavior_lost": 0,
                                 "fit_score": -10, "behavior_score": 0, "score": -10, "grade": "F",
                                 "temperature": "cold"}
    assert numbers(nothing)["score"] == 0 and numbers(nothing)["grade"] == "D"


# ----------------------------------------------------------------------------------------------- behaviour


def test_behavior_rules_add_points_per_matching_activity(org):
    set_rules(
        org,
        behavior(5, {"activity_type": "email_click"}),
        behavior(10, {"activity_type": "page_view", "property": "url", "op": "contains", "value": "/pricing"}),
        behavior(3, {"activity_type": "page_view", "where": [{"property": "seconds", "op": "gt", "value": 30}]}),
    )
    lead = make_lead(org)
    for _ in range(3):
        add_activity(lead, "email_click")
    add_activity(lead, "page_view", properties={"url": "/Pricing", "seconds": "45"})  # 10 + 3
    add_activity(lead, "page_view", properties={"url": "/blog", "seconds": 5})  # nothing
    add_activity(lead, "email_open")  # no rule
    other = make_lead(org)
    add_activity(other, "page_view", properties={"url": "/blog", "seconds": 31})
    score_org(org)
    assert numbers(lead)["behavior_gained"] == 15 + 13
    assert numbers(lead)["score"] == 28
    assert numbers(other)["behavior_score"] == 3


def test_max_occurrences_counts_the_most_recent_ones(org):
    # With a one-day half-life, ages 0, 1, 2 and 3 days weigh 1, 1/2, 1/4, 1/8: only the newest two give 15.
    set_rules(org, behavior(10, {"activity_type": "download"}, max_occurrences=2), decay_half_life_days=1)
    lead = make_lead(org)
    for days in (3, 0, 2, 1):
        add_activity(lead, "download", at=NOW, days_ago=days)
    score_org(org, now=NOW)
    assert numbers(lead)["behavior_score"] == 15


def test_max_occurrences_without_decay_caps_the_count(org):
    set_rules(org, behavior(-4, {"activity_type": "email_bounce"}, max_occurrences=3),
              behavior(2, {"activity_type": "email_open"}))
    lead = make_lead(org)
    for _ in range(5):
        add_activity(lead, "email_bounce")
        add_activity(lead, "email_open")
    score_org(org)
    assert numbers(lead)["behavior_lost"] == -12
    assert numbers(lead)["behavior_gained"] == 10


def test_window_days_counts_only_recent_activities(org):
    set_rules(org, behavior(10, {"activity_type": "download"}, window_days=30),
              behavior(1, {"activity_type": "download"}))
    lead = make_lead(org)
    for days in (0, 29, 30, 31, 400):
        add_activity(lead, "download", at=NOW, days_ago=days)
    score_org(org, now=NOW)
    # the windowed rule: 0, 29 and exactly 30 days old; the all-time rule: all five
    assert numbers(lead)["behavior_score"] == 30 + 5


def test_cap_counts_within_the_window(org):
    set_rules(org, behavior(10, {"activity_type": "download"}, window_days=7, max_occurrences=2))
    lead = make_lead(org)
    for days in (1, 20, 30):
        add_activity(lead, "download", at=NOW, days_ago=days)
    score_org(org, now=NOW)
    assert numbers(lead)["behavior_score"] == 10


def test_decay_halves_points_every_half_life(org):
    set_rules(org, behavior(10, {"activity_type": "download"}), behavior(-10, {"activity_type": "unsubscribe"}),
              decay_half_life_days=10)
    fresh, one, two, negative = (make_lead(org) for _ in range(4))
    add_activity(fresh, "download", at=NOW)
    add_activity(one, "download", at=NOW, days_ago=10)
    add_activity(two, "download", at=NOW, days_ago=20)
    add_activity(two, "download", at=NOW, days_ago=20)
    add_activity(negative, "unsubscribe", at=NOW, days_ago=10)
    score_org(org, now=NOW)
    assert numbers(fresh)["behavior_score"] == 10
    assert numbers(one)["behavior_score"] == 5
    assert numbers(two)["behavior_score"] == 5  # 2.5 + 2.5
    assert numbers(negative)["behavior_lost"] == -5
    assert numbers(negative)["score"] == -5


def test_decayed_points_are_rounded_half_away_from_zero(org):
    set_rules(org, behavior(15, {"activity_type": "download"}), behavior(-5, {"activity_type": "unsubscribe"}),
              decay_half_life_days=7)
    lead = make_lead(org)
    add_activity(lead, "download", at=NOW, days_ago=7)  # 7.5
    add_activity(lead, "unsubscribe", at=NOW, days_ago=7)  # -2.5
    score_org(org, now=NOW)
    assert numbers(lead)["behavior_gained"] == 8
    assert numbers(lead)["behavior_lost"] == -3
    assert numbers(lead)["behavior_score"] == 5


def test_decay_does_not_touch_fit_points(org):
    set_rules(org, fit(20, {"field": "industry", "op": "eq", "value": "Software"}), decay_half_life_days=1)
    lead = make_lead(org, industry="Software")
    Lead.objects.filter(pk=lead.pk).update(created_at=NOW.replace(year=NOW.year - 1))
    score_org(org, now=NOW)
    assert numbers(lead)["fit_score"] == 20


def test_without_decay_old_activities_count_in_full(org):
    set_rules(org, behavior(10, {"activity_type": "download"}))
    lead = make_lead(org)
    add_activity(lead, "download", at=NOW, days_ago=3000)
    score_org(org, now=NOW)
    assert numbers(lead)["behavior_score"] == 10


# ----------------------------------------------------------------------------------------------- totals and bands


def test_four_parts_and_totals(org):
    set_rules(
        org,
        fit(20, {"field": "industry", "op": "eq", "value": "Software"}),
        fit(5, {"field": "tags", "op": "contains", "value": "vip"}),
        fit(-10, {"field": "company", "op": "is_empty"}),
        behavior(10, {"activity_type": "download"}),
        behavior(-25, {"activity_type": "unsubscribe"}),
        behavior(-3, {"activity_type": "email_bounce"}),
        **BANDS,
    )
    lead = make_lead(org, industry="Software", tags=["vip"], company="")
    add_activity(lead, "download")
    add_activity(lead, "download")
    add_activity(lead, "unsubscribe")
    add_activity(lead, "email_bounce")
    score_org(org)
    assert numbers(lead) == {"fit_gained": 25, "fit_lost": -10, "behavior_gained": 20, "behavior_lost": -28,
                             "fit_score": 15, "behavior_score": -8, "score": 7, "grade": "C", "temperature": "cold"}


def test_grade_and_temperature_bands(org):
    points = [60, 59, 41, 40, 39, 30, 29, 25, 24, 15, 14, 1, 0, -1]
    set_rules(org, *(fit(n, {"field": "industry", "op": "eq", "value": f"i{n}"}) for n in points), **BANDS)
    leads = {n: make_lead(org, industry=f"i{n}") for n in points}
    score_org(org)
    grades = {n: numbers(lead)["grade"] for n, lead in leads.items()}
    temperatures = {n: numbers(lead)["temperature"] for n, lead in leads.items()}
    assert grades == {60: "A", 59: "A", 41: "A", 40: "A", 39: "B", 30: "B", 29: "C", 25: "C", 24: "C", 15: "C",
                      14: "D", 1: "D", 0: "D", -1: "F"}
    assert temperatures == {60: "hot", 59: "warm", 41: "warm", 40: "warm", 39: "warm", 30: "warm", 29: "warm",
                            25: "warm", 24: "cold", 15: "cold", 14: "cold", 1: "cold", 0: "cold", -1: "cold"}


def test_grade_follows_fit_only_and_temperature_the_whole_score(org):
    set_rules(org, fit(10, {"field": "industry", "op": "eq", "value": "Software"}),
              behavior(50, {"activity_type": "download"}), **BANDS)
    lead = make_lead(org, industry="Software")
    add_activity(lead, "download")
    score_org(org)
    assert numbers(lead)["grade"] == "D"  # fit 10
    assert numbers(lead)["temperature"] == "hot"  # score 60


def test_inactive_rules_are_ignored(org):
    rules = set_rules(org, fit(20, {"field": "industry", "op": "eq", "value": "Software"}),
                      behavior(10, {"activity_type": "download"}), fit(1, {"field": "company", "op": "is_empty"}))
    ScoringRule.objects.filter(pk__in=[rules[0].pk, rules[1].pk]).update(active=False)
    lead = make_lead(org, industry="Software", company="")
    add_activity(lead, "download")
    score_org(org)
    assert numbers(lead)["score"] == 1


def test_a_rule_that_can_match_no_lead_scores_nothing(org):
    # an id beyond the column's range, which Django compiles to no SQL at all
    set_rules(org, fit(5, {"field": "owner", "op": "eq", "value": 2**40}),
              fit(7, {"field": "owner", "op": "neq", "value": 2**40}),
              fit(11, {"field": "company_size", "op": "eq", "value": -3}))
    lead = make_lead(org, company_size=10)
    score_org(org)
    assert numbers(lead)["fit_score"] == 7


def test_fractional_numbers_are_not_cut_to_integers(org):
    set_rules(org, fit(5, {"field": "company_size", "op": "eq", "value": 2.5}),
              fit(7, {"field": "company_size", "op": "in", "value": ["2.5"]}),
              fit(11, {"field": "company_size", "op": "lt", "value": 2.5}))
    lead = make_lead(org, company_size=2)
    score_org(org)
    assert numbers(lead)["fit_score"] == 11


def test_no_rules_scores_zero(org):
    set_rules(org, **BANDS)
    lead = make_lead(org, industry="Software")
    Lead.objects.filter(pk=lead.pk).update(score=99, fit_score=99, grade="A")
    add_activity(lead, "download")
    score_org(org)
    assert numbers(lead) == {"fit_gained": 0, "fit_lost": 0, "behavior_gained": 0, "behavior_lost": 0,
                             "fit_score": 0, "behavior_score": 0, "score": 0, "grade": "D", "temperature": "cold"}


def test_score_lead_scores_only_that_lead_and_follows_the_facts(org):
    set_rules(org, behavior(10, {"activity_type": "download"}))
    lead, other = make_lead(org), make_lead(org)
    add_activity(other, "download")
    activity = add_activity(lead, "download")
    services.score_lead(organization_id=org.pk, lead_id=lead.pk)
    assert numbers(lead)["score"] == 10
    assert numbers(other)["score"] == 0
    activity.delete()
    services.score_lead(organization_id=org.pk, lead_id=lead.pk)
    assert numbers(lead)["score"] == 0


# ----------------------------------------------------------------------------------------------- checks

GOOD_FIT = {"field": "industry", "op": "eq", "value": "Software"}
GOOD_BEHAVIOR = {"activity_type": "download"}

RULE_REFUSALS = [
    ({"kind": "fit", "condition": GOOD_FIT, "points": 1001}, "points"),
    ({"kind": "fit", "condition": GOOD_FIT, "points": -1001}, "points"),
    ({"kind": "fit", "condition": GOOD_FIT, "points": 1.5}, "points"),
    ({"kind": "fit", "condition": GOOD_FIT, "points": True}, "points"),
    ({"kind": "fit", "condition": GOOD_FIT, "points": "5"}, "points"),
    ({"kind": "both", "condition": GOOD_FIT, "points": 5}, "kind"),
    ({"kind": "fit", "condition": {"field": "score", "op": "gt", "value": 5}, "points": 5}, "condition"),
    ({"kind": "fit", "condition": {"field": "fit_score", "op": "gt", "value": 5}, "points": 5}, "condition"),
    ({"kind": "fit", "condition": {"field": "grade", "op": "eq", "value": "A"}, "points": 5}, "condition"),
    ({"kind": "fit", "condition": {"field": "temperature", "op": "eq", "value": "hot"}, "points": 5}, "condition"),
    ({"kind": "fit", "condition": {"field": "lifecycle_stage", "op": "eq", "value": "mql"}, "points": 5},
     "condition"),
    ({"kind": "fit", "condition": {"field": "industry", "op": "gt", "value": 1}, "points": 5}, "condition"),
    ({"kind": "fit", "condition": GOOD_BEHAVIOR, "points": 5}, "condition"),
    ({"kind": "behavior", "condition": GOOD_FIT, "points": 5}, "condition"),
    ({"kind": "behavior", "condition": {"activity_type": "telepathy"}, "points": 5}, "condition"),
    ({"kind": "fit", "condition": GOOD_FIT, "points": 5, "max_occurrences": 3}, "max_occurrences"),
    ({"kind": "fit", "condition": GOOD_FIT, "points": 5, "window_days": 30}, "window_days"),
    ({"kind": "behavior", "condition": GOOD_BEHAVIOR, "points": 5, "max_occurrences": 0}, "max_occurrences"),
    ({"kind": "behavior", "condition": GOOD_BEHAVIOR, "points": 5, "window_days": 0}, "window_days"),
]


@pytest.mark.parametrize(("rule", "key"), RULE_REFUSALS, ids=lambda v: v if isinstance(v, str) else "")
def test_bad_rule_is_refused(rule, key):
    with pytest.raises(ConditionError) as refused:
        services.clean_rule(**rule)
    assert set(refused.value.errors) == {key}


def test_good_rules_pass_the_checks():
    assert services.clean_rule(kind="fit", condition=GOOD_FIT, points=-1000) == GOOD_FIT
    assert services.clean_rule(kind="behavior", condition=GOOD_BEHAVIOR, points=1000, max_occurrences=1,
                               window_days=1) == GOOD_BEHAVIOR


def test_save_rule_refuses_and_saves_nothing(org):
    before = ScoringRule.objects.for_org(org).count()
    with pytest.raises(ConditionError):
        services.save_rule(organization_id=org.pk, name="bad", kind="fit", points=5,
                           condition={"field": "score", "op": "gt", "value": 1})
    assert ScoringRule.objects.for_org(org).count() == before


SETTINGS_REFUSALS = [
    ({"grade_bands": {"A": 10, "B": 20, "C": 5, "D": 0}}, "grade_bands"),
    ({"grade_bands": {"A": 40, "B": 30, "C": 30, "D": 0}}, "grade_bands"),  # equal is not above
    ({"grade_bands": {"A": 40, "B": 30, "C": 15}}, "grade_bands"),
    ({"grade_bands": {"A": 40, "B": 30, "C": 15, "D": 0, "E": -5}}, "grade_bands"),
    ({"grade_bands": {"A": "40", "B": 30, "C": 15, "D": 0}}, "grade_bands"),
    ({"grade_bands": {"A": 40.5, "B": 30, "C": 15, "D": 0}}, "grade_bands"),
    ({"grade_bands": [40, 30, 15, 0]}, "grade_bands"),
    ({"temperature_bands": {"hot": 25, "warm": 25}}, "temperature_bands"),
    ({"temperature_bands": {"hot": 10, "warm": 25}}, "temperature_bands"),
    ({"temperature_bands": {"hot": 60}}, "temperature_bands"),
    ({"temperature_bands": {"hot": True, "warm": 0}}, "temperature_bands"),
    ({"mql_min_grade": "Z"}, "mql_min_grade"),
]


@pytest.mark.parametrize(("data", "key"), SETTINGS_REFUSALS, ids=lambda v: v if isinstance(v, str) else "")
def test_bad_settings_are_refused(data, key):
    with pytest.raises(ConditionError) as refused:
        services.clean_settings(data)
    assert set(refused.value.errors) == {key}


def test_good_settings_pass_and_update_settings_refuses_bad_ones(org):
    good = {"grade_bands": {"A": 90, "B": 70, "C": 50, "D": -10}, "temperature_bands": {"hot": 80, "warm": 40},
            "mql_min_grade": "B"}
    assert services.clean_settings(good) == good
    settings = services.update_settings(organization_id=org.pk, **good)
    assert settings.grade_bands == good["grade_bands"] and settings.mql_min_grade == "B"
    with pytest.raises(ConditionError):
        services.update_settings(organization_id=org.pk, temperature_bands={"hot": 1, "warm": 2})
    assert ScoringSettings.objects.get(organization=org).temperature_bands == {"hot": 80, "warm": 40}


# ----------------------------------------------------------------------------------------------- MQL hand-off


@pytest.fixture
def mql_events():
    """Every lead.mql event delivered while the test runs."""
    received = []

    def recorder(*, event_id, **payload):
        assert isinstance(event_id, int)  # the event's outbox row, for consumers that tell repeats apart
        received.append(payload)

    events.subscribe(events.LEAD_MQL, recorder)
    yield received
    events._handlers[events.LEAD_MQL].remove(recorder)


@pytest.fixture
def mql_org(org):
    """Fit: Software +30 (grade B); behaviour: +10 a download. MQL at 50 with grade C or better."""
    set_rules(org, fit(30, {"field": "industry", "op": "eq", "value": "Software"}),
              behavior(10, {"activity_type": "download"}), mql_score=50, mql_min_grade="C", **BANDS)
    return org


def test_crossing_the_threshold_hands_the_lead_over_once(mql_org, mql_events, django_capture_on_commit_callbacks):
    lead = make_lead(mql_org, industry="Software")
    add_activity(lead, "download")
    with django_capture_on_commit_callbacks(execute=True):
        services.score_lead(organization_id=mql_org.pk, lead_id=lead.pk)
    lead.refresh_from_db()
    assert (lead.score, lead.lifecycle_stage) == (40, "lead")
    assert mql_events == []

    add_activity(lead, "download")
    with django_capture_on_commit_callbacks(execute=True):
        services.score_lead(organization_id=mql_org.pk, lead_id=lead.pk)
    lead.refresh_from_db()
    assert (lead.score, lead.grade, lead.lifecycle_stage) == (50, "B", "mql")
    assert "mql" in lead.stage_entered_at
    assert mql_events == [{"organization_id": mql_org.pk, "lead_ids": [lead.pk]}]
    change = Activity.objects.get(lead=lead, type="stage_change")
    assert change.properties["from"] == "lead" and change.properties["to"] == "mql"
    assert change.properties["score"] == 50 and change.properties["grade"] == "B"
    assert "50" in change.properties["reason"] and "C" in change.properties["reason"]

    # re-scoring, instantly or in bulk, and even after more activity, hands nothing over again
    add_activity(lead, "download")
    with django_capture_on_commit_callbacks(execute=True):
        services.score_lead(organization_id=mql_org.pk, lead_id=lead.pk)
    services.request_recalculation(organization_id=mql_org.pk)
    with django_capture_on_commit_callbacks(execute=True):
        services.recalculate_organization(organization_id=mql_org.pk)
    lead.refresh_from_db()
    assert lead.score == 60
    assert len(mql_events) == 1
    assert Activity.objects.filter(lead=lead, type="stage_change").count() == 1


def test_bulk_scoring_hands_over_every_lead_over_the_threshold_in_one_event(mql_org, mql_events,
                                                                              django_capture_on_commit_callbacks):
    over = [make_lead(mql_org, industry="Software") for _ in range(3)]
    under = make_lead(mql_org, industry="Software")
    for lead in over:
        add_activity(lead, "download")
        add_activity(lead, "download")
    with django_capture_on_commit_callbacks(execute=True):
        promoted = score_org(mql_org)
    assert sorted(promoted) == sorted(lead.pk for lead in over)
    assert len(mql_events) == 1 and sorted(mql_events[0]["lead_ids"]) == sorted(promoted)
    assert Lead.objects.get(pk=under.pk).lifecycle_stage == "lead"
    with django_capture_on_commit_callbacks(execute=True):
        assert score_org(mql_org) == []
    assert len(mql_events) == 1


@pytest.mark.parametrize("stage", ["sal", "sql", "opportunity", "customer", "disqualified", "mql"])
def test_a_lead_past_the_hand_off_is_never_moved_back(mql_org, mql_events, django_capture_on_commit_callbacks,
                                                      stage):
    lead = make_lead(mql_org, industry="Software", lifecycle_stage=stage)
    for _ in range(5):
        add_activity(lead, "download")
    with django_capture_on_commit_callbacks(execute=True):
        score_org(mql_org)
    lead.refresh_from_db()
    assert lead.score == 80
    assert lead.lifecycle_stage == stage
    assert mql_events == []
    assert not Activity.objects.filter(lead=lead, type="stage_change").exists()


@pytest.mark.parametrize("stage", ["subscriber", "recycled"])
def test_early_stages_are_handed_over_too(mql_org, stage):
    lead = make_lead(mql_org, industry="Software", lifecycle_stage=stage)
    for _ in range(2):
        add_activity(lead, "download")
    score_org(mql_org)
    lead.refresh_from_db()
    assert lead.lifecycle_stage == "mql"
    assert Activity.objects.get(lead=lead, type="stage_change").properties["from"] == stage


def test_a_grade_below_the_minimum_blocks_the_hand_off(mql_org, mql_events, django_capture_on_commit_callbacks):
    ScoringSettings.objects.filter(organization=mql_org).update(mql_min_grade="A")
    grade_b = make_lead(mql_org, industry="Software")  # fit 30: B
    no_fit = make_lead(mql_org, industry="Retail")  # fit 0: D
    for lead in (grade_b, no_fit):
        for _ in range(10):
            add_activity(lead, "download")
    with django_capture_on_commit_callbacks(execute=True):
        assert score_org(mql_org) == []
    assert Lead.objects.get(pk=grade_b.pk).score == 130
    assert set(Lead.objects.for_org(mql_org).values_list("lifecycle_stage", flat=True)) == {"lead"}
    assert mql_events == []

    ScoringSettings.objects.filter(organization=mql_org).update(mql_min_grade="B")
    with django_capture_on_commit_callbacks(execute=True):
        assert score_org(mql_org) == [grade_b.pk]
    assert Lead.objects.get(pk=no_fit.pk).lifecycle_stage == "lead"
    assert mql_events == [{"organization_id": mql_org.pk, "lead_ids": [grade_b.pk]}]


# ----------------------------------------------------------------------------------------------- property test
# Random leads, activities, rules and settings in a fresh org: bulk recalculation and instant scoring must store
# the same numbers for every lead, and both must equal what this small reference implementation computes from
# the documented semantics (leads/conditions.py and scoring/calculation.py).

MISSING = object()  # a custom field or property the JSON does not have
TEXT_WORDS = ["software", "SOFT", "Fin", "head", "vp", "pro", "", "12", "lots", "/pricing", "PRICING", "blog"]
NUMBER_WORDS = [-3, 0, 3, 7, 10, 12, 45, 50, 120, 5000, "12", "2.5", "-1"]
TAG_WORDS = ["vip", "beta", "churn"]
FIT_FIELDS = {"industry": "text", "job_title": "text", "company_size": "number", "tags": "tags",
              "consent_opt_in": "bool", "custom_fields.plan": "json", "custom_fields.seats": "json"}
PROPERTIES = ["url", "seconds"]
BEHAVIOR_TYPES = ["page_view", "email_click", "download"]
NUMBER_RE = re.compile(r"\s*-?[0-9]+(\.[0-9]+)?\s*")


def _value(kind: str, op: str):
    """A strategy for the value of `op` on a field of `kind` (valid by construction)."""
    if kind == "bool":
        return st.booleans()
    words = {"tags": TAG_WORDS, "number": NUMBER_WORDS}.get(kind, TEXT_WORDS + NUMBER_WORDS[:3])
    if op in ("gt", "gte", "lt", "lte"):
        return st.sampled_from(NUMBER_WORDS)
    if op == "between":
        return st.lists(st.sampled_from(NUMBER_WORDS), min_size=2, max_size=2).map(
            lambda pair: sorted(pair, key=lambda v: Decimal(str(v))))
    many = st.lists(st.sampled_from(words), min_size=1, max_size=3)
    if op in ("in", "not_in"):
        return many
    if op in ("contains", "starts_with") and kind in ("text", "json"):
        return st.sampled_from(words) | many
    return st.sampled_from(words)


@st.composite
def op_and_value(draw, kind: str, ops):
    op = draw(st.sampled_from(ops))
    return {"op": op} if op in NO_VALUE_OPS else {"op": op, "value": draw(_value(kind, op))}


@st.composite
def fit_conditions(draw):
    field = draw(st.sampled_from(sorted(FIT_FIELDS)))
    kind = FIT_FIELDS[field]
    return {"field": field, **draw(op_and_value(kind, OPS_BY_KIND[kind]))}


@st.composite
def behavior_conditions(draw):
    condition = {"activity_type": draw(st.sampled_from(BEHAVIOR_TYPES))}
    property_test = st.tuples(st.sampled_from(PROPERTIES), op_and_value("json", OPS_BY_KIND["json"]))
    tests = draw(st.lists(property_test, max_size=2))
    if tests:
        (first, test), *rest = tests
        condition.update(property=first, **test)
        if rest:
            condition["where"] = [{"property": name, **test} for name, test in rest]
    return condition


rules_strategy = st.lists(
    st.one_of(
        st.builds(lambda c, p, a: {"kind": "fit", "condition": c, "points": p, "active": a},
                  fit_conditions(), st.integers(-40, 40), st.booleans() | st.just(True)),
        st.builds(lambda c, p, cap, window, a: {"kind": "behavior", "condition": c, "points": p,
                                                "max_occurrences": cap, "window_days": window, "active": a},
                  behavior_conditions(), st.integers(-40, 40), st.none() | st.integers(1, 3),
                  st.none() | st.integers(1, 60), st.booleans() | st.just(True)),
    ),
    max_size=6,
)
activities_strategy = st.lists(
    st.fixed_dictionaries({
        "type": st.sampled_from([*BEHAVIOR_TYPES, "note"]),
        "url": st.sampled_from([MISSING, "/pricing", "/Pricing/plans", "/blog", ""]),
        "seconds": st.sampled_from([MISSING, 5, 45, "45", " 12 ", "x", "-2.5", None]),
        "age": st.integers(0, 90 * 24),  # hours
    }),
    max_size=5,
)
leads_strategy = st.lists(
    st.fixed_dictionaries({
        "industry": st.sampled_from(["Software", "software", "Finance", "Retail", ""]),
        "job_title": st.sampled_from(["Head of Sales", "Engineer", "VP Ops", ""]),
        "company_size": st.sampled_from([None, 0, 2, 3, 10, 12, 50, 120, 5000, 6000]),
        "tags": st.lists(st.sampled_from(TAG_WORDS), max_size=2, unique=True),
        "consent_opt_in": st.booleans(),
        "plan": st.sampled_from([MISSING, "Pro", "pro", "free", "", 12, None]),
        "seats": st.sampled_from([MISSING, 3, 12, "12", " 7 ", "lots", "-2.5", True, None]),
        "activities": activities_strategy,
    }),
    min_size=1, max_size=6,
)
settings_strategy = st.fixed_dictionaries({
    "grade_bands": st.lists(st.integers(-30, 80), min_size=4, max_size=4, unique=True).map(
        lambda values: dict(zip("ABCD", sorted(values, reverse=True), strict=True))),
    "temperature_bands": st.lists(st.integers(-30, 100), min_size=2, max_size=2, unique=True).map(
        lambda values: dict(zip(("hot", "warm"), sorted(values, reverse=True), strict=True))),
    "decay_half_life_days": st.none() | st.integers(1, 30),
})


def _json_text(value) -> str:
    if value is MISSING or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_number(value):
    if isinstance(value, bool) or value is MISSING or value is None:
        return None
    if isinstance(value, int):
        return Decimal(value)
    return Decimal(value.strip()) if NUMBER_RE.fullmatch(value) else None


def _compare(number, op, value) -> bool:
    if number is None:
        return False
    if op == "between":
        return Decimal(str(value[0])) <= number <= Decimal(str(value[1]))
    other = Decimal(str(value))
    return {"gt": number > other, "gte": number >= other, "lt": number < other, "lte": number <= other}[op]


def _text_test(text: str, op, value) -> bool:
    upper = text.upper()
    if op == "is_empty":
        return text == ""
    if op == "is_not_empty":
        return text != ""
    if op in ("eq", "neq"):
        return (upper == str(value).upper()) == (op == "eq")
    if op in ("in", "not_in"):
        return (upper in {str(item).upper() for item in value}) == (op == "in")
    items = [str(item).upper() for item in (value if isinstance(value, list) else [value])]
    return any(item in upper if op == "contains" else upper.startswith(item) for item in items)


def _json_test(raw, op, value) -> bool:
    if op in ("gt", "gte", "lt", "lte", "between"):
        return _compare(_json_number(raw), op, value)
    return _text_test(_json_text(raw), op, value)


def _fit_matches(lead: dict, condition: dict) -> bool:
    field, op, value = condition["field"], condition["op"], condition.get("value")
    kind = FIT_FIELDS[field]
    if kind == "json":
        return _json_test(lead[field.removeprefix("custom_fields.")], op, value)
    if kind == "text":
        return _text_test(lead[field], op, value)
    if kind == "bool":
        return (lead[field] == value) == (op == "eq")
    if kind == "tags":
        tags = set(lead["tags"])
        if op in ("is_empty", "is_not_empty"):
            return (not tags) == (op == "is_empty")
        if op in ("in", "not_in"):
            return bool(tags & set(value)) == (op == "in")
        return value in tags  # eq, contains: has the tag
    size = None if lead["company_size"] is None else Decimal(lead["company_size"])
    if op in ("gt", "gte", "lt", "lte", "between"):
        return _compare(size, op, value)
    if op in ("is_empty", "is_not_empty"):
        return (size is None) == (op == "is_empty")
    if op in ("eq", "neq"):
        return (size is not None and size == Decimal(str(value))) == (op == "eq")
    return (size is not None and size in {Decimal(str(item)) for item in value}) == (op == "in")


def _activity_matches(activity: dict, condition: dict) -> bool:
    if activity["type"] != condition["activity_type"]:
        return False
    tests = list(condition.get("where", []))
    if "property" in condition:
        tests.insert(0, condition)
    return all(_json_test(activity[test["property"]], test["op"], test.get("value")) for test in tests)


def _round_half_away(total: float) -> int:
    # PostgreSQL turns a float8 into numeric with 15 significant digits, then rounds half away from zero.
    return int(Decimal(f"{total:.15g}").quantize(Decimal(1), rounding=ROUND_HALF_UP))


def reference_numbers(lead: dict, rules: list[dict], settings: dict, now) -> dict:
    fit_points = [rule["points"] for rule in rules if rule["kind"] == "fit" and _fit_matches(lead, rule["condition"])]
    behavior_points = []
    for rule in rules:
        if rule["kind"] != "behavior":
            continue
        hits = sorted((a["at"] for a in lead["activities"] if _activity_matches(a, rule["condition"])
                       and (rule["window_days"] is None or a["at"] >= now - timedelta(days=rule["window_days"]))),
                      reverse=True)
        if rule["max_occurrences"] is not None:
            hits = hits[:rule["max_occurrences"]]
        half_life = settings["decay_half_life_days"]
        weights = [0.5 ** ((now - at).total_seconds() / 86400 / half_life) if half_life else 1.0 for at in hits]
        if hits:
            behavior_points.append(sum(rule["points"] * weight for weight in weights))
    parts = {
        "fit_gained": sum(p for p in fit_points if p > 0), "fit_lost": sum(p for p in fit_points if p < 0),
        "behavior_gained": _round_half_away(sum(p for p in behavior_points if p > 0)),
        "behavior_lost": _round_half_away(sum(p for p in behavior_points if p < 0)),
    }
    fit_score = parts["fit_gained"] + parts["fit_lost"]
    behavior_score = parts["behavior_gained"] + parts["behavior_lost"]
    score = fit_score + behavior_score
    grade = next((g for g in "ABCD" if fit_score >= settings["grade_bands"][g]), "F")
    bands = settings["temperature_bands"]
    temperature = "hot" if score >= bands["hot"] else "warm" if score >= bands["warm"] else "cold"
    return {**parts, "fit_score": fit_score, "behavior_score": behavior_score, "score": score, "grade": grade,
            "temperature": temperature}


def _stored(organization_id) -> dict:
    return {row["id"]: {part: row[part] for part in SCORE_PARTS}
            for row in Lead.objects.for_org(organization_id).values("id", *SCORE_PARTS)}


def _reset(organization_id) -> None:
    Lead.objects.for_org(organization_id).update(
        fit_gained=0, fit_lost=0, behavior_gained=0, behavior_lost=0, fit_score=0, behavior_score=0, score=0,
        grade="", temperature="")


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(leads=leads_strategy, rules=rules_strategy, scoring_settings=settings_strategy)
def test_bulk_and_instant_scoring_agree_with_the_reference(leads, rules, scoring_settings):
    now = timezone.now().replace(microsecond=0)
    with transaction.atomic():  # each example in its own org, rolled back after
        organization = Organization.objects.create(slug=f"prop-{uuid.uuid4().hex[:12]}", name="Property")
        ScoringSettings.objects.create(organization=organization, **scoring_settings)
        for number, rule in enumerate(rules):
            ScoringRule.objects.create(organization=organization, name=f"rule {number}", **{
                "max_occurrences": None, "window_days": None, **rule,
                "condition": services.clean_rule(**{k: v for k, v in rule.items() if k != "active"})})
        expected = {}
        for data in leads:
            custom = {key: data[key] for key in ("plan", "seats") if data[key] is not MISSING}
            lead = make_lead(organization, industry=data["industry"], job_title=data["job_title"],
                             company_size=data["company_size"], tags=data["tags"],
                             consent_opt_in=data["consent_opt_in"], custom_fields=custom)
            facts = {**data, "activities": [{**a, "at": now - timedelta(hours=a["age"])} for a in data["activities"]]}
            for activity in facts["activities"]:
                properties = {key: activity[key] for key in PROPERTIES if activity[key] is not MISSING}
                add_activity(lead, activity["type"], properties=properties, at=activity["at"])
            active = [rule for rule in rules if rule["active"]]
            expected[lead.pk] = reference_numbers(facts, active, scoring_settings, now)

        def load_config_at_now(organization_id, **kwargs):
            return replace(load_config(organization_id, **kwargs), now=now)

        load_config = services.load_config
        with mock.patch.object(services, "load_config", load_config_at_now):
            for lead_id in expected:
                services.score_lead(organization_id=organization.pk, lead_id=lead_id)
            instant = _stored(organization.pk)
            _reset(organization.pk)
            services.request_recalculation(organization_id=organization.pk)
            with mock.patch.object(services, "RECALC_CHUNK", 2):
                services.recalculate_organization(organization_id=organization.pk)
            bulk = _stored(organization.pk)
        assert instant == bulk
        assert bulk == expected, (rules, scoring_settings)
        transaction.set_rollback(True)


def test_a_recycled_lead_still_over_the_threshold_stays_recycled(mql_org, mql_events,
                                                                   django_capture_on_commit_callbacks):
    """Recycled by sales while its score was over the threshold: re-scores that leave it over (a nurture email, a
    rule change elsewhere) do not hand it back, and fire no second lead.mql."""
    lead = make_lead(mql_org, industry="Software", lifecycle_stage="recycled")
    for _ in range(5):
        add_activity(lead, "download")
    Lead.objects.filter(pk=lead.pk).update(lifecycle_stage="recycled")
    score_org(mql_org)  # the first scoring crosses the threshold: the lead is handed over…
    Lead.objects.filter(pk=lead.pk).update(lifecycle_stage="recycled")  # …and sales recycles it, score unchanged
    add_activity(lead, "email_sent")
    with django_capture_on_commit_callbacks(execute=True):
        assert score_org(mql_org) == []
    lead.refresh_from_db()
    assert (lead.lifecycle_stage, lead.score) == ("recycled", 80)
    assert mql_events == []

    # Below the threshold (points expired, say), then over it again: that crossing hands it back.
    Lead.objects.filter(pk=lead.pk).update(score=10, grade="D")
    with django_capture_on_commit_callbacks(execute=True):
        assert score_org(mql_org) == [lead.pk]
    assert Lead.objects.get(pk=lead.pk).lifecycle_stage == "mql"
    assert len(mql_events) == 1


def test_points_of_a_window_expire_overnight_without_new_activity(org):
    """A pricing visit counted for 30 days: the night after its window passes, the lead loses the points, though
    nothing new happened to it; only the leads whose windows passed are re-scored, once."""
    set_rules(org, behavior(10, {"activity_type": "page_view", "property": "url", "op": "contains",
                                 "value": "/pricing"}, window_days=30),
              behavior(5, {"activity_type": "email_click"}))
    old, recent, forever = make_lead(org), make_lead(org), make_lead(org)
    add_activity(old, "page_view", properties={"url": "/pricing"}, at=NOW - timedelta(days=31))
    add_activity(recent, "page_view", properties={"url": "/pricing"}, at=NOW - timedelta(days=5))
    add_activity(forever, "email_click", at=NOW - timedelta(days=400))  # a rule without a window never expires
    score_org(org, now=NOW - timedelta(days=30, hours=12))  # scored back when the old visit was fresh
    score_org(org, scope={"id": recent.pk}, now=NOW)
    assert [numbers(lead)["score"] for lead in (old, recent, forever)] == [10, 10, 5]

    assert services.expire_windows(now=NOW) == 1  # only the lead whose window passed is re-scored
    assert [numbers(lead)["score"] for lead in (old, recent, forever)] == [0, 10, 5]
    assert services.expire_windows(now=NOW + timedelta(hours=1)) == 0  # it starts where the last run stopped

    assert services.expire_windows(now=NOW + timedelta(days=26)) == 1
    assert [numbers(lead)["score"] for lead in (old, recent, forever)] == [0, 0, 5]


def test_orgs_with_decay_are_left_to_the_nightly_recalculation(org):
    set_rules(org, behavior(10, {"activity_type": "download"}, window_days=7), decay_half_life_days=30)
    lead = make_lead(org)
    add_activity(lead, "download", at=NOW - timedelta(days=8))
    assert services.expire_windows(now=NOW) == 0
