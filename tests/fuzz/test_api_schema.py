"""schemathesis against /api/schema/: every operation is called through the WSGI app with an API key of a seeded
org; no answer may be a 5xx, and every answer must be one the schema documents (status, content type, body)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
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


@pytest.fixture(autouse=True)
def _keep_test_connection():
    """As Django's test client does: a WSGI request must not close the connection holding the test's transaction."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _load_schema():
    from leadcrm.wsgi import application

    # Fetched from the app itself at collection (schema generation reads no rows), one test per operation.
    return schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def fuzz_key(db):
    organization = services.create_organization(slug="fuzz", name="Fuzz", owner_email="owner@fuzz.test",
                                                owner_password="pw-fuzz-123")
    _, plain = services.create_api_key(organization=organization, name="fuzz")
    return plain


schema = _load_schema()


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, fuzz_key):
    case.call_and_validate(headers={"Authorization": f"Api-Key {fuzz_key}"}, checks=CHECKS)
