"""Predictive scoring: a conversion model learnt from each org's own outcomes, honest about its accuracy on the
outcomes it never saw, and a probability on every lead."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from sklearn.metrics import roc_auc_score

from leads import services as leads_services
from leads.models import Activity, Lead
from scoring import predictive, services
from scoring.models import PredictiveModel, PredictiveStatus

pytestmark = pytest.mark.django_db

SOURCES = {"paid": 0.9, "organic": 0.0, "referral": 1.4, "outbound": -0.8}
INDUSTRIES = {"software": 0.7, "retail": -0.6, "finance": 0.2, "health": -0.2}
START = datetime(2025, 1, 1, tzinfo=UTC)


def _outcomes(org, count, seed=7, prefix="lead"):
    """`count` leads with a known outcome drawn from a known logistic model; returns each lead's true probability
    by email, and the emails oldest outcome first."""
    rng = np.random.default_rng(seed)
    sources = rng.choice(list(SOURCES), count)
    industries = rng.choice(list(INDUSTRIES), count)
    sizes = np.round(np.exp(rng.normal(4, 1.2, count))).astype(int)
    seats = rng.integers(1, 60, count)
    webinars = rng.poisson(0.6, count)
    logits = (-0.7 + np.array([SOURCES[s] for s in sources]) + np.array([INDUSTRIES[i] for i in industries])
              + 0.7 * (np.log1p(sizes) - 4) + 0.04 * (seats - 30) + 0.9 * np.log1p(webinars))
    truth = 1 / (1 + np.exp(-logits))
    converted = rng.random(count) < truth
    leads, activities, probabilities, order = [], [], {}, []
    for number in range(count):
        email = f"{prefix}{number}@example.com"
        stage = "customer" if converted[number] else "disqualified"
        at = START + timedelta(hours=number)  # lead n's outcome is the n-th
        lead = Lead(organization=org, email=email, source_type=sources[number], industry=industries[number],
                    company_size=int(sizes[number]), custom_fields={"seats": int(seats[number])},
                    lifecycle_stage=stage, stage_entered_at={stage: at.isoformat()})
        leads.append(lead)
        activities += [Activity(organization=org, lead=lead, type="webinar_attended",
                                occurred_at=at - timedelta(days=1)) for _ in range(webinars[number])]
        # after the outcome: what the model must not learn from (it would know the answer)
        activities.append(Activity(organization=org, lead=lead, type="meeting" if converted[number] else "note",
                                   occurred_at=at + timedelta(days=1)))
        probabilities[email] = float(truth[number])
        order.append(email)
    Lead.objects.bulk_create(leads)
    Activity.objects.bulk_create(activities)
    return probabilities, order


def _train(organization_id) -> PredictiveModel:
    """What the API and the worker do: queue a version, then train it."""
    version = predictive.request_training(organization_id=organization_id)
    predictive.train(organization_id=organization_id, version_id=version.pk)
    return PredictiveModel.objects.get(pk=version.pk)


@pytest.fixture
def trained(org):
    truth, order = _outcomes(org, 4000)
    return _train(org.pk), truth, order


def test_the_model_recovers_the_ranking_of_the_generating_model(org, trained):
    version, truth, order = trained
    holdout = order[-version.holdout_size:]
    assert version.status == PredictiveStatus.READY and version.holdout_size == 800
    stored = dict(Lead.objects.for_org(org).filter(email__in=holdout).values_list("email", "conversion_probability"))
    converted = [Lead.objects.for_org(org).get(email=email).lifecycle_stage == "customer" for email in holdout]
    best_possible = roc_auc_score(converted, [truth[email] for email in holdout])
    # the probabilities written in SQL rank the held-out leads as well as the true ones do
    assert roc_auc_score(converted, [float(stored[email]) for email in holdout]) == pytest.approx(best_possible,
                                                                                                  abs=0.01)
    assert version.metrics["auc"] == pytest.approx(best_possible, abs=0.01)
    assert version.metrics["rule_auc"] == 0.5  # no rule tells these leads apart
    assert version.metrics["beats_rules"] is True
    assert version.metrics["base_rate"] == pytest.approx(np.mean(converted), abs=1e-4)
    assert [row["decile"] for row in version.metrics["calibration"]] == list(range(1, 11))
    assert 0 < version.metrics["brier"] < 0.25


def test_every_lead_gets_a_probability_and_a_band(org, trained, api):
    version, _, _ = trained
    fresh = leads_services.capture_lead(organization_id=org.pk, data={
        "email": "new@example.com", "source_type": "referral", "industry": "software", "company_size": 500}).lead
    services.score_lead(organization_id=org.pk, lead_id=fresh.pk)
    fresh.refresh_from_db()
    assert 0 < fresh.conversion_probability < 1
    assert fresh.predictive_band == predictive.band_of(version.model, float(fresh.conversion_probability))
    bands = dict(Lead.objects.for_org(org).values_list("predictive_band").annotate(n=Count("id")))
    assert set(bands) == set("ABCDE")  # fifths of the training leads: each band holds a good share of all
    assert all(n >= 400 for n in bands.values())

    body = api.get(f"/api/v1/leads/{fresh.pk}/").json()
    assert body["conversion_probability"] == float(fresh.conversion_probability)  # a JSON number
    assert body["predictive_band"] == fresh.predictive_band
    score = api.get(f"/api/v1/leads/{fresh.pk}/score/").json()["predictive"]
    assert score["probability"] == float(fresh.conversion_probability)
    assert len(score["factors"]) == 3
    # a referral from a big software company: its source is among the strongest pushes up
    assert {"feature": "source_type", "value": "referral"}.items() <= next(
        factor for factor in score["factors"] if factor["feature"] == "source_type").items()
    assert all(factor["contribution"] > 0 for factor in score["factors"])


def test_the_probability_follows_an_activity(org, trained):
    version, _, _ = trained
    weight = next(feature["coef"] for feature in version.model["features"] if feature["name"] == "webinar_attended")
    assert weight > 0
    # activities after an outcome were not learnt from: they would have made meetings a sure sign of a customer
    assert not any(feature["name"] in ("meeting", "note") for feature in version.model["features"])
    lead = Lead.objects.for_org(org).get(email="lead0@example.com")
    before = lead.conversion_probability
    leads_services.record_activity(organization_id=org.pk, lead=lead, type="webinar_attended")
    with CaptureQueriesContext(connection) as queries:
        services.score_lead_set(organization_id=org.pk, lead_ids=[lead.pk])
    lead.refresh_from_db()
    assert lead.conversion_probability > before
    assert sum("SET conversion_probability" in query["sql"] for query in queries) == 1  # one extra statement


def test_too_few_outcomes_trains_nothing_and_says_how_many_more(org, api):
    _outcomes(org, 30)
    converted, lost = predictive.outcome_counts(org.pk)
    response = api.post("/api/v1/predictive/train/")
    assert response.status_code == 409
    assert response.json()["code"] == "not_enough_outcomes"
    assert f"{50 - converted} more converted leads and {50 - lost} more lost leads" in response.json()["detail"]
    assert not PredictiveModel.objects.exists()
    state = api.get("/api/v1/predictive/").json()
    assert state["status"] == "untrained" and state["outcomes"] == {"converted": converted, "lost": lost}
    assert "more converted leads" in state["message"]


def test_nothing_to_train_on_is_refused(api):
    response = api.post("/api/v1/predictive/train/")
    assert response.status_code == 409
    assert "there are 0 and 0" in response.json()["detail"]


def test_one_orgs_outcomes_never_train_anothers_model(org, other_org, other_api):
    _outcomes(org, 400)
    assert predictive.outcome_counts(other_org.pk) == (0, 0)
    assert other_api.post("/api/v1/predictive/train/").status_code == 409
    _outcomes(other_org, 200, seed=3, prefix="rival")
    version = _train(other_org.pk)
    assert version.positives + version.negatives == 200
    assert not Lead.objects.for_org(org).exclude(conversion_probability=None).exists()


def test_the_api_shows_the_model_and_its_thresholds(org, trained, api, other_api):
    version, _, order = trained
    response = api.post("/api/v1/predictive/train/")
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert response.json()["version"] == version.version + 1

    state = api.get("/api/v1/predictive/").json()
    assert state["active"]["id"] == str(version.pk) and state["latest"]["status"] == "queued"
    assert {"source_type", "industry", "company_size", "custom_fields.seats"} <= set(state["active"]["features"])
    assert state["active"]["metrics"]["auc"] == version.metrics["auc"]
    listed = api.get("/api/v1/predictive/versions/").json()["results"]
    assert [row["version"] for row in listed] == [version.version + 1, version.version]
    assert api.get(f"/api/v1/predictive/versions/{version.pk}/").json()["holdout_size"] == 800
    assert other_api.get(f"/api/v1/predictive/versions/{version.pk}/").status_code == 404

    # the table, by hand: the held-out leads' probabilities from the model as trained, against their outcomes
    holdout = Lead.objects.for_org(org).filter(email__in=order[-800:])
    rows = list(holdout.values_list("conversion_probability", "lifecycle_stage"))
    table = {row["threshold"]: row for row in api.get("/api/v1/predictive/thresholds/").json()["results"]}
    for threshold in (0.3, 0.5, 0.7):
        handed = [stage for probability, stage in rows if probability >= Decimal(str(threshold))]
        converted = sum(stage == "customer" for _, stage in rows)
        assert table[threshold]["handed_off"] == pytest.approx(len(handed) / 800, abs=0.002)
        assert table[threshold]["precision"] == pytest.approx(handed.count("customer") / len(handed), abs=0.01)
        assert table[threshold]["recall"] == pytest.approx(handed.count("customer") / converted, abs=0.01)


def test_threshold_table_matches_a_hand_computation():
    converted = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    probabilities = np.array([0.9, 0.8, 0.6, 0.4, 0.35, 0.2, 0.1, 0.02])
    table = {row["threshold"]: row for row in predictive.threshold_table(converted, probabilities)}
    assert table[0.5] == {"threshold": 0.5, "handed_off": 0.375, "precision": 0.6667, "recall": 0.5}
    assert table[0.3] == {"threshold": 0.3, "handed_off": 0.625, "precision": 0.6, "recall": 0.75}
    assert table[0.95] == {"threshold": 0.95, "handed_off": 0.0, "precision": None, "recall": 0.0}


def test_the_lead_page_shows_the_probability(org, trained, browser):
    lead = Lead.objects.for_org(org).get(email="lead5@example.com")
    page = browser.get(f"/leads/{lead.pk}/").content.decode()
    assert "Conversion probability" in page
    assert f"{round(lead.conversion_probability * 100)}%" in page


def test_reaching_sql_counts_as_converted_when_the_org_says_so(org, api):
    lost = [Lead(organization=org, email=f"sql{number}@example.com", lifecycle_stage="disqualified",
                 stage_entered_at={"sql": "2025-01-01T00:00:00+00:00", "disqualified": "2025-02-01T00:00:00+00:00"})
            for number in range(3)]
    Lead.objects.bulk_create(lost)
    assert predictive.outcome_counts(org.pk) == (0, 3)
    response = api.patch("/api/v1/scoring-settings/", {"sql_counts_as_converted": True}, format="json")
    assert response.status_code == 200 and response.json()["sql_counts_as_converted"] is True
    assert predictive.outcome_counts(org.pk) == (3, 0)
