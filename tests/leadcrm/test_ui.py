"""Browser: logging in and out, the org switcher, and the API keys page."""

import re

import pytest
from rest_framework.test import APIClient

from leadcrm import services as tenancy
from leadcrm.models import ApiKey, Role
from leads.models import Lead

pytestmark = pytest.mark.django_db


# --- login / logout ------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_login(client):
    for url in ("/", "/leads/", "/settings/api-keys/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


def test_login_page_and_wrong_password(client, org):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'name="username"' in page.content and b'name="password"' in page.content
    response = client.post("/accounts/login/", {"username": "owner@acme.test", "password": "wrong"})
    assert response.status_code == 200
    assert b"errorlist" in response.content
    assert "_auth_user_id" not in client.session


def test_login_lands_on_the_role_home_and_honours_next(client, org):
    response = client.post("/accounts/login/", {"username": "owner@acme.test", "password": "pw-acme-123"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/")["Location"] == "/reports/"  # an admin's home: the reports overview
    assert client.get("/reports/").status_code == 200
    client.logout()
    response = client.post("/accounts/login/", {"username": "owner@acme.test", "password": "pw-acme-123",
                                                "next": "/settings/api-keys/"})
    assert response["Location"] == "/settings/api-keys/"


def test_login_does_not_redirect_off_site(client, org):
    response = client.post("/accounts/login/", {"username": "owner@acme.test", "password": "pw-acme-123",
                                                "next": "https://evil.example/"})
    assert response.status_code == 302
    assert "evil.example" not in response["Location"]


def test_login_email_is_not_case_sensitive(client, org):
    response = client.post("/accounts/login/", {"username": "  Owner@ACME.test ", "password": "pw-acme-123"})
    assert response.status_code == 302
    assert "_auth_user_id" in client.session


def test_logout(client, org):
    client.post("/accounts/login/", {"username": "owner@acme.test", "password": "pw-acme-123"})
    page = client.get("/leads/").content.decode()
    assert 'action="/accounts/logout/"' in page
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert client.get("/leads/").status_code == 302


def test_a_user_without_an_organization_is_told_what_to_do(client):
    user = tenancy.get_or_create_user(email="loner@example.com", password="pw-loner-12")
    client.force_login(user)
    response = client.get("/leads/")
    assert response.status_code == 403
    assert b"not a member of any organization" in response.content


# --- org switcher --------------------------------------------------------------------------------


@pytest.fixture
def two_org_user(org, other_org):
    user = tenancy.add_member(organization=org, email="both@x.test", password="pw-both-123",
                              role=Role.MARKETER).user
    tenancy.add_member(organization=other_org, email="both@x.test", password=None, role=Role.MANAGER)
    Lead.objects.create(organization=org, email="in-acme@example.com")
    Lead.objects.create(organization=other_org, email="in-rival@example.com")
    return user


def test_org_switcher_changes_what_every_page_shows(client, org, other_org, two_org_user):
    client.force_login(two_org_user)
    page = client.get("/leads/").content.decode()
    switcher = re.search(r'<select id="org-switch".*?</select>', page, re.S).group(0)
    assert "Acme" in switcher and "Rival" in switcher
    assert "in-acme@example.com" in page and "in-rival@example.com" not in page

    response = client.post("/org/switch/", {"organization": str(other_org.pk), "next": "/leads/"})
    assert response.status_code == 302 and response["Location"] == "/leads/"
    page = client.get("/leads/").content.decode()
    assert "in-rival@example.com" in page and "in-acme@example.com" not in page
    assert re.search(rf'value="{other_org.pk}"\s+selected', page)
    # The API under the same session follows the switch too.
    api = client.get("/api/v1/leads/").json()
    assert [row["email"] for row in api["results"]] == ["in-rival@example.com"]

    client.post("/org/switch/", {"organization": str(org.pk)})
    assert "in-acme@example.com" in client.get("/leads/").content.decode()


def test_switching_to_an_org_you_are_not_in_is_404(client, org, other_org, member):
    client.force_login(member(Role.MARKETER))
    response = client.post("/org/switch/", {"organization": str(other_org.pk)})
    assert response.status_code == 404
    Lead.objects.create(organization=other_org, email="secret@rival.test")
    assert b"secret@rival.test" not in client.get("/leads/").content


@pytest.mark.parametrize("value", ["", "not-a-uuid", "00000000-0000-0000-0000-000000000000", "1"])
def test_switching_to_garbage_is_404_not_500(client, two_org_user, value):
    client.force_login(two_org_user)
    assert client.post("/org/switch/", {"organization": value}).status_code == 404


def test_switch_is_post_only(client, two_org_user, other_org):
    client.force_login(two_org_user)
    assert client.get(f"/org/switch/?organization={other_org.pk}").status_code == 405


def test_switch_never_redirects_off_site(client, two_org_user, other_org):
    client.force_login(two_org_user)
    for target in ("https://evil.example/", "//evil.example/x", "http:///evil.example"):
        response = client.post("/org/switch/", {"organization": str(other_org.pk), "next": target})
        assert response.status_code == 302
        assert "evil.example" not in response["Location"], target


def test_losing_the_active_membership_falls_back_to_another(client, org, other_org, two_org_user):
    client.force_login(two_org_user)
    client.post("/org/switch/", {"organization": str(other_org.pk)})
    two_org_user.memberships.filter(organization=other_org).delete()
    page = client.get("/leads/").content.decode()
    assert "in-acme@example.com" in page and "in-rival@example.com" not in page


def test_users_in_one_org_see_its_name_not_a_switcher(client, org, member):
    client.force_login(member(Role.MARKETER))
    page = client.get("/leads/").content.decode()
    assert 'id="org-switch"' not in page
    assert "Acme" in page


# --- API keys page -------------------------------------------------------------------------------


def test_creating_a_key_shows_it_once_and_it_works(browser, org):
    response = browser.post("/settings/api-keys/", {"name": "Website backend"})
    assert response.status_code == 200
    shown = re.search(r'id="new-key">([^<]+)<', response.content.decode()).group(1).strip()
    key = ApiKey.objects.get(organization=org, name="Website backend")
    assert shown.startswith(f"{key.prefix}.")
    assert shown not in key.hashed_key

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {shown}")
    assert client.get("/api/v1/ping/").json()["organization"] == org.slug

    again = browser.get("/settings/api-keys/").content.decode()
    assert shown not in again  # shown only once
    assert key.prefix in again and "Website backend" in again


@pytest.mark.parametrize("name", ["", "   ", "x" * 51])
def test_a_key_needs_a_sensible_name(browser, org, name):
    response = browser.post("/settings/api-keys/", {"name": name})
    assert response.status_code == 400
    assert b'id="new-key"' not in response.content
    assert b"at most 50 characters" in response.content
    assert ApiKey.objects.count() == 0


def test_revoking_a_key(client, org, member):
    marketer = member(Role.MARKETER)
    client.force_login(marketer)
    browser = client
    key, plain = tenancy.create_api_key(organization=org, name="old integration", role=Role.MARKETER,
                                        created_by=marketer)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    assert api.get("/api/v1/ping/").status_code == 200

    assert browser.get(f"/settings/api-keys/{key.prefix}/revoke/").status_code == 405
    response = browser.post(f"/settings/api-keys/{key.prefix}/revoke/")
    assert response.status_code == 302 and response["Location"] == "/settings/api-keys/"
    key.refresh_from_db()
    assert key.revoked
    assert api.get("/api/v1/ping/").status_code == 401
    page = browser.get("/settings/api-keys/").content.decode()
    row = re.search(r"<tr>\s*<td>old integration</td>.*?</tr>", page, re.S).group(0)
    assert "revoked" in row and "Revoke</button>" not in row
    # revoking twice is harmless
    assert browser.post(f"/settings/api-keys/{key.prefix}/revoke/").status_code == 302
    assert browser.post("/settings/api-keys/nosuchkey/revoke/").status_code == 404


def test_key_names_are_escaped(browser, org):
    browser.post("/settings/api-keys/", {"name": "<script>x()</script>"})
    page = browser.get("/settings/api-keys/").content.decode()
    assert "<script>x()</script>" not in page and "&lt;script&gt;" in page


def test_reps_have_no_api_keys_page(client, org, member):
    key, _ = tenancy.create_api_key(organization=org, name="k")
    client.force_login(member(Role.REP))
    assert client.get("/settings/api-keys/").status_code == 403
    assert client.post("/settings/api-keys/", {"name": "rep key"}).status_code == 403
    assert client.post(f"/settings/api-keys/{key.prefix}/revoke/").status_code == 403
    assert ApiKey.objects.filter(revoked=False).count() == 1
    assert b"API keys" not in client.get("/leads/").content


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MANAGER, Role.MARKETER])
def test_org_wide_roles_can_manage_keys(client, org, member, role):
    client.force_login(member(role))
    assert client.get("/settings/api-keys/").status_code == 200
