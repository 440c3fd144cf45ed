"""Limits a client notices: API rate limits per key, per session user and per address (429 + Retry-After), wrong
API keys, the tracking endpoints, login throttling on both login pages, body sizes (also chunked and multipart) and
page-size caps."""

import io
import json
import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from leadcrm import services
from leadcrm.models import Role
from leads.models import Form, Lead

pytestmark = pytest.mark.django_db


def _retry_after(response) -> int:
    assert response.status_code == 429, response.content[:300]
    wait = int(response["Retry-After"])
    assert 0 < wait <= 60
    return wait


# ------------------------------------------------------------------------------------------------ API rates


def test_each_api_key_has_its_own_rate(settings, api, other_api):
    settings.API_RATE_PER_KEY = "3/m"
    assert [api.get("/api/v1/ping/").status_code for _ in range(3)] == [200, 200, 200]
    refused = api.get("/api/v1/ping/")
    _retry_after(refused)
    assert "throttled" in refused.json()["detail"].lower()
    assert api.get("/api/v1/leads/").status_code == 429  # every endpoint counts against the key
    assert other_api.get("/api/v1/ping/").status_code == 200  # another key (and org) is not held up


def test_a_second_key_of_the_same_org_has_its_own_budget(settings, org, api):
    settings.API_RATE_PER_KEY = "2/m"
    _, second = services.create_api_key(organization=org, name="second")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {second}")
    api.get("/api/v1/ping/"), api.get("/api/v1/ping/")
    assert api.get("/api/v1/ping/").status_code == 429
    assert client.get("/api/v1/ping/").status_code == 200


def test_the_default_key_rate_covers_a_bulk_import_burst(api):
    # 1,000 leads in one request, then a burst of calls: nothing is refused at the defaults.
    response = api.post("/api/v1/leads/bulk/", {"leads": [{"email": f"l{i}@example.com"} for i in range(1000)]},
                        format="json")
    assert response.status_code == 200, response.content[:300]
    assert all(api.get("/api/v1/ping/").status_code == 200 for _ in range(200))


def test_a_signed_in_user_calling_the_api_has_a_rate(settings, browser):
    settings.API_RATE_PER_USER = "2/m"
    assert browser.get("/api/v1/leads/").status_code == 200
    assert browser.get("/api/v1/leads/").status_code == 200
    _retry_after(browser.get("/api/v1/leads/"))


def test_anonymous_calls_are_limited_per_address(settings):
    settings.API_RATE_ANONYMOUS = "2/m"
    here, there = APIClient(REMOTE_ADDR="203.0.113.5"), APIClient(REMOTE_ADDR="203.0.113.6")
    assert [here.get("/api/docs/").status_code for _ in range(2)] == [200, 200]
    _retry_after(here.get("/api/docs/"))
    assert there.get("/api/docs/").status_code == 200


def test_an_address_sending_wrong_keys_waits(settings, api_key):
    settings.API_RATE_AUTH_FAILURES = "3/m"
    guesser = APIClient(REMOTE_ADDR="198.51.100.7")
    guesser.credentials(HTTP_AUTHORIZATION="Api-Key abcdefgh.not-a-real-key")
    assert [guesser.get("/api/v1/ping/").status_code for _ in range(3)] == [401, 401, 401]
    _retry_after(guesser.get("/api/v1/ping/"))
    # A client elsewhere with a good key is not affected.
    good = APIClient(REMOTE_ADDR="198.51.100.8")
    good.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    assert good.get("/api/v1/ping/").status_code == 200


# -------------------------------------------------------------------------------------------- tracking


@pytest.mark.parametrize("path", ["/t/o/not-a-token.gif", "/t/c/not-a-token/0/", "/t/u/not-a-token/"])
def test_tracking_endpoints_answer_429_with_retry_after(settings, path):
    settings.TRACKING_RATE_LIMIT = "3/m"
    client = Client(REMOTE_ADDR="192.0.2.10")
    assert [client.get(path).status_code for _ in range(3)] == [404, 404, 404]
    _retry_after(client.get(path))
    assert Client(REMOTE_ADDR="192.0.2.11").get(path).status_code == 404


def test_one_click_unsubscribe_posts_are_limited_too(settings):
    settings.TRACKING_RATE_LIMIT = "1/m"
    client = Client(REMOTE_ADDR="192.0.2.12")
    assert client.post("/t/u/not-a-token/", {"List-Unsubscribe": "One-Click"}).status_code == 404
    _retry_after(client.post("/t/u/not-a-token/", {"List-Unsubscribe": "One-Click"}))


# ------------------------------------------------------------------------------------------- logins


def _login(client, path, username, password):
    return client.post(path, {"username": username, "password": password})


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_an_account_is_locked_after_failed_logins_whatever_the_address(settings, org, path):
    settings.LOGIN_FAILURES_PER_ACCOUNT = "3/15m"
    for n in range(3):
        response = _login(Client(REMOTE_ADDR=f"192.0.2.{n + 20}"), path, "owner@acme.test", "wrong")
        assert response.status_code == 200  # the form again, with "wrong password"
    client = Client(REMOTE_ADDR="192.0.2.30")
    refused = _login(client, path, "owner@acme.test", "pw-acme-123")  # even the right password waits
    assert refused.status_code == 429
    wait = int(refused["Retry-After"])
    assert 0 < wait <= 15 * 60
    assert b"Too many failed login attempts. Try again in" in refused.content
    assert "_auth_user_id" not in client.session
    # Another account from the same address is not affected.
    services.add_member(organization=org, email="other@acme.test", password="pw-other-123", role=Role.ADMIN)
    assert _login(client, "/accounts/login/", "other@acme.test", "pw-other-123").status_code == 302


def test_an_address_is_locked_after_failed_logins_on_any_accounts(settings, org):
    settings.LOGIN_FAILURES_PER_IP = "3/15m"
    client = Client(REMOTE_ADDR="192.0.2.40")
    for name in ("a", "b", "c"):
        assert _login(client, "/accounts/login/", f"{name}@acme.test", "wrong").status_code == 200
    refused = _login(client, "/accounts/login/", "owner@acme.test", "pw-acme-123")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert b"Try again in" in refused.content
    assert _login(Client(REMOTE_ADDR="192.0.2.41"), "/accounts/login/", "owner@acme.test",
                  "pw-acme-123").status_code == 302


def test_the_account_limit_counts_the_normalised_email(settings, org):
    settings.LOGIN_FAILURES_PER_ACCOUNT = "2/15m"
    _login(Client(REMOTE_ADDR="192.0.2.50"), "/accounts/login/", "Owner@ACME.test", "wrong")
    _login(Client(REMOTE_ADDR="192.0.2.51"), "/accounts/login/", " owner@acme.test ", "wrong")
    assert _login(Client(), "/accounts/login/", "owner@acme.test", "pw-acme-123").status_code == 429


def test_a_successful_login_is_not_slowed_and_clears_the_accounts_failures(settings, org):
    settings.LOGIN_FAILURES_PER_ACCOUNT = "3/15m"
    client = Client()
    _login(client, "/accounts/login/", "owner@acme.test", "wrong")
    _login(client, "/accounts/login/", "owner@acme.test", "wrong")
    assert _login(client, "/accounts/login/", "owner@acme.test", "pw-acme-123").status_code == 302
    client.logout()
    # The count started again: two more typos still leave the owner able to sign in.
    _login(client, "/accounts/login/", "owner@acme.test", "wrong")
    _login(client, "/accounts/login/", "owner@acme.test", "wrong")
    assert _login(client, "/accounts/login/", "owner@acme.test", "pw-acme-123").status_code == 302


# --------------------------------------------------------------------------------------------- bodies


def _wsgi_call(path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
    """Call the WSGI app as a server passing a chunked body would: wsgi.input holds the de-chunked bytes and
    there is no CONTENT_LENGTH."""
    from django.core.signals import request_finished, request_started
    from django.core.wsgi import get_wsgi_application  # not leadcrm.wsgi: that makes this a web process (leadcrm.rls)
    from django.db import close_old_connections

    application = get_wsgi_application()

    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "SERVER_NAME": "testserver", "SERVER_PORT": "80",
        "HTTP_HOST": "testserver", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0),
        "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "HTTP_TRANSFER_ENCODING": "chunked", **headers,
    }
    status = []
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        result = application(environ, lambda s, h, exc_info=None: status.append(s))
        content = b"".join(result)
        result.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return int(status[0].split()[0]), content


def test_a_chunked_body_over_the_limit_is_refused_with_413(settings, api_key):
    settings.MAX_BODY_BYTES = 1000
    body = json.dumps({"email": "big@example.com", "custom_fields": {"x": "y" * 5000}}).encode()
    status, content = _wsgi_call("/api/v1/leads/", body, {"CONTENT_TYPE": "application/json",
                                                          "HTTP_AUTHORIZATION": f"Api-Key {api_key}"})
    assert status == 413, content
    assert not Lead.objects.filter(email="big@example.com").exists()


def test_a_chunked_body_under_the_limit_is_read_whole(settings, api_key):
    body = json.dumps({"email": "chunked@example.com", "first_name": "Chunk"}).encode()
    status, content = _wsgi_call("/api/v1/leads/", body, {"CONTENT_TYPE": "application/json",
                                                          "HTTP_AUTHORIZATION": f"Api-Key {api_key}"})
    assert status == 201, content
    assert Lead.objects.get(email="chunked@example.com").first_name == "Chunk"


def test_a_chunked_public_form_post_over_the_limit_is_refused(settings, org):
    settings.MAX_BODY_BYTES = 1000
    status, _ = _wsgi_call("/f/anything/", b"email=a%40example.com&comment=" + b"x" * 5000,
                           {"CONTENT_TYPE": "application/x-www-form-urlencoded"})
    assert status == 413


def test_an_oversize_multipart_body_is_refused_with_413(settings, api):
    settings.MAX_BODY_BYTES = 2000
    upload = io.BytesIO(b"email\n" + b"a@example.com\n" * 500)
    upload.name = "leads.csv"
    response = api.post("/api/v1/leads/", {"file": upload, "email": "m@example.com"}, format="multipart")
    assert response.status_code == 413


def test_an_import_upload_over_its_own_limit_is_refused_with_413(settings, api):
    settings.MAX_IMPORT_BYTES = 2000
    upload = io.BytesIO(b"email\n" + b"a@example.com\n" * 500)
    upload.name = "leads.csv"
    assert api.post("/api/v1/imports/", {"file": upload}, format="multipart").status_code == 413


def test_form_data_over_the_memory_limit_is_a_413(settings, api, org):
    # Content-Length under the cap, but more form data than Django keeps in memory: multipart and url-encoded.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    upload = io.BytesIO(b"email\na@example.com\n")
    upload.name = "leads.csv"
    response = api.post("/api/v1/imports/", {"file": upload, "mapping": "x" * 5000}, format="multipart")
    assert response.status_code == 413
    Form.objects.create(organization=org, name="Contact", slug="contact", fields=["email"], required_fields=["email"])
    assert Client().post("/f/contact/", {"email": "a@example.com", "comment": "x" * 5000}).status_code == 413


# ------------------------------------------------------------------------------------------ page sizes


def _leads(org, count):
    Lead.objects.bulk_create([Lead(organization=org, email=f"p{i}@example.com") for i in range(count)])


def test_api_lists_cap_the_page_size_at_500(org, api):
    _leads(org, 501)
    body = api.get("/api/v1/leads/?page_size=100000").json()
    assert len(body["results"]) == 500 and body["next"]


def test_segment_lists_with_counts_cap_the_page_at_50(org, api):
    from leads.models import Segment

    Segment.objects.bulk_create([Segment(organization=org, name=f"S{i}", definition={"all": []})
                                 for i in range(51)])
    body = api.get("/api/v1/segments/?with_counts=1&page_size=500").json()
    assert len(body["results"]) <= 50


def test_browser_lists_cap_the_page_size_too(org, browser):
    _leads(org, 501)
    response = browser.get("/leads/?page_size=100000")
    assert response.status_code == 200
    html = response.content.decode()
    assert len(re.findall(r"<td>p\d+@example\.com</td>", html)) == 500  # one row per lead, 500 of the 501
    assert "cursor=" in html  # and a link to the next page


def test_every_paginated_api_view_caps_its_page_size():
    """Every list the router or a view paginates takes `page_size` up to a cap (leadcrm.pagination)."""
    from django.urls import get_resolver

    def walk(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from walk(pattern.url_patterns)
            else:
                yield pattern.callback

    checked = 0
    for callback in walk(get_resolver().url_patterns):
        view = getattr(callback, "cls", None)
        paginator = getattr(view, "pagination_class", None)
        if paginator is None:
            continue
        if getattr(paginator, "page_size_query_param", None):
            assert paginator.max_page_size and paginator.max_page_size <= 500, view
            checked += 1
    assert checked > 10
