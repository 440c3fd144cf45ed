"""The conversion model put to use: the probability on an activity, in segments and routing conditions, as the MQL
rule, in the leads list, the queue and the API; nightly retraining when outcomes change, and runs whose worker died."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from leadcrm import locks
from leads import services as leads_services
from leads.models import Activity, Lead, LifecycleStage
from scoring import predictive, services, tasks
from scoring.models import PredictiveModel, PredictiveStatus, ScoringSettings
from tests.routing import make_rep, make_team
from tests.scoring.test_predictive import _outcomes, _train

pytestmark = pytest.mark.django_db


@pytest.fixture
def modelled(org):
    """An org with 600 outcomes, a trained model, and 40 open leads of every kind for it to score."""
    _outcomes(org, 600)
    open_leads = [
        Lead(
            organization=org,
            email=f"open{number}@example.com",
            lifecycle_stage=LifecycleStage.LEAD,
            source_type=["referral", "outbound", "paid", "organic"][number % 4],
            industry=["software", "retail"][number % 2],
            company_size=[5, 40, 300, 3000][number % 4],
            custom_fields={"seats": number},
        )
        for number in range(40)
    ]
    Lead.objects.bulk_create(open_leads)
    version = _train(org.pk)
    assert version.status == PredictiveStatus.READY and version.metrics["beats_rules"]
    return version


def _open(org):
    return Lead.objects.for_org(org).filter(email__startswith="open")


# ----------------------------------------------------------------------------------------------- instant scoring


def test_the_probability_follows_an_activity_through_instant_scoring(org, modelled, api):
    lead = _open(org).order_by("conversion_probability").first()
    before = lead.conversion_probability
    assert before is not None
    for _ in range(3):
        response = api.post("/api/v1/activities/", {"email": lead.email, "type": "webinar_attended"}, format="json")
        assert response.status_code == 201
    tasks.score_lead(str(org.pk), str(lead.pk))  # what the worker runs for the activity's event
    lead.refresh_from_db()
    assert lead.conversion_probability > before
    assert lead.predictive_band == predictive.band_of(modelled.model, float(lead.conversion_probability))


# ----------------------------------------------------------------------------------------------- conditions


def test_segments_select_by_probability_and_band(org, modelled, api):
    likely = _open(org).filter(conversion_probability__gte=Decimal("0.6"))
    assert 0 < likely.count() < 40  # the open leads lie on both sides
    response = api.post(
        "/api/v1/segments/preview/",
        {
            "definition": {
                "all": [
                    {"field": "conversion_probability", "op": "gte", "value": 0.6},
                    {"field": "email", "op": "starts_with", "value": "open"},
                ]
            }
        },
        format="json",
    )
    assert response.status_code == 200 and response.json()["count"] == likely.count()

    created = api.post(
        "/api/v1/segments/",
        {"name": "Band A", "definition": {"all": [{"field": "predictive_band", "op": "in", "value": ["A"]}]}},
        format="json",
    )
    assert created.status_code == 201
    listed = api.get(f"/api/v1/segments/{created.json()['id']}/leads/?page_size=500").json()["results"]
    assert {row["email"] for row in listed} == set(
        Lead.objects.for_org(org).filter(predictive_band="A").values_list("email", flat=True)
    )

    refused = api.post(
        "/api/v1/segments/preview/",
        {"definition": {"all": [{"field": "predictive_band", "op": "eq", "value": "Z"}]}},
        format="json",
    )
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_condition"
    refused = api.post(
        "/api/v1/segments/preview/",
        {"definition": {"all": [{"field": "conversion_probability", "op": "gte", "value": "likely"}]}},
        format="json",
    )
    assert refused.status_code == 400


def test_routing_rules_and_not_fit_rules_may_test_the_probability(org, api):
    team = make_team(org, "West", [make_rep(org)])
    rule = api.post(
        "/api/v1/assignment-rules/",
        {
            "name": "Likely buyers",
            "action": {"type": "pool", "team": team.pk},
            "condition": {"all": [{"field": "conversion_probability", "op": "gte", "value": 0.7}]},
        },
        format="json",
    )
    assert rule.status_code == 201, rule.json()
    refused = api.post(
        "/api/v1/assignment-rules/",
        {
            "name": "Odd",
            "action": {"type": "pool", "team": team.pk},
            "condition": {"all": [{"field": "predictive_band", "op": "eq", "value": "Z"}]},
        },
        format="json",
    )
    assert refused.status_code == 400
    fit = api.post(
        "/api/v1/scoring-rules/",
        {
            "name": "Likely",
            "kind": "fit",
            "points": 10,
            "condition": {"field": "conversion_probability", "op": "gte", "value": 0.5},
        },
        format="json",
    )
    assert fit.status_code == 400 and "condition" in fit.json()["errors"]  # scoring sets it: no circles


# ----------------------------------------------------------------------------------------------- the MQL rule


def _by_probability(api, threshold, anyway=False):
    response = api.patch(
        "/api/v1/scoring-settings/",
        {"mql_rule": "probability", "mql_probability": threshold, "mql_probability_anyway": anyway},
        format="json",
    )
    assert response.status_code == 200, response.json()
    return response.json()


def test_leads_over_the_probability_threshold_become_mqls(org, modelled, api):
    body = _by_probability(api, 0.6)
    assert body["mql_rule"] == "probability" and body["mql_probability"] == 0.6
    assert body["handoff"]["rule"] == "probability" and "beats the rule score" in body["handoff"]["reason"]
    services.recalculate_organization(organization_id=org.pk)  # what the settings change queued
    likely = set(_open(org).filter(conversion_probability__gte=Decimal("0.6")).values_list("email", flat=True))
    mqls = set(_open(org).filter(lifecycle_stage=LifecycleStage.MQL).values_list("email", flat=True))
    assert likely and mqls == likely
    reason = Activity.objects.for_org(org).filter(type="stage_change", lead__email=min(likely)).get()
    assert reason.properties["reason"] == "Reached the MQL threshold: conversion probability 60.0% or more."


def test_a_model_that_does_not_beat_the_rules_hands_off_nothing_unless_chosen(org, modelled, api):
    PredictiveModel.objects.filter(pk=modelled.pk).update(
        metrics={**modelled.metrics, "rule_auc": 0.9, "beats_rules": False}
    )
    body = _by_probability(api, 0.6)
    assert body["handoff"]["rule"] == "score" and "does not beat the rule score" in body["handoff"]["reason"]
    services.recalculate_organization(organization_id=org.pk)
    # score and grade still decide: these leads have no points, so none is handed off
    assert not _open(org).filter(lifecycle_stage=LifecycleStage.MQL).exists()

    body = _by_probability(api, 0.6, anyway=True)
    assert body["handoff"]["rule"] == "probability"
    services.recalculate_organization(organization_id=org.pk)
    assert (
        _open(org).filter(lifecycle_stage=LifecycleStage.MQL).count()
        == _open(org).filter(conversion_probability__gte=Decimal("0.6")).count()
        > 0
    )


def test_a_new_model_promotes_the_leads_it_puts_over_the_threshold(org, api):
    _outcomes(org, 600)
    _by_probability(api, 0.5)
    lead = leads_services.capture_lead(
        organization_id=org.pk,
        data={
            "email": "fresh@example.com",
            "source_type": "referral",
            "industry": "software",
            "company_size": 4000,
            "custom_fields": {"seats": 59},
        },
    ).lead
    services.score_lead(organization_id=org.pk, lead_id=lead.pk)
    lead.refresh_from_db()
    assert lead.lifecycle_stage == LifecycleStage.LEAD  # no model yet: score and grade decide
    _train(org.pk)  # training writes every probability, and hands off by the new one at once
    lead.refresh_from_db()
    assert lead.conversion_probability >= Decimal("0.5") and lead.lifecycle_stage == LifecycleStage.MQL


def test_bad_probability_settings_are_refused_at_their_field(api):
    for value in (1.5, 0, -0.2, "often", 0.123456, True):
        response = api.patch("/api/v1/scoring-settings/", {"mql_probability": value}, format="json")
        assert response.status_code == 400 and "mql_probability" in response.json()["errors"], value
    response = api.patch("/api/v1/scoring-settings/", {"mql_rule": "vibes"}, format="json")
    assert response.status_code == 400 and "mql_rule" in response.json()["errors"]
    assert ScoringSettings.objects.get().mql_rule == "score"


def test_the_settings_page_chooses_the_rule(org, modelled, browser):
    page = browser.get("/scoring/settings/").content.decode()
    assert "Hand leads to sales by" in page and "Score and grade hand leads to sales." in page
    form = {
        "mql_rule": "probability",
        "mql_probability": "65",
        "mql_score": "50",
        "mql_min_grade": "C",
        "grade_a": "40",
        "grade_b": "30",
        "grade_c": "15",
        "grade_d": "0",
        "warm": "25",
        "hot": "60",
    }
    assert browser.post("/scoring/settings/", form).status_code == 302
    settings = ScoringSettings.objects.get(organization=org)
    assert settings.mql_rule == "probability" and settings.mql_probability == Decimal("0.65")
    assert "Conversion probability hands leads to sales" in browser.get("/scoring/settings/").content.decode()
    response = browser.post("/scoring/settings/", {**form, "mql_probability": "140"})
    assert response.status_code == 400 and "errorlist" in response.content.decode()
    assert ScoringSettings.objects.get(organization=org).mql_probability == Decimal("0.65")


# ----------------------------------------------------------------------------------------------- where it shows


def test_the_api_gives_the_probability_as_a_number(org, modelled, api):
    lead = _open(org).first()
    body = api.get(f"/api/v1/leads/{lead.pk}/").json()
    assert isinstance(body["conversion_probability"], float)
    assert body["conversion_probability"] == float(lead.conversion_probability)
    # the change feed's lean pages say the same
    feed = api.get("/api/v1/leads/?ordering=updated_at&page_size=1000").json()["results"]
    assert {row["id"]: row["conversion_probability"] for row in feed}[str(lead.pk)] == float(
        lead.conversion_probability
    )
    schema = api.get("/api/schema/?format=json").json()["components"]["schemas"]
    assert schema["Lead"]["properties"]["conversion_probability"]["type"] == "number"
    assert schema["ScoringSettings"]["properties"]["mql_probability"]["type"] == "number"


def test_the_leads_list_shows_sorts_and_exports_the_probability(org, modelled, browser, django_assert_max_num_queries):
    query = "?columns=name&columns=probability&ordering=-conversion_probability&search=open"
    with django_assert_max_num_queries(12):
        page = browser.get(f"/leads/{query}").content.decode()
    assert "Conversion probability" in page and "Likeliest to convert" in page
    ranked = list(_open(org).order_by("-conversion_probability", "-id"))
    positions = [page.index(f"/leads/{lead.pk}/") for lead in ranked[:5]]
    assert positions == sorted(positions)
    assert f"{round(ranked[0].conversion_probability * 100)}%" in page

    export = browser.get(f"/leads/export.csv{query}")
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode("utf-8-sig"))))
    assert rows[0] == ["id", "first_name", "last_name", "conversion_probability", "predictive_band"]
    assert [row[0] for row in rows[1:]] == [str(lead.pk) for lead in ranked]
    assert rows[1][3] == str(ranked[0].conversion_probability) and rows[1][4] == ranked[0].predictive_band


def test_unscored_leads_come_last_when_sorting_by_probability(org, browser):
    scored, unscored = Lead.objects.bulk_create(
        [
            Lead(
                organization=org,
                email="a@example.com",
                first_name="Scored",
                conversion_probability=Decimal("0.1"),
                predictive_band="E",
            ),
            Lead(organization=org, email="b@example.com", first_name="Unscored"),
        ]
    )
    page = browser.get("/leads/?columns=probability&ordering=-conversion_probability").content.decode()
    assert page.index(f"/leads/{scored.pk}/") < page.index(f"/leads/{unscored.pk}/")


def test_the_queue_puts_the_likelier_lead_first_among_equal_scores(org, member, client):
    rep = member("rep")
    unlikely, likely, unscored = Lead.objects.bulk_create(
        [
            Lead(
                organization=org,
                email=f"{name}@example.com",
                owner=rep,
                lifecycle_stage=LifecycleStage.MQL,
                score=30,
                conversion_probability=probability,
            )
            for name, probability in (("unlikely", Decimal("0.2")), ("likely", Decimal("0.8")), ("unscored", None))
        ]
    )
    client.force_login(rep)
    page = client.get("/queue/").content.decode()
    assert page.index(str(likely.pk)) < page.index(str(unlikely.pk)) < page.index(str(unscored.pk))


# ----------------------------------------------------------------------------------------------- retraining


def test_nightly_retraining_only_when_outcomes_changed(org, modelled):
    assert predictive.retrain_changed() == []  # nothing changed since the model read them
    lead = Lead.objects.for_org(org).filter(lifecycle_stage=LifecycleStage.DISQUALIFIED).first()
    Lead.objects.filter(pk=lead.pk).update(lifecycle_stage=LifecycleStage.CUSTOMER)  # a lost lead won after all
    assert predictive.retrain_changed() == [org.pk]
    queued = PredictiveModel.objects.for_org(org).get(status=PredictiveStatus.QUEUED)
    assert queued.version == modelled.version + 1
    assert predictive.retrain_changed() == []  # one run waiting is enough
    predictive.train(organization_id=org.pk, version_id=queued.pk)
    assert predictive.retrain_changed() == []
    assert predictive.active_model(org.pk).pk == queued.pk


def test_one_orgs_changed_outcomes_retrain_only_its_own_model(org, other_org, modelled):
    _outcomes(other_org, 300, seed=3, prefix="rival")
    theirs = _train(other_org.pk)
    assert theirs.positives + theirs.negatives == 300
    digest = predictive.outcomes_digest(org.pk)
    Lead.objects.for_org(other_org).filter(
        pk=Lead.objects.for_org(other_org).filter(lifecycle_stage=LifecycleStage.CUSTOMER).values("pk")[:1]
    ).update(lifecycle_stage=LifecycleStage.DISQUALIFIED)
    assert predictive.outcomes_digest(org.pk) == digest
    assert predictive.retrain_changed() == [other_org.pk]
    queued = PredictiveModel.objects.for_org(other_org).get(status=PredictiveStatus.QUEUED)
    predictive.train(organization_id=other_org.pk, version_id=queued.pk)
    queued.refresh_from_db()
    assert queued.positives + queued.negatives == 300  # the rival's own outcomes, none of ours
    assert predictive.active_model(org.pk).pk == modelled.pk


def test_nightly_retraining_is_on_the_beat_and_the_scoring_queue(settings):
    entry = next(
        entry for entry in settings.CELERY_BEAT_SCHEDULE.values() if entry["task"] == "scoring.tasks.retrain_changed"
    )
    assert entry["schedule"].hour == {2}
    assert settings.CELERY_TASK_ROUTES["scoring.tasks.*"] == {"queue": "scoring"}


# ----------------------------------------------------------------------------------------------- dead workers


def _stuck_run(org, minutes_ago=10, attempts=1):
    _outcomes(org, 300)
    run = predictive.request_training(organization_id=org.pk)
    PredictiveModel.objects.filter(pk=run.pk).update(
        status=PredictiveStatus.TRAINING, attempts=attempts, started_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    return run


def _lock_elsewhere(run):
    """Another session holding the run's lock: a worker still training it."""
    settings = connection.settings_dict
    other = psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        password=settings["PASSWORD"] or None,
        autocommit=True,
    )
    other.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [locks.TRAINING, str(run.pk)])
    return other


def test_a_run_whose_worker_died_is_swept_and_trained_again(org):
    run = _stuck_run(org)
    assert predictive.abandoned_runs(older_than=timedelta(minutes=1)) == [(run.pk, org.pk)]
    assert predictive.abandoned_runs(older_than=timedelta(minutes=1)) == []  # claimed for its lease
    predictive.train(organization_id=org.pk, version_id=run.pk)  # what the re-enqueued task does
    run.refresh_from_db()
    assert run.status == PredictiveStatus.READY and run.attempts == 2
    assert Lead.objects.for_org(org).exclude(conversion_probability=None).count() == 300


def test_a_run_still_training_is_left_alone(org):
    run = _stuck_run(org)
    worker = _lock_elsewhere(run)
    try:
        assert predictive.abandoned_runs(older_than=timedelta(minutes=1)) == []
        predictive.train(organization_id=org.pk, version_id=run.pk)  # a second delivery: the lock is taken
        run.refresh_from_db()
        assert run.status == PredictiveStatus.TRAINING and run.attempts == 1
    finally:
        worker.close()
    assert predictive.abandoned_runs(older_than=timedelta(minutes=1)) == []  # a fresh run is not due yet
    PredictiveModel.objects.filter(pk=run.pk).update(swept_until=timezone.now() - timedelta(seconds=1))
    assert predictive.abandoned_runs(older_than=timedelta(minutes=1)) == [(run.pk, org.pk)]


def test_a_run_whose_worker_keeps_dying_is_given_up(org):
    run = _stuck_run(org, attempts=predictive.MAX_ATTEMPTS)
    predictive.train(organization_id=org.pk, version_id=run.pk)
    run.refresh_from_db()
    assert run.status == PredictiveStatus.FAILED and "stopped 3 times" in run.message


def test_the_sweeper_is_registered():
    from leadcrm import claims

    assert claims._sweepers["predictive training"] is tasks.enqueue_abandoned_training


def test_the_list_sorted_by_probability_reads_its_index_page_by_page(org, browser):
    """On a big org the "likeliest to convert" page is a walk of the org's part of one index, not a sort of every
    lead: the list's ORDER BY is the index's own expression."""
    from django.test.utils import CaptureQueriesContext

    Lead.objects.bulk_create([Lead(organization=org, email=f"p{number}@example.com",
                                   conversion_probability=Decimal(number % 10) / 10) for number in range(30)])
    with CaptureQueriesContext(connection) as queries:
        browser.get("/leads/?ordering=-conversion_probability")
    [page_sql] = [query["sql"] for query in queries.captured_queries
                  if "COALESCE" in query["sql"] and "ORDER BY" in query["sql"] and "LIMIT" in query["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN {page_sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "lead_org_likelihood" in plan and "Sort" not in plan, plan
