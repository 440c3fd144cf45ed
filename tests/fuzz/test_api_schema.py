"""schemathesis against /api/schema/: every operation is called through the WSGI app with an API key of a seeded
org; no answer may be a 5xx, and every answer must be one the schema documents (status, content type, body)."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from leadcrm import services

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
EXAMPLES = 5  # generated per operation, after the schema-derived coverage cases: ~125 operations


def _keep_connection(keep=True):
    """As Django's test client does: a WSGI request must not close the connection holding the test's transaction."""
    for signal in (request_started, request_finished):
        (signal.disconnect if keep else signal.connect)(close_old_connections)


@pytest.fixture(autouse=True)
def _keep_test_connection():
    _keep_connection()
    yield
    _keep_connection(False)


def _load_schema():
    from django.core.wsgi import get_wsgi_application  # not leadcrm.wsgi: that makes this a web process (leadcrm.rls)

    application = get_wsgi_application()

    # Fetched from the app itself at collection (schema generation reads no rows), one test per operation.
    return schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def fuzz_key(db):
    organization = services.create_organization(slug="fuzz", name="Fuzz", owner_email="owner@fuzz.test",
                                                owner_password="pw-fuzz-123")
    _, plain = services.create_api_key(organization=organization, name="fuzz")
    return plain


schema = _load_schema()


@pytest.fixture
def seed(fuzz_key):
    """seed(): once per test, gives the org rows of each kind (through the API itself), so that lists answer with
    real items for the schema check to read."""
    done = []

    def run():
        if done:
            return
        done.append(True)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {fuzz_key}")
        calls = [
            ("/api/v1/leads/bulk/", {"leads": [
                {"email": "ada@example.com", "first_name": "Ada", "company": "Acme", "country": "GB",
                 "company_size": 120, "tags": ["vip"], "custom_fields": {"plan": "pro"}, "utm_campaign": "spring"},
                {"email": "bob@example.com", "phone": "+44 20 7946 0958", "industry": "Software"},
                {"first_name": "No email"}]}),
            ("/api/v1/activities/", {"email": "ada@example.com", "type": "page_view",
                                     "properties": {"url": "https://example.com/pricing"}}),
            ("/api/v1/forms/", {"name": "Contact", "fields": ["email", "first_name"], "required_fields": ["email"]}),
            ("/api/v1/segments/", {"name": "UK", "definition": {"all": [{"field": "country", "op": "eq",
                                                                          "value": "GB"}]}}),
            ("/api/v1/campaigns/", {"name": "Spring", "channel": "webinar", "status": "active", "start": "2025-03-01",
                                    "end": "2025-03-31", "budget": "5000.00", "currency": "eur",
                                    "utm_campaign": "spring"}),
            ("/api/v1/templates/", {"name": "Welcome", "subject": "Hi {{ lead.first_name }}",
                                    "html": "<p>Hello</p>", "text": "Hello"}),
        ]
        for path, body in calls:
            response = client.post(path, body, format="json")
            assert response.status_code in (200, 201), (path, response.content[:500])
        _keep_connection()  # the test client reconnects Django's handler when it is done


    return run


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, fuzz_key, seed):
    if case.method == "GET":
        seed()
    case.call_and_validate(headers={"Authorization": f"Api-Key {fuzz_key}"}, checks=CHECKS)
