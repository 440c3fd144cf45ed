"""Advice from the predictive model: suggested rules learnt from the outcomes, and threshold advice for the MQL
score."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.template.defaultfilters import floatformat

from leadcrm.models import AuditEntry
from leads.models import Lead
from scoring import advice, predictive
from scoring.models import PredictiveModel, PredictiveStatus, ScoringRule, ScoringSettings

from .test_predictive import _outcomes, _train

pytestmark = pytest.mark.django_db


@pytest.fixture
def trained(org):
    _outcomes(org, 4000)
    return _train(org.pk)


def test_suggested_rules_rank_the_holdout_almost_as_well_as_the_model(org, trained, api):
    response = api.post("/api/v1/predictive/suggest-rules/")
    assert response.status_code == 200, response.content
    body = response.json()
    rules = body["rules"]
    assert 3 <= len(rules) <= advice.MAX_RULES  # a handful, not hundreds
    assert all(isinstance(rule["points"], int) and rule["points"] != 0 for rule in rules)
    assert all(rule["name"].startswith("Learned: ") for rule in rules)
    # the referral source (the strongest push of the generating model) is among them, on its own field
    assert any(
        rule["condition"] == {"field": "source_type", "op": "eq", "value": "referral"} and rule["points"] > 0
        for rule in rules
    )
    assert any(
        rule["kind"] == "behavior" and rule["condition"] == {"activity_type": "webinar_attended"} for rule in rules
    )
    assert body["auc"]["model"] == trained.metrics["auc"]
    assert body["auc"]["draft"] == pytest.approx(body["auc"]["model"], abs=0.02)
    assert body["auc"]["rules"] == trained.metrics["rule_auc"] == 0.5
    # nothing is saved by a suggestion; its preview says what saving would change
    assert not ScoringRule.objects.for_org(org).filter(name__startswith="Learned: ").exists()
    assert body["preview"]["leads"] == 4000 and body["preview"]["gain_points"] > 0


def test_the_suggested_rules_score_the_holdout_as_the_draft_said_once_saved(org, trained, api):
    from sklearn.metrics import roc_auc_score

    from scoring import services

    body = api.post("/api/v1/predictive/suggest-rules/").json()
    before = set(ScoringRule.objects.for_org(org).filter(active=True).values_list("pk", flat=True))
    response = api.post(
        "/api/v1/predictive/apply-rules/", {"rules": body["rules"]}, format="json", HTTP_IDEMPOTENCY_KEY="apply-1"
    )
    assert response.status_code == 201, response.content
    assert [rule["name"] for rule in response.json()["results"]] == [rule["name"] for rule in body["rules"]]
    replay = api.post(
        "/api/v1/predictive/apply-rules/", {"rules": body["rules"]}, format="json", HTTP_IDEMPOTENCY_KEY="apply-1"
    )
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    active = ScoringRule.objects.for_org(org).filter(active=True)
    assert active.count() == len(body["rules"])  # the old rules are switched off, kept
    assert ScoringRule.objects.for_org(org).filter(pk__in=before, active=False).count() == len(before)
    assert AuditEntry.objects.filter(organization=org).count() >= len(before) + len(body["rules"])
    services.recalculate_organization(organization_id=org.pk)
    version = PredictiveModel.objects.get(pk=trained.pk)
    holdout = Lead.objects.for_org(org).order_by("-stage_entered_at__customer", "-stage_entered_at__disqualified")
    rows = [
        (lead.lifecycle_stage == "customer", lead.score)
        for lead in holdout
        if (lead.stage_entered_at.get("customer") or lead.stage_entered_at.get("disqualified"))
        >= version.metrics["holdout_from"]
    ]
    assert len(rows) == version.holdout_size
    # the saved rules score with the same engine as every rule: now counting all activities, even those after an
    # outcome, so within a little of the draft's figure
    assert roc_auc_score([c for c, _ in rows], [s for _, s in rows]) == pytest.approx(body["auc"]["draft"], abs=0.02)


def test_a_bad_rule_saves_nothing(org, trained, api):
    rules = [
        {
            "name": "Good",
            "kind": "fit",
            "points": 5,
            "condition": {"field": "industry", "op": "eq", "value": "software"},
        },
        {"name": "Bad", "kind": "fit", "points": 5, "condition": {"field": "nope", "op": "eq", "value": 1}},
    ]
    response = api.post("/api/v1/predictive/apply-rules/", {"rules": rules}, format="json")
    assert response.status_code == 400
    assert "rules[2]" in response.json()["errors"]
    assert not ScoringRule.objects.for_org(org).filter(name="Good").exists()
    assert ScoringRule.objects.for_org(org).filter(active=True).count() == 8  # the default set, untouched


def test_suggesting_without_a_model_says_to_train_first(api):
    response = api.post("/api/v1/predictive/suggest-rules/")
    assert response.status_code == 409 and response.json()["code"] == "no_predictive_model"


# ----------------------------------------------------------------------------------------------- thresholds


def _model_with_holdout(org, since):
    version = PredictiveModel.objects.create(
        organization=org,
        version=1,
        status=PredictiveStatus.READY,
        model={"features": [], "intercept": 0.0, "band_cutoffs": []},
        metrics={"auc": 0.7, "holdout_from": since.isoformat()},
        thresholds=[],
    )
    ScoringSettings.objects.filter(organization=org).update(predictive_model=version)
    return version


def test_the_score_threshold_table_matches_a_hand_computation(org, api):
    start = datetime(2025, 3, 1, tzinfo=UTC)
    # (score, converted), eight outcomes in the holdout and one before it (not counted)
    held_out = [(80, True), (70, False), (60, True), (40, True), (35, False), (20, False), (10, True), (0, False)]
    leads = [
        Lead(
            organization=org,
            email=f"h{n}@example.com",
            score=score,
            lifecycle_stage="customer" if converted else "disqualified",
            stage_entered_at={"customer" if converted else "disqualified": (start + timedelta(hours=n)).isoformat()},
        )
        for n, (score, converted) in enumerate(held_out)
    ]
    leads.append(
        Lead(
            organization=org,
            email="old@example.com",
            score=90,
            lifecycle_stage="disqualified",
            stage_entered_at={"disqualified": (start - timedelta(days=30)).isoformat()},
        )
    )
    Lead.objects.bulk_create(leads)
    _model_with_holdout(org, start)
    ScoringSettings.objects.filter(organization=org).update(mql_score=50)

    body = api.get("/api/v1/predictive/thresholds/").json()
    table = {row["threshold"]: row for row in body["score_results"]}
    assert body["mql_score"] == 50 and body["holdout_size"] == 8
    # by hand: at 50, three leads of eight are handed off (80, 70, 60), two of them converted, of four converters
    assert table[50] == {"threshold": 50, "handed_off": 0.375, "precision": 0.6667, "recall": 0.5}
    assert table[35] == {"threshold": 35, "handed_off": 0.625, "precision": 0.6, "recall": 0.75}
    assert table[0] == {"threshold": 0, "handed_off": 1.0, "precision": 0.5, "recall": 1.0}
    assert table[80] == {"threshold": 80, "handed_off": 0.125, "precision": 1.0, "recall": 0.25}
    assert 90 not in table  # the outcome before the holdout is not measured

    assert table[40] == {"threshold": 40, "handed_off": 0.5, "precision": 0.75, "recall": 0.75}

    # "catch 70% of converters": the highest threshold catching at least 3 of the 4 is 40 (35 catches no more)
    assert advice.threshold_for_recall(body["score_results"], 0.7)["threshold"] == 40
    settings = advice.set_mql_score_for_recall(organization_id=org.pk, recall=0.7)
    assert settings.mql_score == 40


def test_threshold_advice_without_a_model_is_empty(api):
    body = api.get("/api/v1/predictive/thresholds/").json()
    assert body["score_results"] == [] and body["results"] == []


def test_score_thresholds_spread_over_the_scores_and_keep_the_current_one():
    scores = np.arange(0, 1000, dtype=float)
    picks = advice.score_thresholds(scores, mql_score=55)
    assert len(picks) <= advice.SCORE_THRESHOLD_ROWS + 1 and 55 in picks and picks[0] == 0 and picks[-1] == 999


def test_rule_names_and_cut_points_read_like_a_person_wrote_them():
    assert advice._nice(54.6) == 55 and advice._nice(1234) == 1200 and advice._nice(0.0456) == 0.046
    features = [
        {"source": "custom", "name": "seats", "kind": "number"},
        {"source": "lead", "name": "industry", "kind": "category", "levels": ["software", ""]},
    ]
    candidates = advice._candidates(features, [[1, 2, 3, 4, 5, 6, 7, 8], ["software"] * 8])
    assert [c["name"] for c in candidates] == [
        "seats at least 2.8",
        "seats at least 4.5",
        "seats at least 6.2",
        "industry is software",
        "industry is empty",
    ]
    assert predictive.shortfall(50, 50) is None


# ----------------------------------------------------------------------------------------------- the page


def test_the_page_says_how_many_more_outcomes_are_needed(org, browser):
    _outcomes(org, 30)
    converted, lost = predictive.outcome_counts(org.pk)
    page = browser.get("/scoring/predictive/").content.decode()
    assert f"{50 - converted} more converted leads and {50 - lost} more lost leads" in page
    assert "Suggest rules" not in page
    response = browser.post("/scoring/predictive/train/", follow=True)
    assert "more converted leads" in response.content.decode()
    assert not PredictiveModel.objects.exists()


def test_the_page_shows_the_model_beside_the_rules_and_its_advice(org, trained, browser, django_assert_max_num_queries):
    with django_assert_max_num_queries(25):
        page = browser.get("/scoring/predictive/").content.decode()
    assert "It beats your rules:" in page
    assert floatformat(trained.metrics["auc"], 3) in page and "0.500" in page
    assert "custom_fields.seats" in page and "webinar_attended activities" in page
    assert 'data-chart="calibration-chart"' in page and 'data-chart="threshold-chart"' in page
    assert "Use " in page and "Catch at least this share of converters" in page


def test_suggest_then_save_from_the_browser(org, trained, browser):
    page = browser.post("/scoring/predictive/suggest/").content.decode()
    assert (
        "Suggested rules" in page and "If you save these rules" in page and "Learned: source type is referral" in page
    )
    assert not ScoringRule.objects.for_org(org).filter(name__startswith="Learned: ").exists()
    import html
    import re

    rules = html.unescape(re.search(r'name="rules" value="([^"]*)"', page).group(1))
    response = browser.post("/scoring/predictive/suggest/save/", {"rules": rules}, follow=True)
    assert "learnt rules saved" in response.content.decode()
    assert ScoringRule.objects.for_org(org).filter(active=True, name__startswith="Learned: ").count() == len(
        __import__("json").loads(rules)
    )
    assert not ScoringRule.objects.for_org(org).filter(active=True).exclude(name__startswith="Learned: ").exists()
    # once re-scored, the page measures the saved rules on the same held-out leads, beside the figure at training
    from scoring import services

    services.recalculate_organization(organization_id=org.pk)
    page = browser.get("/scoring/predictive/").content.decode()
    now = advice.threshold_advice(org.pk)["rule_auc_now"]
    assert now > 0.7 and "AUC of your rule score now" in page and floatformat(now, 3) in page


def test_a_tampered_draft_saves_nothing(org, trained, browser):
    bad = '[{"name": "x", "kind": "fit", "points": 9999, "condition": {"field": "industry", "op": "eq", "value": "a"}}]'
    response = browser.post("/scoring/predictive/suggest/save/", {"rules": bad}, follow=True)
    assert "Must be a whole number from -1000 to 1000" in response.content.decode()
    assert browser.post("/scoring/predictive/suggest/save/", {"rules": "{not json"}, follow=True).status_code == 200
    assert ScoringRule.objects.for_org(org).filter(active=True).count() == 8


def test_picking_a_threshold_sets_the_mql_score(org, trained, browser):
    table = advice.threshold_advice(org.pk)["score"]
    target = advice.threshold_for_recall(table, 0.7)
    response = browser.post("/scoring/predictive/threshold/", {"recall": "70"}, follow=True)
    assert f"The MQL threshold is now a score of {target['threshold']}" in response.content.decode()
    assert ScoringSettings.objects.get(organization=org).mql_score == target["threshold"]
    browser.post("/scoring/predictive/threshold/", {"score": str(table[1]["threshold"])})
    assert ScoringSettings.objects.get(organization=org).mql_score == table[1]["threshold"]


@pytest.mark.parametrize("recall", ["", "0", "150", "lots"])
def test_a_bad_recall_target_is_a_form_error(org, trained, browser, recall):
    before = ScoringSettings.objects.get(organization=org).mql_score
    response = browser.post("/scoring/predictive/threshold/", {"recall": recall})
    assert response.status_code == 400
    assert 'class="errorlist"' in response.content.decode()
    assert ScoringSettings.objects.get(organization=org).mql_score == before


def test_lead_supplied_levels_are_escaped_on_the_suggestion_page(org, browser):
    """A category level is whatever leads were captured with: it becomes a rule name and condition, as text."""
    tag = "<img src=x onerror=alert(1)>"
    start = datetime(2025, 1, 1, tzinfo=UTC)
    leads = []
    for number in range(160):
        converted = number % 2 == 0
        industry = (tag if number % 10 else "other") if converted else ("other" if number % 10 else tag)
        stage = "customer" if converted else "disqualified"
        leads.append(
            Lead(
                organization=org,
                email=f"x{number}@example.com",
                industry=industry,
                lifecycle_stage=stage,
                stage_entered_at={stage: (start + timedelta(hours=number)).isoformat()},
            )
        )
    Lead.objects.bulk_create(leads)
    version = _train(org.pk)
    assert (
        tag
        in version.model["features"][
            next(i for i, f in enumerate(version.model["features"]) if f["name"] == "industry")
        ]["levels"]
    )
    page = browser.post("/scoring/predictive/suggest/").content.decode()
    assert "Learned: industry is &lt;img src=x onerror=alert(1)&gt;" in page
    assert tag not in page
