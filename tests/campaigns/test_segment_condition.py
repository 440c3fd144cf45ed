"""Segments test campaign membership: {"campaign": ID, "member": bool, "status"?: …}, refused with field messages
when wrong, and a campaign a segment uses is not deleted from under it."""

import pytest

from . import join, make_campaign, make_lead

pytestmark = pytest.mark.django_db


@pytest.fixture
def fair(org):
    campaign = make_campaign(org, "Spring fair")
    leads = {name: make_lead(org, email=f"{name}@example.test") for name in ("ann", "bob", "cy", "dee")}
    join(campaign, leads["ann"], 1, status="responded")
    join(campaign, leads["bob"], 2, status="targeted")
    join(campaign, leads["cy"], 3, status="converted")
    return campaign


def _emails(api, definition):
    response = api.post("/api/v1/segments/", {"name": "s", "definition": definition}, format="json")
    assert response.status_code == 201, response.content
    leads = api.get(f"/api/v1/segments/{response.json()['id']}/leads/").json()["results"]
    return sorted(row["email"].split("@")[0] for row in leads)


@pytest.mark.parametrize(("condition", "expected"), [
    ({"member": True}, ["ann", "bob", "cy"]),
    ({}, ["ann", "bob", "cy"]),
    ({"member": False}, ["dee"]),
    ({"member": True, "status": "responded"}, ["ann"]),
    ({"status": ["responded", "converted"]}, ["ann", "cy"]),
])
def test_membership_and_status(api, fair, condition, expected):
    assert _emails(api, {"all": [{"campaign": str(fair.pk), **condition}]}) == expected
    preview = api.post("/api/v1/segments/preview/", {"definition": {"any": [{"campaign": str(fair.pk), **condition}]}},
                       format="json")
    assert preview.json() == {"count": len(expected)}


def test_it_combines_with_other_conditions(api, fair):
    definition = {"all": [{"campaign": str(fair.pk)}, {"field": "email", "op": "starts_with", "value": "b"}]}
    assert _emails(api, definition) == ["bob"]


@pytest.mark.parametrize(("condition", "path", "message"), [
    ({"campaign": "nope"}, "all.0.campaign", "No campaign 'nope'"),
    ({"campaign": "FAIR", "member": "yes"}, "all.0.member", "true or false"),
    ({"campaign": "FAIR", "status": "won"}, "all.0.status", "Use one of targeted, responded, converted"),
    ({"campaign": "FAIR", "member": False, "status": "responded"}, "all.0.status", "only applies to members"),
    ({"campaign": "FAIR", "colour": "red"}, "all.0.campaign", "Unknown keys: colour"),
])
def test_bad_conditions_name_their_field(api, fair, condition, path, message):
    condition = {key: str(fair.pk) if value == "FAIR" else value for key, value in condition.items()}
    response = api.post("/api/v1/segments/", {"name": "s", "definition": {"all": [condition]}}, format="json")
    assert response.status_code == 400
    assert message in str(response.json()), response.json()
    assert path in str(response.json())


def test_another_orgs_campaign_is_unknown(api, other_org):
    theirs = make_campaign(other_org, "Their fair")
    response = api.post("/api/v1/segments/", {"name": "s", "definition": {"all": [{"campaign": str(theirs.pk)}]}},
                        format="json")
    assert response.status_code == 400 and "No campaign" in str(response.json())


def test_a_campaign_a_segment_uses_is_not_deleted(api, fair):
    _emails(api, {"all": [{"any": [{"campaign": str(fair.pk), "status": "responded"}]}]})
    response = api.delete(f"/api/v1/campaigns/{fair.pk}/")
    assert response.status_code == 409 and "Segments test membership of this campaign" in str(response.json())
    assert api.get(f"/api/v1/campaigns/{fair.pk}/").status_code == 200


def test_the_segment_page_says_it_in_words(browser, org, fair):
    from leads import services

    segment = services.create_segment(organization_id=org.pk, name="Responders", definition={
        "all": [{"campaign": str(fair.pk), "status": "responded"}]})
    page = browser.get(f"/segments/{segment.pk}/").content.decode()
    assert "Is in the campaign “Spring fair” as responded" in page
