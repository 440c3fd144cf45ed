"""An org's own activity types: registered over the API and in the browser, then accepted by capture, scoring rules
and segments; an unknown type is a 400 that lists the registered ones; a type in use is not deleted."""

import pytest

from leads.models import Activity, Lead
from scoring import services as scoring

pytestmark = pytest.mark.django_db


@pytest.fixture
def webinar(api):
    response = api.post("/api/v1/activity-types/", {"key": "demo_booked", "label": "Demo booked"},
                        format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_registered_type_is_listed_and_captured(api, webinar):
    listed = api.get("/api/v1/activity-types/").json()
    assert {"key": "demo_booked", "label": "Demo booked", "builtin": False} in listed
    assert {"key": "page_view", "label": "Page view", "builtin": True} in listed

    response = api.post("/api/v1/activities/", {"email": "w@example.com", "type": "demo_booked",
                                                "properties": {"calendar": "Calendly"}}, format="json")
    assert response.status_code == 201, response.content
    assert Activity.objects.filter(type="demo_booked", lead__email="w@example.com").count() == 1


def test_an_unknown_type_is_a_400_listing_the_registered_ones(api, webinar, other_api):
    response = api.post("/api/v1/activities/", {"email": "w@example.com", "type": "sms_sent"}, format="json")
    assert response.status_code == 400
    message = response.json()["errors"]["type"][0]
    assert "Unknown activity type 'sms_sent'" in message and "demo_booked" in message and "page_view" in message
    # another org has not registered it
    theirs = other_api.post("/api/v1/activities/", {"email": "w@example.com", "type": "demo_booked"},
                            format="json")
    assert theirs.status_code == 400


@pytest.mark.parametrize(("body", "field"), [
    ({"key": "Webinar", "label": "W"}, "key"), ({"key": "page_view", "label": "Page"}, "key"),
    ({"key": "ok_key", "label": ""}, "label"), ({"key": "x", "label": "X"}, "key")])
def test_bad_types_are_refused_per_field(api, body, field):
    response = api.post("/api/v1/activity-types/", body, format="json")
    assert response.status_code == 400 and field in response.json()["errors"], response.json()


def test_a_type_registered_twice_is_refused(api, webinar):
    response = api.post("/api/v1/activity-types/", {"key": "demo_booked", "label": "Again"}, format="json")
    assert response.status_code == 400 and "registered already" in str(response.json())


def test_scoring_rules_and_segments_accept_it(api, org, webinar):
    rule = api.post("/api/v1/scoring-rules/", {"name": "Demo", "kind": "behavior", "points": 15,
                                               "condition": {"activity_type": "demo_booked"}}, format="json")
    assert rule.status_code == 201, rule.content
    api.post("/api/v1/activities/", {"email": "w@example.com", "type": "demo_booked"}, format="json")
    scoring.recalculate_organization(organization_id=org.pk)
    assert Lead.objects.get(email="w@example.com").behavior_score == 15

    segment = api.post("/api/v1/segments/", {"name": "Attendees", "definition": {
        "all": [{"activity": "demo_booked"}]}}, format="json")
    assert segment.status_code == 201 and segment.json()["count"] == 1
    bad = api.post("/api/v1/segments/", {"name": "x", "definition": {"all": [{"activity": "sms_sent"}]}},
                   format="json")
    assert bad.status_code == 400 and "demo_booked" in str(bad.json())


def test_a_type_in_use_is_not_deleted(api, webinar):
    assert api.post("/api/v1/activity-types/", {"key": "sms_sent", "label": "SMS sent"}, format="json")
    assert api.delete("/api/v1/activity-types/sms_sent/").status_code == 204
    api.post("/api/v1/activities/", {"email": "w@example.com", "type": "demo_booked"}, format="json")
    response = api.delete("/api/v1/activity-types/demo_booked/")
    assert response.status_code == 409 and "activities" in str(response.json())
    assert api.delete("/api/v1/activity-types/page_view/").status_code == 404  # built-in ones are not the org's


def test_the_settings_page_adds_and_refuses_with_form_errors(client, member):
    from leadcrm.models import Role

    client.force_login(member(Role.MARKETER))
    bad = client.post("/settings/activity-types/", {"key": "Bad Key", "label": "SMS <sent>"})
    assert bad.status_code == 400 and "lowercase letters" in bad.content.decode()
    added = client.post("/settings/activity-types/", {"key": "sms_sent", "label": "SMS <sent>"}, follow=True)
    page = added.content.decode()
    assert "SMS &lt;sent&gt;" in page and "<code>sms_sent</code>" in page
    rep = member(Role.REP, "rep@acme.test")
    client.force_login(rep)
    assert client.get("/settings/activity-types/").status_code == 403
