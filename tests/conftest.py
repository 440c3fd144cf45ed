import pytest
from rest_framework.test import APIClient

from leadcrm import services
from leadcrm.models import Role


@pytest.fixture
def org(db):
    return services.create_organization(slug="acme", name="Acme", owner_email="owner@acme.test",
                                        owner_password="pw-acme-123")


@pytest.fixture
def other_org(db):
    return services.create_organization(slug="rival", name="Rival", owner_email="owner@rival.test",
                                        owner_password="pw-rival-123")


@pytest.fixture
def api_key(org):
    _, plain = services.create_api_key(organization=org, name="test")
    return plain


@pytest.fixture
def api(api_key):
    """An API client authenticated with an API key of `org`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    return client


@pytest.fixture
def other_api(other_org):
    _, plain = services.create_api_key(organization=other_org, name="other")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    return client


@pytest.fixture
def member(org):
    """Make a user of `org` with a role: member("rep") -> user."""

    def make(role=Role.MARKETER, email=None):
        membership = services.add_member(organization=org, email=email or f"{role}@acme.test",
                                         password="pw-member-123", role=role)
        return membership.user

    return make


@pytest.fixture
def browser(client, member):
    """A Django test client signed in as a marketer of `org`."""
    client.force_login(member(Role.MARKETER))
    return client


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """Every org fixture hashes an owner password; a cheap hasher keeps the many small tests fast."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _isolated_cache(settings):
    """Each test gets its own cache namespace in the real Redis (rate limits, counters)."""
    import uuid

    settings.CACHES = {
        "default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"},
    }


@pytest.fixture
def smtp_server(settings, monkeypatch):
    """A real SMTP server on a free local port, for this process and for worker processes it starts;
    `smtp_server.messages` holds what it received (email.message.EmailMessage objects)."""
    import email
    import socket
    from email import policy

    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
            return "250 Message accepted"

    with socket.socket() as probe:  # a port nobody uses right now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    monkeypatch.setenv("EMAIL_HOST", "127.0.0.1")
    monkeypatch.setenv("EMAIL_PORT", str(port))
    try:
        yield inbox
    finally:
        controller.stop()
