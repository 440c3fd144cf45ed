"""Security headers (CSP on every page, framing only for the public form), cookies, CSRF on everything but the
public capture and tracking endpoints, and `check --deploy` clean with the production settings."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from leadcrm.models import Role
from leads.models import Form

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def _policy(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.strip() for part in header.split(";") if part.strip()}


@pytest.fixture
def capture_form(org):
    return Form.objects.create(organization=org, name="Contact sales", slug="contact-sales", fields=["email"],
                               required_fields=["email"])


@pytest.mark.parametrize("path", ["/accounts/login/", "/leads/", "/forms/", "/reports/", "/api/docs/",
                                  "/emails/templates/", "/settings/api-keys/", "/admin/"])
def test_every_page_has_a_strict_script_policy_and_may_not_be_framed(client, member, path):
    user = member(Role.ADMIN)
    user.is_staff = True
    user.save()
    client.force_login(user)
    response = client.get(path, follow=True)
    assert response.status_code == 200
    policy = _policy(response)
    # Our own files, and inline scripts only with this response's nonce (present when the page has one).
    assert re.fullmatch(r"script-src 'self'( 'nonce-[\w+/=-]+')?", policy["script-src"]), policy["script-src"]
    assert policy["frame-ancestors"] == "frame-ancestors 'none'"
    assert policy["object-src"] == "object-src 'none'"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_inline_scripts_carry_the_nonce_of_their_response(browser, capture_form):
    response = browser.get(f"/forms/{capture_form.pk}/")
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    html = response.content.decode()
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
    assert inline, "the form page has inline scripts (copy buttons)"
    assert all(f'nonce="{nonce}"' in attributes for attributes in inline if "json" not in attributes)
    # No inline event handlers or javascript: URLs, which no nonce can allow.
    assert not re.search(r"\son[a-z]+=\"|javascript:|hx-on", html)


def test_the_public_form_may_be_framed_by_any_site_and_only_it(client, capture_form):
    response = client.get("/f/contact-sales/")
    assert response.status_code == 200
    policy = _policy(response)
    assert policy["frame-ancestors"] == "frame-ancestors *"
    assert "X-Frame-Options" not in response
    assert "form-action" not in policy  # a form may send the visitor on to the marketer's thank-you page
    assert re.search(r"'nonce-([^']+)'", policy["script-src"])
    # Posting it too (the answer shows in the same frame).
    posted = client.post("/f/contact-sales/", {"email": "framed@example.com"})
    assert _policy(posted)["frame-ancestors"] == "frame-ancestors *"


def test_swagger_ui_runs_from_a_script_file(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>\s*\S", html), "no inline script in the docs page"
    script = re.search(r'<script src="([^"]*\?script=[^"]*)"', html)
    assert script and client.get(script.group(1).replace("&amp;", "&")).status_code == 200


def test_session_cookie_is_http_only_and_csrf_cookie_readable_by_no_script(client, org):
    response = client.post("/accounts/login/", {"username": "owner@acme.test", "password": "pw-acme-123"})
    assert response.status_code == 302
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


def test_hsts_and_https_redirect_follow_the_settings(client, settings):
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client.get("/accounts/login/")["Location"] == "https://testserver/accounts/login/"
    secure = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert secure["Strict-Transport-Security"] == "max-age=3600"


# --------------------------------------------------------------------------------------------------- CSRF

# The only views that take a POST without a CSRF token: visitors' form submissions (from other sites) and the
# one-click unsubscribe of mail clients. DRF views are exempt from Django's middleware but enforce CSRF themselves
# for session users (tested below).
CSRF_EXEMPT_ALLOWED = {"leads.views.forms.public_form", "nurturing.tracking_views.unsubscribe"}


def _patterns(resolver, prefix=""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def test_no_view_is_csrf_exempt_unless_allowed():
    exempt, walked = [], 0
    for route, callback in _patterns(get_resolver()):
        walked += 1
        if not getattr(callback, "csrf_exempt", False):
            continue
        if getattr(callback, "cls", None) is not None:  # a DRF view: SessionAuthentication enforces CSRF
            from rest_framework.views import APIView

            assert issubclass(callback.cls, APIView)
            continue
        name = f"{callback.__module__}.{callback.__name__}"
        if name not in CSRF_EXEMPT_ALLOWED:
            exempt.append(f"{route} -> {name}")
    assert walked > 100
    assert exempt == []


def test_api_session_posts_without_the_csrf_token_are_refused(org, member):
    client = Client(enforce_csrf_checks=True)
    client.force_login(member(Role.MARKETER))
    refused = client.post("/api/v1/leads/", {"email": "csrf@example.com"}, content_type="application/json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    page = client.get("/leads/")
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else client.cookies["csrftoken"].value
    accepted = client.post("/api/v1/leads/", {"email": "csrf@example.com"}, content_type="application/json",
                           HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201


def test_browser_posts_without_the_csrf_token_are_refused(org, member):
    client = Client(enforce_csrf_checks=True)
    client.force_login(member(Role.MARKETER))
    assert client.post("/settings/api-keys/", {"name": "sneaky"}).status_code == 403


def test_api_key_posts_need_no_csrf_token(api_key):
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    assert client.post("/api/v1/leads/", {"email": "key@example.com"},
                       content_type="application/json").status_code == 201


def test_the_public_form_and_one_click_unsubscribe_take_posts_without_a_token(capture_form):
    client = Client(enforce_csrf_checks=True)
    assert client.post("/f/contact-sales/", {"email": "visitor@example.com"}).status_code == 200
    assert client.post("/t/u/not-a-token/", {"List-Unsubscribe": "One-Click"}).status_code == 404  # not 403


# ------------------------------------------------------------------------------------------ check --deploy

PRODUCTION = {
    "DEBUG": "0",
    "ALLOWED_HOSTS": "crm.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://crm.example.com",
    "SECURE_COOKIES": "1",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
}


def _check_deploy(extra: dict) -> subprocess.CompletedProcess:
    env = {key: value for key, value in {**os.environ, **extra}.items() if value is not None}
    for name in ("SECURE_COOKIES", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"):
        env.setdefault(name, "0")
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_the_production_settings():
    result = _check_deploy({**PRODUCTION, "SECRET_KEY": secrets.token_urlsafe(50)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_with_the_development_secret_key():
    result = _check_deploy({**PRODUCTION, "SECRET_KEY": None})
    assert result.returncode != 0
    assert "leadcrm.E001" in result.stderr


def test_check_deploy_fails_without_https_settings():
    result = _check_deploy({"SECRET_KEY": secrets.token_urlsafe(50), "DEBUG": "0", "SECURE_COOKIES": "0",
                            "SECURE_HSTS_SECONDS": "0", "SECURE_SSL_REDIRECT": "0"})
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stderr
