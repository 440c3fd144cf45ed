"""The webhooks API: CRUD with the secret shown once, deliveries in cursor pages, replay, bad input as 400s."""

import pytest

from leadcrm.models import Role
from leads.models import Lead
from webhooks import services
from webhooks.models import Delivery, Endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def public_dns(dns, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    settings.WEBHOOKS_ALLOW_HTTP = False
    dns["hooks.example"] = ["93.184.216.34"]
    return dns


def _create(api, **body):
    body = {"url": "https://hooks.example/in", "events": ["lead.created", "lead.mql"], **body}
    return api.post("/api/v1/webhooks/", body, format="json")


def test_create_shows_the_secret_once(api):
    response = _create(api, description="CRM sync")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["secret"].startswith("whsec_") and body["active"] is True
    assert body["events"] == ["lead.created", "lead.mql"] and body["description"] == "CRM sync"
    assert Endpoint.objects.get(pk=body["id"]).secret == body["secret"]
    listed = api.get("/api/v1/webhooks/").json()["results"]
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    assert "secret" not in api.get(f"/api/v1/webhooks/{body['id']}/").json()


def test_update_rotate_and_delete(api):
    endpoint_id = _create(api).json()["id"]
    patched = api.patch(f"/api/v1/webhooks/{endpoint_id}/", {"active": False, "events": ["deal.won"]}, format="json")
    assert patched.status_code == 200 and patched.json()["active"] is False and patched.json()["events"] == ["deal.won"]
    old = Endpoint.objects.get(pk=endpoint_id).secret
    rotated = api.post(f"/api/v1/webhooks/{endpoint_id}/rotate-secret/")
    assert rotated.status_code == 200 and rotated.json()["secret"] != old
    assert Endpoint.objects.get(pk=endpoint_id).secret == rotated.json()["secret"]
    assert api.put(f"/api/v1/webhooks/{endpoint_id}/", {"url": "https://hooks.example/"}, format="json"
                   ).status_code == 405
    assert api.delete(f"/api/v1/webhooks/{endpoint_id}/").status_code == 204
    assert not Endpoint.objects.exists()
    assert api.get(f"/api/v1/webhooks/{endpoint_id}/").status_code == 404
    assert api.get("/api/v1/webhooks/not-a-uuid/").status_code == 404


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"url": "not a url"}, "url", "Only http and https"),
    ({"url": "ftp://hooks.example/"}, "url", "Only http and https"),
    ({"url": "http://hooks.example/"}, "url", "Use an https URL"),
    ({"url": "https://user:pw@hooks.example/"}, "url", "Credentials"),
    ({"url": "https://nowhere.invalid/"}, "url", "does not resolve"),
    ({"url": "https://[::1/"}, "url", "valid URL"),
    ({"url": "https://hooks.example:99999/"}, "url", "valid URL"),
    ({"url": "https://" + "a" * 2000 + ".example/"}, "url", "2000"),
    ({"url": None}, "url", "null"),
    ({"events": []}, "events", "at least one event"),
    ({"events": ["lead.deleted"]}, "events", "Unknown event: lead.deleted"),
    ({"events": "lead.created"}, "events", "list"),
    ({"events": [None]}, "events", "null"),
    ({"events": [{"a": 1}]}, "events", "valid string"),
    ({"active": "maybe"}, "active", "boolean"),
    ({"secret": "whsec_mine"}, "secret", "Unknown field"),
    ({"url": "https://hooks.example/\x00"}, "url", "null characters"),
])
def test_bad_input_is_a_400_naming_the_field(api, body, field, message):
    response = _create(api, **body)
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert field in errors, errors
    assert message.lower() in str(errors[field]).lower(), errors
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize(("raw", "field"), [
    ('{"url": "https://hooks.example/", "events": ["lead.created"], "description": "\\ud800"}', "description"),
    ('{"url": "https://hooks.example/", "events": ["lead.created\\ud800"]}', "events"),
    ('{"url": "https://hooks.example/\\udfff", "events": ["lead.created"]}', "url"),
])
def test_lone_surrogates_are_a_400(api, raw, field):
    response = api.post("/api/v1/webhooks/", raw, content_type="application/json")
    assert response.status_code == 400 and field in response.json()["errors"], response.content
    assert not Endpoint.objects.exists()


def test_required_fields_and_non_objects(api):
    response = api.post("/api/v1/webhooks/", {}, format="json")
    assert response.status_code == 400 and {"url", "events"} <= set(response.json()["errors"])
    assert api.post("/api/v1/webhooks/", [1, 2], format="json").status_code == 400
    assert api.post("/api/v1/webhooks/", "x", content_type="text/plain").status_code == 415


def test_reps_cannot_manage_webhooks(org, member, client):
    client.force_login(member(Role.REP))
    assert client.get("/api/v1/webhooks/").status_code == 403


def test_idempotency_key_creates_one_endpoint(api):
    first = api.post("/api/v1/webhooks/", {"url": "https://hooks.example/in", "events": ["lead.created"]},
                     format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = api.post("/api/v1/webhooks/", {"url": "https://hooks.example/in", "events": ["lead.created"]},
                     format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert Endpoint.objects.count() == 1


@pytest.fixture
def deliveries(org, api):
    endpoint = Endpoint.objects.get(pk=_create(api, events=["lead.created", "lead.updated"]).json()["id"])
    leads = Lead.objects.bulk_create([Lead(organization=org, email=f"l{i}@example.com") for i in range(30)])
    services.deliveries_for_leads(organization_id=org.pk, event_type="lead.created", lead_ids=[x.pk for x in leads])
    services.deliveries_for_leads(organization_id=org.pk, event_type="lead.updated",
                                  lead_ids=[x.pk for x in leads[:5]])
    Delivery.objects.filter(event_type="lead.updated").update(status="failed", next_attempt_at=None)
    return endpoint


def test_deliveries_in_cursor_pages_with_filters(api, deliveries, django_assert_max_num_queries):
    url = f"/api/v1/webhooks/{deliveries.pk}/deliveries/"
    seen, page = [], url + "?page_size=10"
    while page:
        with django_assert_max_num_queries(4):
            body = api.get(page).json()
        seen += body["results"]
        page = body["next"]
    assert len(seen) == 35 and len({d["id"] for d in seen}) == 35
    assert seen[0]["message_id"].startswith("msg_") and "payload" in seen[0]
    failed = api.get(url + "?status=failed").json()["results"]
    assert len(failed) == 5 and {d["event_type"] for d in failed} == {"lead.updated"}
    assert len(api.get(url + "?event=lead.created&status=pending").json()["results"]) == 30
    bad = api.get(url + "?status=lost&event=nope")
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"status", "event"}


def test_replay_creates_a_new_delivery(api, deliveries):
    original = Delivery.objects.filter(endpoint=deliveries, status="failed").first()
    response = api.post(f"/api/v1/webhooks/{deliveries.pk}/deliveries/{original.pk}/replay/")
    assert response.status_code == 201
    body = response.json()
    assert body["replay_of"] == str(original.pk) and body["status"] == "pending" and body["attempts"] == []
    assert body["message_id"] != original.message_id and body["payload"] == original.payload
    original.refresh_from_db()
    assert original.status == "failed"
    assert api.post(f"/api/v1/webhooks/{deliveries.pk}/deliveries/nope/replay/").status_code == 404


def test_replay_of_another_endpoints_delivery_is_a_404(org, api, deliveries):
    other = Endpoint.objects.get(pk=_create(api, events=["lead.created"]).json()["id"])
    delivery = Delivery.objects.filter(endpoint=deliveries).first()
    assert api.post(f"/api/v1/webhooks/{other.pk}/deliveries/{delivery.pk}/replay/").status_code == 404


def test_the_schema_describes_the_webhook_routes(api):
    schema = api.get("/api/schema/?format=json").json()
    assert "/api/v1/webhooks/{id}/deliveries/{delivery_id}/replay/" in schema["paths"]
    assert "/api/v1/webhooks/{id}/deliveries/" in schema["paths"]
