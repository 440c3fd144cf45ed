"""Who sequence email comes from: always the sending address; in the organization's name (or its sender name), or —
when the organization sends from owners — in the lead owner's name with replies to the owner, falling back to the
organization for a lead without one. Names people typed never add a header line."""

from types import SimpleNamespace

import pytest

from leadcrm.mailheaders import sender
from leadcrm.models import Role
from nurturing import services
from tests.nurturing.test_sequences import make_lead, make_sequence, make_template, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(member):
    user = member(Role.REP, "olga@acme.test")
    user.first_name, user.last_name = "Olga", "Owner"
    user.save()
    return user


def _send(org, smtp_server, **lead_fields):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}])
    lead = make_lead(org, **lead_fields)
    services.enroll(sequence=sequence, leads=[lead.pk])
    run()
    [received] = smtp_server.messages
    return received


def _from(received):
    [address] = received["From"].addresses
    return address.display_name, address.addr_spec


def test_from_the_owner_with_replies_to_them(org, owner, smtp_server, settings):
    settings.DEFAULT_FROM_EMAIL = "LeadCRM <mail@send.example.com>"
    org.email_from_owner = True
    org.save()
    received = _send(org, smtp_server, owner=owner)
    assert _from(received) == ("Olga Owner", "mail@send.example.com")
    assert received["Reply-To"] == "olga@acme.test"


def test_a_lead_without_an_owner_gets_the_organizations_sender(org, smtp_server, settings):
    settings.DEFAULT_FROM_EMAIL = "LeadCRM <mail@send.example.com>"
    org.email_from_owner = True
    org.save()
    received = _send(org, smtp_server)
    assert _from(received) == ("Acme", "mail@send.example.com")
    assert received["Reply-To"] is None


def test_without_the_setting_the_owner_is_not_named(org, owner, smtp_server):
    org.email_sender_name = "Acme Marketing"
    org.save()
    received = _send(org, smtp_server, owner=owner)
    assert _from(received) == ("Acme Marketing", "no-reply@leadcrm.local")
    assert received["Reply-To"] is None


def test_a_name_with_line_breaks_adds_no_header(org, owner, smtp_server):
    owner.first_name = "Olga\r\nBcc: eve@evil.test\r\nX-Evil:"
    owner.last_name = "\u2028Owner, \"The\" Boss"
    owner.save()
    org.email_from_owner = True
    org.save()
    received = _send(org, smtp_server, owner=owner)
    display, address = _from(received)
    assert address == "no-reply@leadcrm.local"
    assert "\n" not in display and "\r" not in display and display.startswith("Olga Bcc: eve@evil.test X-Evil:")
    assert received["Bcc"] is None and received["X-Evil"] is None
    assert received["Reply-To"] == "olga@acme.test"
    assert [str(to) for to in received.get_all("To")] == ["ada@example.com"]


def test_an_owner_without_a_name_or_usable_address():
    organization = SimpleNamespace(name="Acme", email_sender_name="", email_from_owner=True)
    nameless = SimpleNamespace(get_full_name=lambda: "  ", email="olga@acme.test")
    assert sender(organization, nameless) == ("Acme <no-reply@leadcrm.local>", ["olga@acme.test"])
    broken = SimpleNamespace(get_full_name=lambda: "Olga", email="olga@acme.test\r\nBcc: eve@evil.test")
    assert sender(organization, broken) == ("Olga <no-reply@leadcrm.local>", [])
