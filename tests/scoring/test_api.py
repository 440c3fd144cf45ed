"""The scoring API contract: rules CRUD and preview, settings, a lead's score explained, bad input."""

import pytest

from leads import services as leads_services
from leads.models import Lead
from scoring import services
from scoring.models import ScoringRule, ScoringSettings

pytestmark = pytest.mark.django_db

GERMANY = {"name": "Germany", "kind": "fit", "points": 40, "condition": {"field": "country", "op": "eq", "value": "DE"}}


def _lead(org, **data):
    return leads_services.capture_lead(organization_id=org.pk, data=data).lead


def _rescore(org):
    """What the worker does after a change (tests run no worker; captures here are not scored on commit)."""
    services.request_recalculation(organization_id=org.pk)
    services.recalculate_organization(organization_id=org.pk)


def _version(org):
    return ScoringSettings.objects.get(organization=org).config_version


def test_a_new_org_starts_with_the_default_rules(api):
    names = {rule["name"] for rule in api.get("/api/v1/scoring-rules/").json()["results"]}
    assert {"Submitted a form", "Visited the pricing page", "Clicked an email", "Unsubscribed", "Target industry",
            "Company of 50 to 5,000 people"} <= names


def test_rule_crud_rescores_the_org(api, org):
    lead = _lead(org, email="d@example.com", country="DE", company="Firm")
    version = _version(org)

    response = api.post("/api/v1/scoring-rules/", GERMANY, format="json")
    assert response.status_code == 201, response.content
    rule = response.json()
    assert {k: rule[k] for k in GERMANY} == GERMANY
    assert rule["active"] is True and rule["max_occurrences"] is None and rule["window_days"] is None
    assert _version(org) == version + 1
    assert api.get("/api/v1/scoring-settings/").json()["recalculation"]["status"] == "queued"
    _rescore(org)
    lead.refresh_from_db()
    assert (lead.fit_score, lead.fit_gained, lead.score) == (40, 40, 40)

    response = api.patch(f"/api/v1/scoring-rules/{rule['id']}/", {"points": -5}, format="json")
    assert response.status_code == 200 and response.json()["points"] == -5
    _rescore(org)
    lead.refresh_from_db()
    assert (lead.fit_score, lead.fit_lost, lead.grade) == (-5, -5, "F")

    assert api.patch(f"/api/v1/scoring-rules/{rule['id']}/", {"active": False}, format="json").status_code == 200
    _rescore(org)
    lead.refresh_from_db()
    assert lead.fit_score == 0

    version = _version(org)
    assert api.delete(f"/api/v1/scoring-rules/{rule['id']}/").status_code == 204
    assert not ScoringRule.objects.filter(pk=rule["id"]).exists()
    assert _version(org) == version + 1


def test_creating_a_rule_honours_idempotency_key(api, org):
    count = ScoringRule.objects.for_org(org).count()
    first = api.post("/api/v1/scoring-rules/", GERMANY, format="json", HTTP_IDEMPOTENCY_KEY="rule-1")
    again = api.post("/api/v1/scoring-rules/", GERMANY, format="json", HTTP_IDEMPOTENCY_KEY="rule-1")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert ScoringRule.objects.for_org(org).count() == count + 1


BAD_RULES = [
    ({"condition": {"field": "shoe_size", "op": "eq", "value": 1}}, "condition", "Unknown field"),
    ({"condition": {"field": "country", "op": "resembles", "value": "DE"}}, "condition", "Unknown operator"),
    ({"condition": {"field": "country", "op": "gt", "value": "DE"}}, "condition", "does not apply"),
    ({"condition": {"field": "company_size", "op": "gt", "value": "many"}}, "condition", "not a number"),
    ({"condition": {"field": "company_size", "op": "between", "value": [500, 50]}}, "condition", "low end"),
    ({"condition": {"field": "score", "op": "gt", "value": 5}}, "condition", "cannot test score"),
    ({"kind": "behavior", "condition": {"activity_type": "teleport"}}, "condition", "Unknown activity type"),
    ({"kind": "behavior", "condition": {"activity_type": "page_view", "property": "url", "op": "gt",
                                        "value": "x"}}, "condition", "not a number"),
    ({"points": 1001}, "points", "less than or equal to 1000"),
    ({"points": "lots"}, "points", "valid integer"),
    ({"max_occurrences": 3}, "max_occurrences", "Only behaviour rules"),
    ({"kind": "sideways"}, "kind", "not a valid choice"),
    ({"condition": "industry = Software"}, "condition", "Must be an object"),
    ({"score": 5}, "score", "Unknown field"),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD_RULES)
def test_bad_rules_are_refused_with_a_clear_message(api, org, change, field, message):
    count = ScoringRule.objects.for_org(org).count()
    version = _version(org)
    response = api.post("/api/v1/scoring-rules/", {**GERMANY, **change}, format="json")
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()["errors"][field])
    assert ScoringRule.objects.for_org(org).count() == count
    assert _version(org) == version


def test_settings_read_and_change(api, org):
    settings = api.get("/api/v1/scoring-settings/").json()
    assert set(settings) >= {"mql_score", "mql_min_grade", "grade_bands", "temperature_bands",
                             "decay_half_life_days", "recalculation"}
    assert set(settings["recalculation"]) >= {"status", "progress"}

    response = api.patch("/api/v1/scoring-settings/", {"mql_score": 70, "mql_min_grade": "B",
                                                       "grade_bands": {"A": 80, "B": 60, "C": 40, "D": 20},
                                                       "decay_half_life_days": 30}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["mql_score"] == 70 and response.json()["grade_bands"]["A"] == 80
    assert response.json()["recalculation"]["status"] == "queued"
    assert ScoringSettings.objects.get(organization=org).decay_half_life_days == 30


@pytest.mark.parametrize(("body", "field"), [
    ({"grade_bands": {"A": 10, "B": 20, "C": 5, "D": 1}}, "grade_bands"),
    ({"grade_bands": {"A": 80, "B": 60}}, "grade_bands"),
    ({"temperature_bands": {"warm": 70, "hot": 30}}, "temperature_bands"),
    ({"mql_min_grade": "Z"}, "mql_min_grade"),
    ({"decay_half_life_days": -3}, "decay_half_life_days"),
    ({"recalculation": {"status": "idle"}}, "recalculation"),
])
def test_bad_settings_are_refused(api, org, body, field):
    before = api.get("/api/v1/scoring-settings/").json()
    response = api.patch("/api/v1/scoring-settings/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert api.get("/api/v1/scoring-settings/").json() == before


def test_a_leads_score_is_explained(api, org):
    lead = _lead(org, email="e@example.com", industry="software", company_size=120, company="Firm")
    for _ in range(5):
        leads_services.record_activity(organization_id=org.pk, lead=lead, type="page_view",
                                       properties={"url": "https://x.test/pricing"})
    services.score_lead(organization_id=org.pk, lead_id=lead.pk)

    response = api.get(f"/api/v1/leads/{lead.pk}/score/")
    assert response.status_code == 200
    body = response.json()
    contributions = {row["name"]: (row["points"], row["count"]) for row in body["contributions"]}
    assert contributions == {"Target industry": (20, 1), "Company of 50 to 5,000 people": (15, 1),
                             "Visited the pricing page": (30, 3)}  # capped at 3 visits
    assert (body["score"], body["fit_score"], body["behavior_score"], body["grade"]) == (65, 35, 30, "B")
    assert {row["rule"] for row in body["contributions"]} <= {str(pk) for pk in ScoringRule.objects.values_list(
        "pk", flat=True)}
    assert body["history"][-1]["score"] == 65
    lead_json = api.get(f"/api/v1/leads/{lead.pk}/").json()
    assert (lead_json["fit_gained"], lead_json["fit_lost"], lead_json["behavior_gained"],
            lead_json["behavior_lost"]) == (35, 0, 30, 0)


def test_score_fields_are_read_only_on_leads(api, org):
    lead = _lead(org, email="r@example.com")
    response = api.patch(f"/api/v1/leads/{lead.pk}/", {"score": 99, "grade": "A"}, format="json")
    assert response.status_code == 400
    assert Lead.objects.get(pk=lead.pk).score != 99


def test_preview_changes_nothing_and_matches_saving(api, org):
    for i in range(12):
        _lead(org, email=f"p{i}@example.com", country="DE" if i % 3 == 0 else "FR", company="Firm",
              industry="Software" if i % 2 else "")
    _rescore(org)
    before = list(Lead.objects.for_org(org).order_by("id").values_list("id", "score", "grade", "lifecycle_stage"))
    rules_before = ScoringRule.objects.for_org(org).count()

    response = api.post("/api/v1/scoring-rules/preview/", {**GERMANY, "points": 35}, format="json")
    assert response.status_code == 200, response.content
    preview = response.json()
    assert list(Lead.objects.for_org(org).order_by("id").values_list("id", "score", "grade",
                                                                     "lifecycle_stage")) == before
    assert ScoringRule.objects.for_org(org).count() == rules_before
    assert preview["leads"] == 12
    assert sum(preview["histogram"]["before"]) == sum(preview["histogram"]["after"]) == 12

    api.post("/api/v1/scoring-rules/", {**GERMANY, "points": 35}, format="json")
    _rescore(org)
    after = {pk: (score, grade, stage) for pk, score, grade, stage in Lead.objects.for_org(org).values_list(
        "id", "score", "grade", "lifecycle_stage")}
    old = {pk: (score, grade, stage) for pk, score, grade, stage in before}
    assert preview["score_changes"] == sum(after[pk][0] != old[pk][0] for pk in old) == 4
    assert preview["gain_points"] == 4 and preview["lose_points"] == 0
    assert preview["grade_changes"] == sum(after[pk][1] != old[pk][1] for pk in old)
    assert preview["new_mqls"] == sum(after[pk][2] == "mql" and old[pk][2] != "mql" for pk in old)
    assert preview["new_mqls"] > 0


def test_preview_of_a_change_to_an_existing_rule(api, org):
    rule = ScoringRule.objects.for_org(org).get(name="Target industry")
    _lead(org, email="s@example.com", industry="Software", company="Firm")
    _rescore(org)
    body = {"replaces": str(rule.pk), "name": rule.name, "kind": "fit", "points": 0, "condition": rule.condition}
    preview = api.post("/api/v1/scoring-rules/preview/", body, format="json").json()
    assert (preview["score_changes"], preview["lose_points"]) == (1, 1)


def test_preview_refuses_a_bad_draft(api):
    response = api.post("/api/v1/scoring-rules/preview/", {**GERMANY, "condition": {"field": "nope"}},
                        format="json")
    assert response.status_code == 400 and "condition" in response.json()["errors"]


def test_reps_cannot_change_scoring(client, member):
    client.force_login(member("rep"))
    assert client.get("/api/v1/scoring-rules/").status_code == 403
    assert client.patch("/api/v1/scoring-settings/", {"mql_score": 1}, content_type="application/json"
                        ).status_code == 403
