"""Bad input gets a clear 4xx and loses nothing: never a 500, never a half-written lead."""

import json

import pytest

from leads import services
from leads.models import Activity, Lead
from routing.models import Assignment, AssignmentRule, Team

pytestmark = pytest.mark.django_db

OK = {"email": "ok@example.com"}

# (case id, body as sent, field that must be named in {"errors": {...}})
FIELD_ERRORS = [
    ("invalid-email", {"email": "not-an-email"}, "email"),
    ("email-with-spaces-inside", {"email": "a b@example.com"}, "email"),
    ("email-not-a-string", {"email": 5}, "email"),
    ("neither-email-nor-phone", {"first_name": "Nobody", "company": "Nowhere"}, "email"),
    ("blank-email-and-phone", {"email": "", "phone": "  "}, "email"),
    ("invalid-phone", {"phone": "call me maybe"}, "phone"),
    ("too-long-email", {"email": "a" * 250 + "@example.com"}, "email"),
    ("too-long-first-name", {**OK, "first_name": "x" * 101}, "first_name"),
    ("too-long-last-name", {**OK, "last_name": "x" * 101}, "last_name"),
    ("too-long-company", {**OK, "company": "x" * 201}, "company"),
    ("too-long-job-title", {**OK, "job_title": "x" * 151}, "job_title"),
    ("too-long-website", {**OK, "website": "x" * 301}, "website"),
    ("too-long-utm", {**OK, "utm_campaign": "x" * 201}, "utm_campaign"),
    ("too-long-tag", {**OK, "tags": ["x" * 65]}, "tags"),
    ("too-many-tags", {**OK, "tags": [f"t{i}" for i in range(101)]}, "tags"),
    ("country-three-letters", {**OK, "country": "USA"}, "country"),
    ("country-digits", {**OK, "country": "12"}, "country"),
    ("unknown-timezone", {**OK, "timezone": "Mars/Olympus_Mons"}, "timezone"),
    ("unknown-field", {**OK, "favourite_colour": "blue"}, "favourite_colour"),
    ("read-only-looking-unknown", {**OK, "organization": "x"}, "organization"),
    ("company-size-text", {**OK, "company_size": "abc"}, "company_size"),
    ("company-size-negative", {**OK, "company_size": -1}, "company_size"),
    ("company-size-fraction", {**OK, "company_size": 1.5}, "company_size"),
    ("company-size-overflow", {**OK, "company_size": 10**12}, "company_size"),
    ("revenue-text", {**OK, "annual_revenue": "lots"}, "annual_revenue"),
    ("revenue-overflow", {**OK, "annual_revenue": "1e20"}, "annual_revenue"),
    ("tags-not-a-list", {**OK, "tags": "vip"}, "tags"),
    ("tags-a-dict", {**OK, "tags": {"vip": True}}, "tags"),
    ("tags-nested", {**OK, "tags": [["vip"]]}, "tags"),
    ("custom-fields-a-list", {**OK, "custom_fields": ["a"]}, "custom_fields"),
    ("custom-fields-nul", {**OK, "custom_fields": {"note": "a\u0000b"}}, "custom_fields"),
    ("custom-fields-nul-key", {**OK, "custom_fields": {"a\u0000": 1}}, "custom_fields"),
    ("custom-fields-too-deep", {**OK, "custom_fields": {"a": json.loads("[" * 30 + "]" * 30)}}, "custom_fields"),
    ("name-a-dict", {**OK, "first_name": {"x": 1}}, "first_name"),
    ("name-nul", {**OK, "first_name": "a\u0000b"}, "first_name"),
    ("consent-not-boolean", {**OK, "consent_opt_in": "maybe"}, "consent_opt_in"),
    ("stage-not-initial", {**OK, "lifecycle_stage": "customer"}, "lifecycle_stage"),
    ("stage-unknown", {**OK, "lifecycle_stage": "legend"}, "lifecycle_stage"),
    ("source-type-unknown", {**OK, "source_type": "tv"}, "source_type"),
    ("owner-not-a-member", {**OK, "owner": 987654}, "owner"),
    ("owner-wrong-type", {**OK, "owner": [1]}, "owner"),
]


def _post_json(api, path, body):
    return api.post(path, body, format="json")


def assert_nothing_written():
    assert Lead.objects.count() == 0
    assert Activity.objects.count() == 0
    assert Team.objects.count() == AssignmentRule.objects.count() == Assignment.objects.count() == 0


@pytest.mark.parametrize(("body", "field"), [pytest.param(b, f, id=i) for i, b, f in FIELD_ERRORS])
def test_create_rejects_with_a_per_field_message(api, body, field):
    response = _post_json(api, "/api/v1/leads/", body)
    assert response.status_code == 400, response.content[:300]
    errors = response.json()["errors"]
    assert field in errors, errors
    assert errors[field], "the field's message must say something"
    assert_nothing_written()


@pytest.mark.parametrize(("body", "field"), [pytest.param(b, f, id=i) for i, b, f in FIELD_ERRORS])
def test_bulk_rejects_the_same_rows_and_keeps_a_good_one(api, body, field):
    response = _post_json(api, "/api/v1/leads/bulk/", {"leads": [body, {"email": "good@example.com"}]})
    assert response.status_code == 200
    bad, good = response.json()["results"]
    assert bad["status"] == 400 and field in bad["errors"]
    assert good["status"] == 201
    assert list(Lead.objects.values_list("email", flat=True)) == ["good@example.com"]


@pytest.mark.parametrize(("body", "field"), [
    pytest.param(b, f, id=i) for i, b, f in FIELD_ERRORS
    if f not in ("lifecycle_stage", "email")
])
def test_patch_rejects_the_same_and_changes_nothing(api, org, body, field):
    lead = Lead.objects.create(organization=org, email="keep@example.com", first_name="Keep")
    before = Lead.objects.filter(pk=lead.pk).values().get()
    body = {k: v for k, v in body.items() if k != "email"}
    response = api.patch(f"/api/v1/leads/{lead.pk}/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert Lead.objects.filter(pk=lead.pk).values().get() == before


@pytest.mark.parametrize(("body", "field"), [
    ({"email": "a@example.com", "type": "note", "properties": {"t": "\u0000"}}, "properties"),
    ({"email": "a@example.com", "type": "note", "properties": {"deep": json.loads("[" * 30 + "]" * 30)}},
     "properties"),
    ({"email": "a@example.com", "type": "note", "properties": "text"}, "properties"),
    ({"email": "bad", "type": "note"}, "email"),
    ({"email": "a@example.com", "type": "note", "occurred_at": "soon"}, "occurred_at"),
])
def test_activity_bad_input(api, body, field):
    response = _post_json(api, "/api/v1/activities/", body)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert_nothing_written()


# --- bodies that are not JSON objects at all ----------------------------------------------------

# Distribution's creates and bulk action: refused the same way, and nothing is written.
ROUTING_POSTS = ["/api/v1/teams/", "/api/v1/assignment-rules/", "/api/v1/leads/reassign/"]

RAW_BODIES = [
    ("malformed", b'{"email": "a@example.com",'),
    ("trailing-garbage", b'{"email": "a@example.com"} x'),
    ("single-quotes", b"{'email': 'a@example.com'}"),
    ("not-utf8", b'{"email": "a@example.com", "first_name": "\xff\xfe"}'),
    ("latin-1", '{"email": "a@example.com", "first_name": "Jos\u00e9"}'.encode("latin-1")),
    ("nan", b'{"email": "a@example.com", "annual_revenue": NaN}'),
    ("huge-integer", b'{"email": "a@example.com", "company_size": ' + b"9" * 5000 + b"}"),
    ("nested-too-deep", b'{"email": "a@example.com", "custom_fields": {"x": ' + b"[" * 200000 + b"]" * 200000
     + b"}}"),
    ("lone-surrogate-in-name", b'{"email": "a@example.com", "first_name": "\\ud800"}'),
    ("lone-surrogate-in-custom-field", b'{"email": "a@example.com", "custom_fields": {"x": "\\udfff"}}'),
    ("escaped-nul-in-custom-field", b'{"email": "a@example.com", "custom_fields": {"x": "\\u0000"}}'),
    ("a-list", b'[{"email": "a@example.com"}]'),
    ("a-string", b'"a@example.com"'),
    ("null", b"null"),
]


@pytest.mark.parametrize("body", [pytest.param(b, id=i) for i, b in RAW_BODIES])
@pytest.mark.parametrize("path", ["/api/v1/leads/", "/api/v1/activities/", *ROUTING_POSTS])
def test_unparseable_or_unstorable_json_is_400(api, path, body):
    response = api.generic("POST", path, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    payload = response.json()
    assert "errors" in payload or "detail" in payload
    assert_nothing_written()


def test_malformed_json_says_so(api):
    response = api.generic("POST", "/api/v1/leads/", b'{"email": ', content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "application/xml",
    "text/csv",
])
@pytest.mark.parametrize("path", ["/api/v1/leads/", "/api/v1/leads/bulk/", "/api/v1/activities/", *ROUTING_POSTS])
def test_wrong_content_type_is_415(api, path, content_type):
    response = api.generic("POST", path, b"email=a@example.com", content_type=content_type)
    assert response.status_code == 415
    assert "detail" in response.json()
    assert_nothing_written()


def test_wrong_content_type_on_patch_is_415(api, org):
    lead = Lead.objects.create(organization=org, email="k@example.com")
    response = api.generic("PATCH", f"/api/v1/leads/{lead.pk}/", b"first_name=X", content_type="text/plain")
    assert response.status_code == 415
    lead.refresh_from_db()
    assert lead.first_name == ""


@pytest.mark.parametrize("path", ["/api/v1/leads/", "/api/v1/leads/bulk/", "/api/v1/activities/", *ROUTING_POSTS])
def test_body_over_one_mib_is_413(api, path):
    padding = "x" * (1024 * 1024)
    body = json.dumps({"email": "big@example.com", "custom_fields": {"padding": padding}}).encode()
    assert len(body) > 1024 * 1024
    response = api.generic("POST", path, body, content_type="application/json")
    assert response.status_code == 413
    assert "detail" in response.json()
    assert_nothing_written()


def test_body_just_under_the_limit_is_accepted(api):
    body = json.dumps({"email": "near@example.com", "custom_fields": {"p": "x" * 1000}}).encode()
    response = api.generic("POST", "/api/v1/leads/", body, content_type="application/json")
    assert response.status_code == 201


def test_a_body_larger_than_its_content_length_claims_is_still_refused(api):
    """A client that lies about Content-Length cannot slip more than the limit past the check."""
    body = json.dumps({"email": "liar@example.com", "custom_fields": {"p": "x" * (1024 * 1024 + 10)}}).encode()
    response = api.generic("POST", "/api/v1/leads/", body, content_type="application/json",
                           CONTENT_LENGTH="100")
    assert response.status_code == 400  # only the first 100 bytes are read: malformed JSON
    assert_nothing_written()


@pytest.mark.parametrize("query", [
    "search=%00", "email=%00", "source=a%00b", "country=%00", "ordering=%00", "cursor=%00", "search=%ED%A0%80",
    "score_min=1e999", "created_after=0000-00-00", "page_size=-1", "page_size=abc",
])
def test_odd_query_strings_never_500(api, org, query):
    Lead.objects.create(organization=org, email="q@example.com")
    response = api.get(f"/api/v1/leads/?{query}")
    assert response.status_code in (200, 400, 404), response.content[:300]


@pytest.mark.parametrize("query", ["search=%00", "country=%00", "ordering=%00", "cursor=%00", "score_min=x"])
def test_odd_query_strings_on_the_leads_page_never_500(browser, org, query):
    Lead.objects.create(organization=org, email="q@example.com")
    response = browser.get(f"/leads/?{query}")
    assert response.status_code in (200, 400, 404)


# --- markup in names: stored as given, escaped when shown -----------------------------------------

MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_markup_is_stored_as_given_and_escaped_on_list_and_detail(api, browser, org):
    response = _post_json(api, "/api/v1/leads/", {
        "email": "xss@example.com", "first_name": MARKUP, "last_name": "O'Brien & <b>Co</b>",
        "company": "</td><td>Evil", "job_title": "{{ secret }}", "custom_fields": {"<i>k</i>": MARKUP},
        "tags": ["<b>tag</b>"],
    })
    assert response.status_code == 201, response.json()
    assert response.json()["first_name"] == MARKUP  # the API gives back exactly what was sent
    lead = Lead.objects.get(email="xss@example.com")
    assert lead.first_name == MARKUP and lead.company == "</td><td>Evil"
    services.record_activity(organization_id=org.pk, lead=lead, type="note", properties={"text": MARKUP})

    for url in ("/leads/", f"/leads/{lead.pk}/", f"/leads/?search={lead.email}"):
        page = browser.get(url)
        assert page.status_code == 200
        html = page.content.decode()
        assert "<script>alert" not in html, url
        assert "<img src=x" not in html, url
        assert "</td><td>Evil" not in html, url
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html, url
        assert "<b>Co</b>" not in html, url
    detail = browser.get(f"/leads/{lead.pk}/").content.decode()
    assert "{{ secret }}" in detail  # shown literally, not evaluated
    assert "<i>k</i>" not in detail and "&lt;i&gt;k&lt;/i&gt;" in detail
    assert "<b>tag</b>" not in detail


def test_markup_in_the_page_title_is_escaped(browser, org):
    lead = Lead.objects.create(organization=org, email="t@example.com", first_name="</title><script>x()</script>")
    html = browser.get(f"/leads/{lead.pk}/").content.decode()
    assert "</title><script>" not in html


# --- nurturing: sequence saves and the bounce/complaint webhook refuse what is not a JSON object ----------------


@pytest.mark.parametrize("body", [pytest.param(b, id=i) for i, b in RAW_BODIES])
@pytest.mark.parametrize("path", ["/api/v1/sequences/", "/api/v1/email-events/"])
def test_sequence_and_email_event_posts_refuse_unparseable_json(api, path, body):
    from nurturing.models import Sequence

    response = api.generic("POST", path, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "errors" in response.json() or "detail" in response.json()
    assert not Sequence.objects.exists()
    assert_nothing_written()
