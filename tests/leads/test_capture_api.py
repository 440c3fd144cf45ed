import pytest

from leads.models import Activity, Lead

pytestmark = pytest.mark.django_db


def test_create_lead_returns_201_with_the_lead(api, org):
    response = api.post("/api/v1/leads/", {"email": "  Ada@Example.COM ", "first_name": "Ada"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["email"] == "ada@example.com"
    lead = Lead.objects.get(pk=body["id"])
    assert lead.organization == org
    assert Activity.objects.filter(lead=lead, type="api_submission").count() == 1


def test_same_email_merges_filling_only_empty_fields(api):
    first = api.post("/api/v1/leads/", {"email": "ada@example.com", "first_name": "Ada", "company": ""},
                     format="json").json()
    response = api.post("/api/v1/leads/", {"email": "ADA@example.com", "first_name": "Augusta",
                                           "company": "Analytical Engines"}, format="json")
    assert response.status_code == 200
    assert response.json()["id"] == first["id"]
    lead = Lead.objects.get(pk=first["id"])
    assert lead.first_name == "Ada"  # filled values are never overwritten
    assert lead.company == "Analytical Engines"  # empty ones are filled
    assert lead.activities.filter(type="api_submission").count() == 2
    assert Lead.objects.count() == 1


def test_idempotency_key_replays_first_answer_and_creates_nothing(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "abc-123"}
    first = api.post("/api/v1/leads/", {"email": "x@example.com"}, format="json", **headers)
    again = api.post("/api/v1/leads/", {"email": "x@example.com"}, format="json", **headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Activity.objects.count() == 1
    different = api.post("/api/v1/leads/", {"email": "y@example.com"}, format="json", **headers)
    assert different.status_code == 422


def test_lead_needs_email_or_phone(api):
    response = api.post("/api/v1/leads/", {"first_name": "Nobody"}, format="json")
    assert response.status_code == 400
    assert "email" in response.json()["errors"]
    assert Lead.objects.count() == 0


def test_phone_is_stored_in_e164(api):
    response = api.post("/api/v1/leads/", {"phone": "(415) 555-0123", "country": "us"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["phone"] == "+14155550123"
    assert response.json()["country"] == "US"


def test_capture_of_a_new_lead_costs_a_fixed_handful_of_queries(api, django_assert_max_num_queries):
    # the key's org through the wall (a definer function), the key under that org, (its last-used update), and one
    # statement, atomic on its own, writing the lead (unless its email is taken), its touch, its activity and the
    # outbox row of its two events
    with django_assert_max_num_queries(4):
        response = api.post("/api/v1/leads/", {"email": "fast@example.com", "company": "Quick"}, format="json")
    assert response.status_code == 201


def test_a_captured_lead_is_stored_exactly_as_the_answer_shows_it(api):
    # Every value goes to PostgreSQL inside one JSON parameter: decimals, times to the microsecond, lists, nested JSON
    # and text with quotes, backslashes and accents come back as they were.
    response = api.post("/api/v1/leads/", {
        "email": "exact@example.com", "first_name": 'Zoë "Q" \\ O\'Neil', "company_size": 12,
        "annual_revenue": "1234567.89", "tags": ["vip", "it's"], "consent_opt_in": True, "utm_source": "névé",
        "custom_fields": {"plan": "pro", "seats": 3, "nested": {"a": [1, "ü"]}},
    }, format="json")
    assert response.status_code == 201, response.json()
    answer = response.json()
    read_back = api.get(f"/api/v1/leads/{answer['id']}/").json()
    assert {name: read_back[name] for name in answer} == answer
    stored = Lead.objects.get(pk=answer["id"])
    assert stored.first_name == 'Zoë "Q" \\ O\'Neil'
    assert stored.custom_fields["nested"] == {"a": [1, "ü"]}
    assert stored.first_touch["utm_source"] == "névé"
    activity = Activity.objects.get(lead=stored)
    assert activity.occurred_at == stored.last_activity_at
    assert activity.properties["merged"] is False


def test_capture_into_an_existing_lead_merges_under_a_lock(api):
    first = api.post("/api/v1/leads/", {"email": "m@example.com"}, format="json").json()
    again = api.post("/api/v1/leads/", {"email": "M@example.com", "job_title": "CFO"}, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["job_title"] == "CFO"


def test_computed_fields_are_refused_rather_than_silently_ignored(api):
    lead = api.post("/api/v1/leads/", {"email": "ro@example.com"}, format="json").json()
    response = api.patch(f"/api/v1/leads/{lead['id']}/", {"score": 99, "first_name": "Ro"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"score": ["This field is read-only."]}
    assert Lead.objects.get(pk=lead["id"]).first_name == ""
