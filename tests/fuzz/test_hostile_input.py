"""The public form, the tracking endpoints and POST /api/v1/email-events/ fed random and hostile input (huge
strings, control characters, NUL bytes, invalid UTF-8, wrong content types, SQL and HTML injection, deep JSON):
never a 500, nothing stored with characters PostgreSQL or a page cannot take, nothing shown unescaped."""

import json
from urllib.parse import quote, quote_from_bytes

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from leadcrm.models import Role
from leads.models import Form, FormSubmission, Lead
from nurturing import services as nurturing
from nurturing.models import Message
from tests.nurturing.test_sequences import make_lead, make_sequence, make_template, run

pytestmark = pytest.mark.django_db

FUZZ = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

MARKER = "<script>alert('x')</script>"
HOSTILE = [
    MARKER, "\"><img src=x onerror=alert(1)>", "'; DROP TABLE leads_lead; --", "' OR '1'='1", "1; SELECT pg_sleep(5)",
    "{{ 7*7 }}", "{% debug %}", "${7*7}", "\x00", "a\x00b", "\u202eevil", "\ud800", "\r\nSet-Cookie: x=1",
    "../../etc/passwd", "%00", "%s%s%s", "😀" * 50, "x" * 70_000, "@" * 300 + ".com", "javascript:alert(1)",
]
text = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=300),
                 st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=50))
raw_bytes = st.one_of(st.binary(max_size=400), st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x00"]))
CONTENT_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "application/json",
                 "text/plain", "application/xml", "", "application/x-www-form-urlencoded; charset=latin-1",
                 "multipart/form-data", "application/json; charset=utf-16"]


def _no_unstorable(value: str) -> bool:
    return "\x00" not in value and not any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)


@pytest.fixture
def capture_form(org, settings):
    settings.FORM_RATE_LIMIT = "100000/m"  # the fuzzer is one address
    return Form.objects.create(organization=org, name="Contact", slug="contact",
                               fields=["email", "first_name", "last_name", "company", "phone", "country"],
                               required_fields=["email"], hidden_values={"source": "website"})


def _urlencoded(fields: dict) -> bytes:
    parts = []
    for key, value in fields.items():
        raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
        parts.append(f"{quote(key)}={quote_from_bytes(raw)}")
    return "&".join(parts).encode()


form_fields = st.fixed_dictionaries({}, optional={
    name: st.one_of(text, raw_bytes) for name in
    ("email", "first_name", "last_name", "company", "phone", "country", "utm_source", "referrer", "website_url",
     "unknown_field")
})


@FUZZ
@given(fields=form_fields, content_type=st.sampled_from(CONTENT_TYPES), email=st.emails())
def test_the_public_form_never_fails_on_hostile_input(capture_form, fields, content_type, email):
    client = Client()
    if "email" not in fields:
        fields = {**fields, "email": email}
    body = _urlencoded(fields)
    response = client.generic("POST", "/f/contact/", body, content_type=content_type)
    assert response.status_code in (200, 303, 400, 413, 415), (response.status_code, response.content[:300])
    for lead in Lead.objects.filter(organization=capture_form.organization):
        for value in (lead.email, lead.first_name, lead.last_name, lead.company, lead.phone):
            assert _no_unstorable(value)
    if response.status_code in (200, 400):
        assert MARKER.encode() not in response.content  # echoed values are escaped


@FUZZ
@given(body=st.one_of(st.binary(max_size=2000), st.text(max_size=2000).map(lambda s: s.encode("utf-8", "replace"))),
       content_type=st.sampled_from(CONTENT_TYPES))
def test_the_public_form_never_fails_on_random_bodies(capture_form, body, content_type):
    response = Client().generic("POST", "/f/contact/", body, content_type=content_type)
    assert response.status_code in (200, 303, 400, 413, 415), (response.status_code, response.content[:300])


def test_hostile_values_submitted_through_the_form_are_escaped_where_marketers_read_them(capture_form, member):
    client = Client()
    response = client.post("/f/contact/", {"email": "x@example.com", "first_name": MARKER, "company": MARKER,
                                           "utm_source": MARKER, "referrer": f"https://example.com/?q={MARKER}"})
    assert response.status_code == 200, response.content[:500]
    lead = Lead.objects.get(email="x@example.com")
    marketer = Client()
    marketer.force_login(member(Role.MARKETER))
    pages = ["/leads/", f"/leads/{lead.pk}/", f"/forms/{capture_form.pk}/",
             f"/forms/{capture_form.pk}/submissions/"]
    for path in pages:
        page = marketer.get(path)
        if page.status_code == 404:
            continue
        assert page.status_code == 200, path
        assert MARKER.encode() not in page.content, path
    assert FormSubmission.objects.filter(form=capture_form).count() == 1


# ----------------------------------------------------------------------------------------------- tracking


@pytest.fixture
def sent(org, mailoutbox, settings):
    settings.TRACKING_RATE_LIMIT = "100000/m"
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}])
    lead = make_lead(org)
    nurturing.enroll(sequence=sequence, leads=[lead.pk])
    run()
    message = Message.objects.get(lead=lead)
    return message, nurturing.make_token(message.pk)


token_text = st.one_of(st.text(max_size=200), st.sampled_from(HOSTILE), st.binary(max_size=100))


def _path_part(value) -> str:
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return quote_from_bytes(raw, safe="") or "x"


@FUZZ
@given(token=token_text, suffix=token_text, index=st.integers(min_value=0, max_value=10**30),
       body=st.binary(max_size=500), content_type=st.sampled_from(CONTENT_TYPES))
def test_tracking_endpoints_never_fail_on_hostile_tokens(sent, token, suffix, index, body, content_type):
    message, real = sent
    client = Client()
    for candidate in (_path_part(token), real + _path_part(suffix)):
        assert client.get(f"/t/o/{candidate}.gif").status_code in (200, 404)
        assert client.get(f"/t/c/{candidate}/{index}/").status_code in (302, 404)
        assert client.get(f"/t/u/{candidate}/").status_code in (200, 404)
        posted = client.generic("POST", f"/t/u/{candidate}/", body, content_type=content_type)
        assert posted.status_code in (200, 400, 404, 413), posted.status_code
    message.lead.refresh_from_db()


def test_the_unsubscribe_page_escapes_what_it_shows(sent):
    _, token = sent
    page = Client().get(f"/t/u/{token}/?next={quote(MARKER)}")
    assert page.status_code == 200
    assert MARKER.encode() not in page.content


# ------------------------------------------------------------------------------------------- email events

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)
event_bodies = st.one_of(
    st.fixed_dictionaries({"event": st.one_of(st.sampled_from(["bounce", "complaint"]), text)},
                          optional={"message_id": json_values, "email": json_values, "extra": json_values}),
    json_values,
)


@FUZZ
@given(body=event_bodies, content_type=st.sampled_from(["application/json", "application/json; charset=utf-8",
                                                         "text/plain", "application/x-www-form-urlencoded"]))
def test_email_events_never_fail_on_hostile_json(api, sent, body, content_type):
    raw = json.dumps(body).encode()
    response = api.generic("POST", "/api/v1/email-events/", raw, content_type=content_type)
    assert response.status_code in (200, 400, 404, 415), (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")


@FUZZ
@given(raw=st.one_of(st.binary(max_size=1000), st.sampled_from([
    b"\xff\xfe{}", b'{"event": "bounce", "email": "\xc3\x28"}', b'{"event": "bounce", "email": "a\\u0000@x.com"}',
    b'{"event": "bounce", "email": "\\ud800@x.com"}'])))
def test_email_events_never_fail_on_broken_bodies(api, raw):
    response = api.generic("POST", "/api/v1/email-events/", raw, content_type="application/json")
    assert response.status_code in (400, 404, 415), (response.status_code, response.content[:300])


def test_deeply_nested_json_is_a_400(api):
    deep = "[" * 100_000 + "]" * 100_000
    response = api.generic("POST", "/api/v1/email-events/", deep, content_type="application/json")
    assert response.status_code in (400, 413)


def test_email_events_without_a_key_are_refused():
    assert APIClient().post("/api/v1/email-events/", {"event": "bounce", "email": "a@b.c"},
                            format="json").status_code in (401, 403)
