"""Password reset: the emailed link points at SITE_URL whatever Host the request named, and requests are
throttled per address and per email without telling who has an account."""

import re

import pytest

pytestmark = pytest.mark.django_db

URL = "/accounts/password_reset/"


@pytest.fixture
def site(settings):
    settings.SITE_URL = "https://crm.example.com"
    settings.ALLOWED_HOSTS = ["*"]  # as behind a proxy that passes any Host through


def test_the_reset_link_is_on_the_site_url_whatever_host_the_request_names(client, org, site, smtp_server):
    response = client.post(URL, {"email": "OWNER@acme.test"}, HTTP_HOST="evil.example")
    assert response.status_code == 302 and response["Location"].endswith("/accounts/password_reset/done/")

    [message] = smtp_server.messages
    assert message["To"] == "owner@acme.test"
    body = message.get_content()
    assert "evil.example" not in body and "evil.example" not in message["Subject"]
    link = re.search(r"https?://\S+", body).group(0)
    assert re.fullmatch(r"https://crm\.example\.com/accounts/reset/[\w-]+/[\w-]+/", link), link
    # The link works: it leads to the form for a new password.
    page = client.get(link.removeprefix("https://crm.example.com"), follow=True)
    assert page.status_code == 200 and b"new_password1" in page.content


def _ask(client, email):
    return client.post(URL, {"email": email})


@pytest.mark.parametrize("email", ["owner@acme.test", "nobody@acme.test"])
def test_too_many_requests_for_one_email_are_refused_alike_whether_it_has_an_account(client, org, settings,
                                                                                     smtp_server, email):
    settings.PASSWORD_RESET_PER_ACCOUNT = "3/h"
    answers = [_ask(client, email) for _ in range(4)]

    assert [answer.status_code for answer in answers] == [302, 302, 302, 429]
    refused = answers[-1]
    assert int(refused["Retry-After"]) > 0
    assert "Too many password reset requests. Try again in" in refused.content.decode()
    assert len(smtp_server.messages) == (3 if email == "owner@acme.test" else 0)
    # Another email from the same place still gets through.
    assert _ask(client, "other@acme.test").status_code == 302


def test_one_address_asking_for_many_emails_is_refused(client, org, settings, smtp_server):
    settings.PASSWORD_RESET_PER_IP = "5/h"
    statuses = [_ask(client, f"person{n}@acme.test").status_code for n in range(6)]
    assert statuses == [302] * 5 + [429]
    # Even the owner of a real account waits, and no email goes out.
    assert _ask(client, "owner@acme.test").status_code == 429
    assert smtp_server.messages == []
