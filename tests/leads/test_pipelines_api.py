"""The pipelines API and `POST /api/v1/deals/{id}/move/`: bad input, conflicts, roles, Idempotency-Key."""

import pytest
from rest_framework.test import APIClient

from leadcrm.models import Role
from leads.models import Deal, DealStageChange, Pipeline
from tests.leads.deals import default_pipeline, make_deal, stage

pytestmark = pytest.mark.django_db

RENEWALS = {
    "name": "Renewals",
    "stages": [
        {"name": "Due", "probability": 40, "rotting_days": 10},
        {"name": "Renewed", "probability": 100, "kind": "won"},
        {"name": "Churned", "probability": 0, "kind": "lost"},
    ],
}


def signed_in(user):
    client = APIClient()
    client.force_login(user)
    return client


def test_every_member_reads_the_pipelines_with_their_stages(org, member):
    answer = signed_in(member(Role.REP)).get("/api/v1/pipelines/")
    assert answer.status_code == 200
    [pipeline] = answer.json()
    assert pipeline["is_default"] and [s["name"] for s in pipeline["stages"]][:2] == ["Qualification", "Needs analysis"]
    assert [s["probability"] for s in pipeline["stages"]] == [10, 25, 50, 75, 100, 0]


def test_an_admin_creates_a_pipeline_once_per_idempotency_key(api, org):
    first = api.post("/api/v1/pipelines/", RENEWALS, format="json", HTTP_IDEMPOTENCY_KEY="renewals-1")
    again = api.post("/api/v1/pipelines/", RENEWALS, format="json", HTTP_IDEMPOTENCY_KEY="renewals-1")
    assert first.status_code == 201 and again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert Pipeline.objects.for_org(org).filter(name="Renewals").count() == 1
    assert [s["rotting_days"] for s in first.json()["stages"]] == [10, None, None]
    assert not first.json()["is_default"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stages": [{"name": "A", "probability": 150}]}, "stages"),
        ({"stages": [{"name": "A", "probability": -5}]}, "stages"),
        ({"stages": [{"name": "A", "probability": "lots"}]}, "stages"),
        ({"stages": [{"name": "A", "probability": 5, "kind": "maybe"}]}, "stages"),
        ({"stages": [{"name": "A", "probability": 5}, {"name": "W", "probability": 100, "kind": "won"}]}, "stages"),
        ({"name": ""}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_pipeline_that_makes_no_sense_is_a_400_at_its_field(api, org, change, field):
    answer = api.post("/api/v1/pipelines/", {**RENEWALS, **change}, format="json")
    assert answer.status_code == 400 and field in answer.json()["errors"]
    assert not Pipeline.objects.for_org(org).filter(name="Renewals").exists()


def test_reps_may_not_change_pipelines(org, member):
    client = signed_in(member(Role.REP))
    assert client.post("/api/v1/pipelines/", RENEWALS, format="json").status_code == 403
    pipeline = default_pipeline(org)
    assert client.patch(f"/api/v1/pipelines/{pipeline.pk}/", {"name": "Mine"}, format="json").status_code == 403


def test_renaming_keeps_the_stages_and_the_default_pipeline_is_not_deleted(api, org):
    pipeline = default_pipeline(org)
    renamed = api.patch(f"/api/v1/pipelines/{pipeline.pk}/", {"name": "New business"}, format="json")
    assert renamed.status_code == 200 and len(renamed.json()["stages"]) == 6
    refused = api.delete(f"/api/v1/pipelines/{pipeline.pk}/")
    assert refused.status_code == 409 and refused.json()["code"] == "pipeline_in_use"


def _move(client, deal, to, seen=None, reason=""):
    return client.post(
        f"/api/v1/deals/{deal.pk}/move/",
        {"stage": str(getattr(to, "pk", to)), "expected_stage": str((seen or deal.stage).pk), "reason": reason},
        format="json",
    )


def test_a_rep_moves_their_own_deal_and_not_someone_elses(org, member):
    rep, other = member(Role.REP, email="r1@acme.test"), member(Role.REP, email="r2@acme.test")
    mine, theirs = make_deal(org, owner=rep), make_deal(org, owner=other)
    client = signed_in(rep)
    moved = _move(client, mine, stage(org, "Proposal"))
    assert moved.status_code == 200 and moved.json()["stage"] == str(stage(org, "Proposal").pk)
    assert DealStageChange.objects.get(deal=mine, left_at__isnull=True).entered_by == rep
    assert _move(client, theirs, stage(org, "Proposal")).status_code == 404
    assert Deal.objects.get(pk=theirs.pk).stage.name == "Qualification"


def test_a_move_on_a_stage_someone_changed_is_a_409_with_the_current_stage(api, org):
    deal = make_deal(org)
    seen = deal.stage
    assert _move(api, deal, stage(org, "Proposal"), seen).status_code == 200
    late = _move(api, deal, stage(org, "Negotiation"), seen)
    assert late.status_code == 409
    body = late.json()
    assert body["code"] == "stage_changed" and body["current_stage"]["name"] == "Proposal"
    assert body["current_stage"]["id"] == str(stage(org, "Proposal").pk)


def test_move_bad_input_is_a_400_naming_the_field(api, org, other_org):
    deal = make_deal(org)
    renewals = api.post("/api/v1/pipelines/", RENEWALS, format="json").json()
    cases = [
        ({"stage": renewals["stages"][0]["id"]}, "stage"),  # another pipeline's stage
        ({"stage": str(stage(other_org, "Proposal").pk)}, "stage"),  # another org's
        ({"stage": "proposal"}, "stage"),
        ({"stage": str(stage(org, "Lost").pk)}, "reason"),  # lost needs a reason
        ({"expected_stage": None}, "expected_stage"),
        ({"reason": "x" * 201}, "reason"),
        ({"extra": 1}, "extra"),
    ]
    for change, field in cases:
        body = {"stage": str(stage(org, "Proposal").pk), "expected_stage": str(deal.stage_id), **change}
        answer = api.post(f"/api/v1/deals/{deal.pk}/move/", body, format="json")
        assert answer.status_code == 400 and field in answer.json()["errors"], (change, answer.json())
    assert Deal.objects.get(pk=deal.pk).stage.name == "Qualification"
    assert DealStageChange.objects.filter(deal=deal).count() == 1


def test_reopening_a_won_deal_through_the_api_needs_a_reason(api, org):
    deal = make_deal(org, stage_name="Won")
    refused = _move(api, deal, stage(org, "Proposal"))
    assert refused.status_code == 400 and "reason" in refused.json()["errors"]
    reopened = _move(api, deal, stage(org, "Proposal"), reason="The customer backed out of signing")
    assert reopened.status_code == 200 and reopened.json()["status"] == "open"


def test_the_deal_api_shows_where_the_deal_is(api, org):
    deal = make_deal(org, stage_name="Negotiation")
    body = api.get(f"/api/v1/deals/{deal.pk}/").json()
    assert body["pipeline"] == str(default_pipeline(org).pk) and body["stage"] == str(deal.stage_id)
    assert body["stage_entered_at"]
