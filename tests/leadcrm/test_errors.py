"""One family of domain errors, mapped once: to API answers that always carry a stable `code`, and to browser
answers (a flash message and back, or a 404)."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.cache import SessionStore
from django.http import Http404
from django.test import RequestFactory
from rest_framework import exceptions
from rest_framework.test import APIClient

from leadcrm.api import exception_handler
from leadcrm.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, TooLarge
from leadcrm.middleware import DomainErrorMiddleware
from leadcrm.models import Role
from leads.imports import ImportTooLarge
from leads.models import Lead
from leads.services import StageMoveRefused, UnknownLeads

# ------------------------------------------------------------------------------------------------ the mapping


@pytest.mark.parametrize(("error", "status", "body"), [
    (Invalid("Bad input."), 400, {"errors": {"non_field_errors": ["Bad input."]}, "code": "invalid"}),
    (Invalid(errors={"email": ["Enter a valid email."]}), 400,
     {"errors": {"email": ["Enter a valid email."]}, "code": "invalid"}),
    (Conflict("Already done."), 409, {"detail": "Already done.", "code": "conflict"}),
    (Forbidden("Not yours."), 403, {"detail": "Not yours.", "code": "permission_denied"}),
    (NotFound("No such lead."), 404, {"detail": "No such lead.", "code": "not_found"}),
    (TooLarge(errors={"file": ["Too big."]}), 413, {"errors": {"file": ["Too big."]}, "code": "too_large"}),
    (Conflict("Taken.", code="already_claimed"), 409, {"detail": "Taken.", "code": "already_claimed"}),
    (StageMoveRefused("Not from here."), 409, {"detail": "Not from here.", "code": "stage_not_allowed"}),
    (ImportTooLarge({"file": ["Too big."]}), 413, {"errors": {"file": ["Too big."]}, "code": "file_too_large"}),
    (UnknownLeads(["x"], field="add"), 400, {"errors": {"add": ["No such leads: x"]}, "code": "unknown_leads"}),
])
def test_each_domain_error_is_one_status_and_body(error, status, body):
    response = exception_handler(error, {})
    assert (response.status_code, response.data) == (status, body)


def test_a_domain_error_without_a_message_says_its_fields():
    error = Invalid(errors={"start": ["Required."], "end": ["Before the start."]})
    assert str(error) == "start: Required.; end: Before the start."
    assert error.messages == ["Required.", "Before the start."]
    assert Conflict("In use.").messages == ["In use."]


@pytest.mark.parametrize(("error", "status", "code"), [
    (exceptions.ValidationError({"email": ["Bad."]}), 400, "invalid"),
    (exceptions.ParseError(), 400, "parse_error"),
    (exceptions.NotAuthenticated(), 401, "not_authenticated"),
    (exceptions.AuthenticationFailed(), 401, "authentication_failed"),
    (exceptions.PermissionDenied(), 403, "permission_denied"),
    (exceptions.NotFound(), 404, "not_found"),
    (Http404(), 404, "not_found"),
    (exceptions.MethodNotAllowed("PUT"), 405, "method_not_allowed"),
    (exceptions.UnsupportedMediaType("text/plain"), 415, "unsupported_media_type"),
    (exceptions.Throttled(wait=3), 429, "throttled"),
])
def test_drf_errors_carry_a_code_too(error, status, code):
    response = exception_handler(error, {})
    assert response.status_code == status
    assert response.data["code"] == code
    assert ("errors" if status == 400 and code == "invalid" else "detail") in response.data


# ------------------------------------------------------------------------------------------------ through the API


@pytest.mark.django_db
def test_every_error_answer_of_the_api_carries_a_code(settings, org, api, member):
    lead = Lead.objects.create(organization=org, email="ada@example.test")
    rep = APIClient()
    rep.force_login(member(Role.REP))
    wrong_key = APIClient()
    wrong_key.credentials(HTTP_AUTHORIZATION="Api-Key nope")
    answers = {
        "invalid": api.post("/api/v1/leads/", {"email": "not an email"}, format="json"),
        "parse_error": api.generic("POST", "/api/v1/leads/", b'{"email": ', content_type="application/json"),
        "not_authenticated": APIClient().get("/api/v1/leads/"),
        "authentication_failed": wrong_key.get("/api/v1/leads/"),
        "permission_denied": api.post(f"/api/v1/leads/{lead.pk}/claim/", format="json"),  # a key cannot claim
        "not_found": api.get("/api/v1/leads/00000000-0000-0000-0000-000000000000/"),
        "method_not_allowed": api.put("/api/v1/leads/bulk/", {}, format="json"),
        "stage_not_allowed": api.post(f"/api/v1/leads/{lead.pk}/stage/", {"stage": "customer"}, format="json"),
        "unsupported_media_type": api.generic("POST", "/api/v1/leads/", b"email=a", content_type="text/plain"),
    }
    first = api.post("/api/v1/leads/", {"email": "b@example.test"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == 201
    answers["idempotency_key_reused"] = api.post("/api/v1/leads/", {"email": "c@example.test"}, format="json",
                                                 HTTP_IDEMPOTENCY_KEY="k1")
    settings.MAX_BODY_BYTES = 200
    answers["too_large"] = api.post("/api/v1/leads/", {"email": "d@example.test", "city": "x" * 500}, format="json")
    settings.MAX_BODY_BYTES = 1024 * 1024
    answers["not_found "] = api.get("/api/v1/no-such-endpoint/")  # outside DRF: Django's 404 handler
    settings.API_RATE_PER_KEY = "1/m"
    api.get("/api/v1/ping/")
    answers["throttled"] = api.get("/api/v1/ping/")

    statuses = {code: response.status_code for code, response in answers.items()}
    assert statuses == {
        "invalid": 400, "parse_error": 400, "not_authenticated": 401, "authentication_failed": 401,
        "permission_denied": 403, "not_found": 404, "method_not_allowed": 405, "stage_not_allowed": 409,
        "unsupported_media_type": 415, "idempotency_key_reused": 422, "too_large": 413,
        "not_found ": 404, "throttled": 429,
    }
    for code, response in answers.items():
        body = response.json()
        assert body["code"] == code.strip(), (code, body)
        assert isinstance(body.get("detail") or body.get("errors"), str | dict), (code, body)
    assert "email" in answers["invalid"].json()["errors"]


# ------------------------------------------------------------------------------------------------ in the browser


def _request(method="post", path="/leads/", **extra):
    request = getattr(RequestFactory(), method)(path, **extra)
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    request.htmx = False
    return request


def test_a_refusal_in_a_post_is_a_message_and_back():
    request = _request(HTTP_REFERER="http://testserver/leads/42/")
    response = DomainErrorMiddleware(lambda r: None).process_exception(request, Conflict("Already won."))
    assert response.status_code == 302 and response["Location"] == "http://testserver/leads/42/"
    assert [str(message) for message in get_messages(request)] == ["Already won."]


def test_a_refusal_never_sends_the_browser_to_another_site():
    request = _request(HTTP_REFERER="https://evil.example/", data={"next": "https://evil.example/x"})
    response = DomainErrorMiddleware(lambda r: None).process_exception(request, Invalid("No."))
    assert response["Location"] == "/"


def test_htmx_is_told_to_load_the_page_back():
    request = _request(HTTP_REFERER="http://testserver/pool/")
    request.htmx = True
    response = DomainErrorMiddleware(lambda r: None).process_exception(request, Conflict("Taken."))
    assert response.status_code == 409 and response["HX-Redirect"] == "http://testserver/pool/"


def test_not_found_is_a_404_in_the_browser():
    with pytest.raises(Http404):
        DomainErrorMiddleware(lambda r: None).process_exception(_request(), NotFound("No such list."))


@pytest.mark.django_db
def test_forbidden_is_a_403_in_the_browser_as_in_the_api():
    request = _request()
    request.user = AnonymousUser()
    response = DomainErrorMiddleware(lambda r: None).process_exception(request, Forbidden("Managers only."))
    assert response.status_code == 403 and "Managers only." in response.content.decode()


@pytest.mark.django_db
def test_a_refusal_on_a_page_shows_it_with_its_status():
    request = _request("get")
    request.user = AnonymousUser()
    response = DomainErrorMiddleware(lambda r: None).process_exception(request, Conflict("Not now."))
    assert response.status_code == 409 and "Not now." in response.content.decode()


def test_the_api_and_other_errors_are_left_alone():
    middleware = DomainErrorMiddleware(lambda r: None)
    assert middleware.process_exception(_request(path="/api/v1/leads/"), Conflict("x")) is None
    assert middleware.process_exception(_request(), ValueError("x")) is None
    assert issubclass(StageMoveRefused, DomainError)


# ------------------------------------------------------------------------------------------------ error pages


def test_the_server_error_page_is_in_the_app_layout_without_a_request_context_or_the_database():
    """handler500 renders 500.html with no context; without a django_db mark any query would fail this test."""
    from leadcrm.middleware import server_error

    response = server_error(RequestFactory().get("/leads/"))
    content = response.content.decode()
    assert response.status_code == 500
    assert "<h1>Something went wrong</h1>" in content and 'class="brand"' in content and "favicon.svg" in content


@pytest.mark.django_db
def test_the_favicon_address_leads_to_the_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response.url.endswith("favicon.svg")
