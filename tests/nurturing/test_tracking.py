"""Tracking: the open pixel, the click redirect (no open redirect), unsubscribe (page and RFC 8058 one-click),
bounces and complaints; each lands on the timeline and moves the score; altered or forged tokens are 404s."""

import pytest
from rest_framework.test import APIClient

from leads.models import Activity, Lead
from nurturing import services
from nurturing.models import Enrollment, Message
from scoring import services as scoring
from tests.nurturing.test_sequences import make_lead, make_sequence, make_template, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(org, mailoutbox):
    """A message sent to a lead by a sequence that has more to send; (message, token)."""
    template = make_template(org)
    later = make_template(org, name="Later")
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}, {"type": "wait", "days": 3},
                                   {"type": "email", "template": str(later.pk)}])
    lead = make_lead(org)
    services.enroll(sequence=sequence, leads=[lead.pk])
    run()
    message = Message.objects.get(lead=lead)
    return message, services.make_token(message.pk)


def _altered(token: str) -> str:
    position = len(token) // 3
    return token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1:]


def test_the_open_pixel_records_the_first_open(client, sent):
    message, token = sent
    response = client.get(f"/t/o/{token}.gif")
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    client.get(f"/t/o/{token}.gif")
    message.refresh_from_db()
    assert message.opened_at is not None
    assert Activity.objects.filter(lead=message.lead, type="email_open").count() == 1


def test_a_click_redirects_to_the_recorded_url_and_scores(client, org, sent):
    message, token = sent
    lead = message.lead
    scoring.score_lead(organization_id=org.pk, lead_id=lead.pk)
    before = Lead.objects.get(pk=lead.pk).score
    response = client.get(f"/t/c/{token}/0/")
    assert response.status_code == 302 and response["Location"] == "https://example.com/pricing"
    message.refresh_from_db()
    assert message.clicked_at is not None and message.opened_at is not None  # a click implies an open
    click = Activity.objects.get(lead=lead, type="email_click")
    assert click.properties["url"] == "https://example.com/pricing"
    scoring.score_lead(organization_id=org.pk, lead_id=lead.pk)
    assert Lead.objects.get(pk=lead.pk).score == before + 5  # the default "Clicked an email" rule


def test_no_open_redirect(client, sent):
    message, token = sent
    assert client.get(f"/t/c/{token}/1/").status_code == 404  # the email has one tracked link
    assert client.get(f"/t/c/{token}/99/").status_code == 404
    assert client.get(f"/t/c/{token}/0/?next=https://evil.example/").headers["Location"] == (
        "https://example.com/pricing")
    assert client.get(f"/t/c/{token}/-1/").status_code == 404
    assert not Activity.objects.filter(type="email_click").exclude(
        properties__url="https://example.com/pricing").exists()


@pytest.mark.parametrize("path", ["/t/o/{token}.gif", "/t/c/{token}/0/", "/t/u/{token}/"])
def test_an_altered_token_is_a_404_and_records_nothing(client, sent, path):
    message, token = sent
    for bad in (_altered(token), token[:-1], token + "x", "x" * 40, f"{token.split('.')[0]}.forged"):
        assert client.get(path.format(token=bad)).status_code == 404
        assert client.post(path.format(token=bad), {"List-Unsubscribe": "One-Click"}).status_code in (404, 405)
    message.refresh_from_db()
    assert (message.opened_at, message.clicked_at, message.unsubscribed_at) == (None, None, None)
    assert not Lead.objects.get(pk=message.lead_id).unsubscribed


def test_a_token_for_another_message_id_cannot_be_made_without_the_key(client, sent):
    import base64
    import uuid

    from django.core import signing

    message, _ = sent
    raw = base64.urlsafe_b64encode(uuid.UUID(str(message.pk)).bytes).rstrip(b"=").decode()
    forged = signing.Signer(key="not-the-secret", salt="nurturing.tracking", sep=".").sign(raw)
    assert client.post(f"/t/u/{forged}/", {"List-Unsubscribe": "One-Click"}).status_code == 404
    assert not Lead.objects.get(pk=message.lead_id).unsubscribed


def test_unsubscribe_page_asks_first_and_its_button_unsubscribes(client, sent):
    message, token = sent
    page = client.get(f"/t/u/{token}/")
    assert page.status_code == 200 and b"Unsubscribe" in page.content
    assert not Lead.objects.get(pk=message.lead_id).unsubscribed  # a link scanner's GET changes nothing
    done = client.post(f"/t/u/{token}/", {"List-Unsubscribe": "One-Click", "confirm": "1"})
    assert done.status_code == 200 and b"You are unsubscribed" in done.content
    assert Lead.objects.get(pk=message.lead_id).unsubscribed


def test_one_click_unsubscribe_without_csrf_exits_and_stops_sending(org, sent, mailoutbox):
    from django.test import Client

    message, token = sent
    response = Client(enforce_csrf_checks=True).post(f"/t/u/{token}/", "List-Unsubscribe=One-Click",
                                                     content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    lead = Lead.objects.get(pk=message.lead_id)
    assert lead.unsubscribed
    message.refresh_from_db()
    assert message.unsubscribed_at is not None
    assert Activity.objects.filter(lead=lead, type="unsubscribe").count() == 1
    assert Enrollment.objects.get(lead=lead).exit_reason == "unsubscribed"
    Client().post(f"/t/u/{token}/", "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert Activity.objects.filter(lead=lead, type="unsubscribe").count() == 1  # once


def test_a_skipped_message_has_no_tracking(client, org):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}])
    lead = make_lead(org, consent_opt_in=False)
    services.enroll(sequence=sequence, leads=[lead.pk])
    run()
    message = Message.objects.get(lead=lead)
    assert message.status == "skipped"
    assert client.get(f"/t/o/{services.make_token(message.pk)}.gif").status_code == 404


# ----------------------------------------------------------------------------------------------- webhook


def test_bounce_webhook_by_message_id_marks_the_lead_and_exits(api, sent):
    message, _ = sent
    response = api.post("/api/v1/email-events/", {"message_id": f"<{message.pk}@leadcrm.local>",
                                                  "event": "bounce"}, format="json")
    assert response.status_code == 200, response.content
    lead = Lead.objects.get(pk=message.lead_id)
    assert lead.bounced
    message.refresh_from_db()
    assert message.bounced_at is not None
    assert Activity.objects.filter(lead=lead, type="email_bounce").exists()
    assert Enrollment.objects.get(lead=lead).exit_reason == "bounced"


def test_complaint_webhook_by_email_makes_the_lead_do_not_contact(api, sent):
    message, _ = sent
    response = api.post("/api/v1/email-events/", {"email": "ADA@example.com", "event": "complaint"}, format="json")
    assert response.status_code == 200
    lead = Lead.objects.get(pk=message.lead_id)
    assert lead.do_not_contact and lead.unsubscribed
    assert Activity.objects.filter(lead=lead, type="unsubscribe", properties__how="complaint").exists()


@pytest.mark.parametrize("body", [
    {"event": "bounce"},
    {"event": "explode", "email": "ada@example.com"},
    {"event": "bounce", "email": "ada@example.com", "message_id": "x"},
    {"event": "bounce", "email": "not an email"},
    {"event": "bounce", "email": "ada@example.com", "extra": 1},
])
def test_bad_webhook_bodies_are_400(api, sent, body):
    response = api.post("/api/v1/email-events/", body, format="json")
    assert response.status_code == 400 and "errors" in response.json()


def test_webhook_for_unknown_or_another_orgs_message_is_404(api, other_api, sent):
    message, _ = sent
    assert api.post("/api/v1/email-events/", {"message_id": "nonsense", "event": "bounce"},
                    format="json").status_code == 404
    assert api.post("/api/v1/email-events/", {"email": "nobody@example.com", "event": "bounce"},
                    format="json").status_code == 404
    assert other_api.post("/api/v1/email-events/", {"message_id": str(message.pk), "event": "bounce"},
                          format="json").status_code == 404
    assert not Lead.objects.get(pk=message.lead_id).bounced


def test_webhook_needs_an_api_key():
    assert APIClient().post("/api/v1/email-events/", {"email": "a@b.c", "event": "bounce"},
                            format="json").status_code in (401, 403)


def test_the_unsubscribe_page_and_its_confirmation_name_the_organization_escaped(client, org, sent):
    message, token = sent
    org.name = 'Acme <b>"Inc."</b> & Co'
    org.save()
    page = client.get(f"/t/u/{token}/").content.decode()
    named = "Acme &lt;b&gt;&quot;Inc.&quot;&lt;/b&gt; &amp; Co"
    assert f"Unsubscribe from {named}" in page and "<b>" not in page
    assert f"you will no longer receive emails from {named} at this address." in page
    done = client.post(f"/t/u/{token}/", {"confirm": "1"}).content.decode()
    assert f"You will no longer receive emails from {named} at this address." in done and "<b>" not in done
