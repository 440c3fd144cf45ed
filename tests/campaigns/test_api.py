"""The campaigns API: CRUD with numbers, members, costs, and refusals with field messages."""

import pytest

from campaigns.models import Campaign, CampaignCost, CampaignMember
from leads import services as lead_services

from . import join, make_campaign, make_deal, make_lead

pytestmark = pytest.mark.django_db


def test_create_retrieve_update_delete(api, org):
    response = api.post("/api/v1/campaigns/", {"name": "Spring webinar", "channel": "webinar", "status": "active",
                                               "start": "2025-03-01", "end": "2025-03-31", "budget": "5000.00",
                                               "currency": "eur", "utm_campaign": "spring-webinar"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["currency"], body["members"], body["cost"], body["roi"]) == ("EUR", 0, "0.00", None)
    assert body["attribution"] == {"first_touch": "0.00", "last_touch": "0.00", "linear": "0.00"}

    campaign_id = body["id"]
    assert api.patch(f"/api/v1/campaigns/{campaign_id}/", {"status": "completed"},
                     format="json").json()["status"] == "completed"
    listed = api.get("/api/v1/campaigns/").json()["results"]
    assert [c["name"] for c in listed] == ["Spring webinar"]
    assert api.delete(f"/api/v1/campaigns/{campaign_id}/").status_code == 204
    assert not Campaign.objects.exists()


def test_retrieve_carries_the_numbers(api, org):
    campaign = make_campaign(org, "Expo")
    lead = make_lead(org, lifecycle_stage="customer")
    join(campaign, lead, 1)
    make_deal(org, lead, 3000, created=2, won=3)
    api.post(f"/api/v1/campaigns/{campaign.pk}/costs/", {"date": "2025-01-10", "amount": "1000"}, format="json")
    body = api.get(f"/api/v1/campaigns/{campaign.pk}/").json()
    assert {k: body[k] for k in ("cost", "members", "mqls", "sqls", "deals", "won_revenue", "roi")} == {
        "cost": "1000.00", "members": 1, "mqls": 1, "sqls": 1, "deals": 1, "won_revenue": "3000.00", "roi": 2.0}
    assert body["attribution"]["linear"] == "3000.00"


@pytest.mark.parametrize(("payload", "field"), [
    ({"name": "X", "start": "2025-05-10", "end": "2025-05-01"}, "end"),
    ({"name": "X", "budget": "-1"}, "budget"),
    ({"name": "X", "utm_campaign": "SPRING"}, "utm_campaign"),
    ({"name": "X", "currency": "E1"}, "currency"),
    ({"name": "X", "channel": "telepathy"}, "channel"),
    ({"name": ""}, "name"),
    ({"name": "X", "cost": "5"}, "cost"),
])
def test_bad_campaigns_are_refused_per_field(api, org, payload, field):
    make_campaign(org, "Spring", utm_campaign="spring")
    response = api.post("/api/v1/campaigns/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert Campaign.objects.count() == 1


def test_members_add_by_ids_emails_segment_list_and_remove(api, org):
    campaign = make_campaign(org)
    leads = [make_lead(org, email=f"m{n}@example.test", company="Bigco" if n < 3 else "") for n in range(5)]
    url = f"/api/v1/campaigns/{campaign.pk}/members/"

    assert api.post(url, {"leads": [str(leads[4].pk)], "status": "responded"}, format="json").json() == {
        "added": 1, "members": 1}
    assert api.post(url, {"emails": ["M3@example.test"]}, format="json").json()["members"] == 2
    segment = lead_services.create_segment(organization_id=org.pk, name="Bigco", definition={
        "all": [{"field": "company", "op": "eq", "value": "Bigco"}]})
    assert api.post(url, {"segment": str(segment.pk)}, format="json").json() == {"added": 3, "members": 5}

    page = api.get(url + "?page_size=2").json()
    assert len(page["results"]) == 2 and page["next"]
    statuses = {m["email"]: (m["status"], m["source"]) for m in api.get(url).json()["results"]}
    assert statuses["m4@example.test"] == ("responded", "manual")
    assert statuses["m0@example.test"] == ("targeted", "segment")

    assert api.post(url + "remove/", {"emails": ["m0@example.test"]}, format="json").json() == {
        "removed": 1, "members": 4}
    assert api.delete(f"{url}{leads[1].pk}/").status_code == 204
    assert api.delete(f"{url}{leads[1].pk}/").status_code == 404  # no longer a member
    assert CampaignMember.objects.count() == 3


def test_members_refuse_another_orgs_leads_and_segments_without_telling(api, org, other_org):
    campaign = make_campaign(org)
    rival_lead = make_lead(other_org, email="rival@example.test")
    rival_segment = lead_services.create_segment(organization_id=other_org.pk, name="Theirs", kind="static")
    url = f"/api/v1/campaigns/{campaign.pk}/members/"
    for payload, field in [({"leads": [str(rival_lead.pk)]}, "leads"), ({"emails": ["rival@example.test"]}, "emails"),
                           ({"segment": str(rival_segment.pk)}, "segment"), ({"segment": "nope"}, "segment"),
                           ({}, "leads"), ({"leads": [], "emails": ["x@y.z"]}, "leads"),
                           ({"leads": [str(rival_lead.pk)], "status": "bogus"}, "status")]:
        response = api.post(url, payload, format="json")
        assert response.status_code == 400, payload
        assert field in response.json()["errors"], (payload, response.json())
    unknown = api.post(url, {"segment": str(rival_segment.pk)}, format="json").json()
    missing = api.post(url, {"segment": "00000000-0000-0000-0000-000000000000"}, format="json").json()
    assert unknown == missing  # the same answer as for a segment that does not exist
    assert not CampaignMember.objects.exists()


def test_costs_add_list_delete_and_refuse_negative(api, org):
    campaign = make_campaign(org)
    url = f"/api/v1/campaigns/{campaign.pk}/costs/"
    first = api.post(url, {"date": "2025-01-01", "amount": "100.50", "note": "Ads"}, format="json")
    assert first.status_code == 201
    api.post(url, {"date": "2025-01-02", "amount": "50"}, format="json")
    assert [c["amount"] for c in api.get(url).json()["results"]] == ["50.00", "100.50"]
    assert api.get(f"/api/v1/campaigns/{campaign.pk}/").json()["cost"] == "150.50"

    bad = api.post(url, {"date": "2025-01-03", "amount": "-5"}, format="json")
    assert bad.status_code == 400 and "amount" in bad.json()["errors"]
    assert api.post(url, {"amount": "5"}, format="json").json()["errors"].keys() == {"date"}

    assert api.delete(f"{url}{first.json()['id']}/").status_code == 204
    assert api.delete(f"{url}{first.json()['id']}/").status_code == 404
    assert api.delete(f"{url}not-a-uuid/").status_code == 404
    assert list(CampaignCost.objects.values_list("amount", flat=True)) == [50]


def test_reps_cannot_use_the_api(client, member, org):
    client.force_login(member("rep"))
    assert client.get("/api/v1/campaigns/").status_code == 403


def test_list_queries_do_not_grow_with_campaigns(api, org, django_assert_max_num_queries):
    for n in range(3):
        join(make_campaign(org), make_lead(org), n)
    with django_assert_max_num_queries(8) as few:
        api.get("/api/v1/campaigns/")
    for n in range(12):
        join(make_campaign(org), make_lead(org), n)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(api.get("/api/v1/campaigns/").json()["results"]) == 15


@pytest.mark.parametrize("code", ["dollars", "DOL", "E1R"])
def test_a_currency_must_be_a_real_iso_4217_code(api, code):
    response = api.post("/api/v1/campaigns/", {"name": "Fair", "currency": code}, format="json")
    assert response.status_code == 400 and "currency" in response.json()["errors"]
    made = api.post("/api/v1/campaigns/", {"name": "Fair", "currency": "chf"}, format="json")
    assert made.json()["currency"] == "CHF"
