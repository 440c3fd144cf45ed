"""Sending: at most once (overlapping ticks, a worker that died mid-send), never to the wrong people, real SMTP
delivery with the one-click unsubscribe headers, the per-org rate limit."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from leads.models import Activity
from nurturing import services
from nurturing.models import Enrollment, Message, MessageStatus
from tests.nurturing.test_sequences import enrollment_of, make_lead, make_sequence, make_template, run

pytestmark = pytest.mark.django_db


def _one_email(org, **data):
    template = make_template(org)
    return make_sequence(org, [{"type": "email", "template": str(template.pk)}], **data)


def test_an_email_step_sends_once_and_records_it(org, mailoutbox):
    sequence = _one_email(org)
    lead = make_lead(org)
    services.enroll(sequence=sequence, leads=[lead.pk])
    result = run()
    assert result["sent"] == 1
    message = Message.objects.get(lead=lead)
    assert (message.status, message.subject, message.to_email) == ("sent", "Hello Ada", "ada@example.com")
    assert message.template_version.number == 1 and message.sent_at is not None
    assert Activity.objects.filter(lead=lead, type="email_sent", properties__message=str(message.pk)).exists()
    assert enrollment_of(sequence, lead).status == "completed"
    run(now=timezone.now() + timedelta(days=1))
    assert len(mailoutbox) == 1


def test_the_html_links_are_tracked_and_the_text_part_is_kept(org, mailoutbox):
    sequence = _one_email(org)
    lead = make_lead(org)
    services.enroll(sequence=sequence, leads=[lead.pk])
    run()
    message = Message.objects.get(lead=lead)
    email = mailoutbox[0]
    html = email.alternatives[0][0]
    token = services.make_token(message.pk)
    assert message.links == ["https://example.com/pricing"]
    assert f"/t/c/{token}/0/" in html and "https://example.com/pricing" not in html
    assert f"/t/o/{token}.gif" in html
    assert f"/t/u/{token}/" in html  # the unsubscribe link stays a plain link
    assert email.body == "Hi there"


@pytest.mark.parametrize(("flags", "reason", "exits"), [
    ({"unsubscribed": True}, "unsubscribed", True),
    ({"bounced": True}, "bounced", True),
    ({"do_not_contact": True}, "do_not_contact", True),
    ({"consent_opt_in": False}, "no_consent", False),
])
def test_leads_that_must_not_get_email_are_skipped_with_the_reason(org, mailoutbox, flags, reason, exits):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)},
                                   {"type": "update", "field": "temperature", "value": "warm"}])
    lead = make_lead(org, **flags)
    services.enroll(sequence=sequence, leads=[lead.pk])
    run()
    assert mailoutbox == []
    message = Message.objects.get(lead=lead)
    assert (message.status, message.skip_reason) == ("skipped", reason)
    enrollment = enrollment_of(sequence, lead)
    lead.refresh_from_db()
    if exits:
        assert (enrollment.status, enrollment.exit_reason) == ("exited", reason)
        assert lead.temperature == ""
    else:  # not this email, but the rest of the sequence runs
        assert enrollment.status == "completed" and lead.temperature == "warm"


def test_a_worker_that_died_after_sending_never_sends_again(org, mailoutbox):
    sequence = _one_email(org)
    lead = make_lead(org)
    services.enroll(sequence=sequence, leads=[lead.pk])
    enrollment = enrollment_of(sequence, lead)
    step = sequence.steps.get(position=0)
    # What a worker killed between handing the email over and marking it leaves: the claimed row, `sending`.
    stale = Message.objects.create(organization=org, lead=lead, enrollment=enrollment, step=step,
                                   to_email=lead.email, status=MessageStatus.SENDING)
    Message.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(hours=1))
    result = run()
    assert mailoutbox == []
    stale.refresh_from_db()
    assert stale.status == "unknown" and result["unknown"] == 1
    assert Message.objects.filter(lead=lead).count() == 1
    assert enrollment_of(sequence, lead).status == "completed"
    run(now=timezone.now() + timedelta(days=1))
    assert mailoutbox == []


def test_a_claim_whose_send_never_began_is_sent_once_by_a_later_tick(org, mailoutbox):
    """The claim committed, the process died before handing the email over: the enrolment has moved on, and the
    email, `queued`, is sent by a later tick once the claim is stale — once."""
    sequence = _one_email(org)
    lead = make_lead(org)
    services.enroll(sequence=sequence, leads=[lead.pk])
    claimed, batch = services.claim_and_run()
    assert claimed == 1 and len(batch.outgoing) == 1  # ... and the worker dies here
    message = Message.objects.get(lead=lead)
    assert message.status == "queued"
    run(now=timezone.now() + timedelta(seconds=5))  # a live worker may still be sending it
    assert mailoutbox == []
    result = run(now=timezone.now() + timedelta(hours=2))
    assert result["abandoned_sent"] == 1
    assert len(mailoutbox) == 1 and mailoutbox[0].to == [lead.email]
    assert mailoutbox[0].extra_headers["Message-ID"].startswith(f"<{message.pk}@")
    message.refresh_from_db()
    assert message.status == "sent"
    run(now=timezone.now() + timedelta(days=1))
    assert len(mailoutbox) == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_on_the_same_due_step_send_once(org, smtp_server):
    sequence = _one_email(org)
    leads = [make_lead(org, f"lead{i}@example.com") for i in range(20)]
    services.enroll(sequence=sequence, leads=[lead.pk for lead in leads])
    barrier = threading.Barrier(2)
    errors = []

    def worker():
        try:
            barrier.wait()
            services.tick(batch_size=5)
        except Exception as exc:  # noqa: BLE001 — reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    recipients = sorted(str(message["To"]) for message in smtp_server.messages)
    assert recipients == sorted(lead.email for lead in leads)
    assert Message.objects.filter(status="sent").count() == 20
    assert not Enrollment.objects.filter(status="active").exists()


def test_real_smtp_delivery_with_one_click_unsubscribe_headers(org, smtp_server, settings):
    settings.SITE_URL = "https://crm.example.com"
    sequence = _one_email(org)
    lead = make_lead(org)
    services.enroll(sequence=sequence, leads=[lead.pk])
    run()
    [received] = smtp_server.messages
    message = Message.objects.get(lead=lead)
    token = services.make_token(message.pk)
    assert received["To"] == "ada@example.com" and received["Subject"] == "Hello Ada"
    assert received["List-Unsubscribe"].strip() == (f"<https://crm.example.com/t/u/{token}/>, "
                                            "<mailto:unsubscribe@leadcrm.local?subject=unsubscribe>")
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert str(message.pk) in received["Message-ID"]
    parts = {part.get_content_type(): part.get_content() for part in received.walk() if not part.is_multipart()}
    assert parts["text/plain"].strip() == "Hi there"
    assert f"https://crm.example.com/t/c/{token}/0/" in parts["text/html"]
    assert message.status == "sent"


def test_a_mail_server_that_is_down_sends_nothing_and_the_step_is_retried(org, settings, smtp_server):
    sequence = _one_email(org)
    lead = make_lead(org)
    services.enroll(sequence=sequence, leads=[lead.pk])
    port = settings.EMAIL_PORT
    settings.EMAIL_PORT = 1  # nothing listens there
    result = run()
    assert result["deferred"] == 1
    assert not Message.objects.exists()
    enrollment = enrollment_of(sequence, lead)
    assert (enrollment.status, enrollment.position) == ("active", 0)
    settings.EMAIL_PORT = port
    run(now=timezone.now() + timedelta(minutes=10))
    assert len(smtp_server.messages) == 1
    assert Message.objects.get(lead=lead).status == "sent"


def test_the_per_org_rate_limit_holds_the_rest_for_the_next_tick(org, other_org, settings, mailoutbox):
    settings.NURTURE_RATE_PER_MINUTE = 3
    sequence = _one_email(org)
    theirs = _one_email(other_org)
    services.enroll(sequence=sequence, leads=[make_lead(org, f"l{i}@example.com").pk for i in range(5)])
    services.enroll(sequence=theirs, leads=[make_lead(other_org, "t@example.com").pk])
    run()
    assert Message.objects.filter(organization=org, status="sent").count() == 3
    assert Message.objects.filter(organization=other_org, status="sent").count() == 1  # not held up by org
    assert Enrollment.objects.filter(sequence=sequence, status="active", position=0).count() == 2
    run()  # the same minute: still over the limit
    assert Message.objects.filter(organization=org).count() == 3
    Message.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    run()
    assert Message.objects.filter(organization=org, status="sent").count() == 5
    assert len(mailoutbox) == 6


def test_a_template_that_fails_to_render_is_recorded_not_sent(org, mailoutbox):
    sequence = _one_email(org)
    lead = make_lead(org)
    services.enroll(sequence=sequence, leads=[lead.pk])
    from nurturing.models import TemplateVersion

    TemplateVersion.objects.update(html="{% if %}broken")  # stored content the sandbox no longer accepts
    run()
    message = Message.objects.get(lead=lead)
    assert message.status == "failed" and message.error
    assert mailoutbox == []


def test_notify_owner_step_queues_an_email_to_the_owner(org, member, django_capture_on_commit_callbacks,
                                                         monkeypatch, mailoutbox):
    from nurturing import tasks

    owner = member("rep", email="rep@acme.test")
    sequence = make_sequence(org, [{"type": "notify_owner"}])
    lead = make_lead(org, owner=owner)
    services.enroll(sequence=sequence, leads=[lead.pk])
    queued = []
    monkeypatch.setattr(tasks.notify_owner, "delay", lambda *args: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        run()
    assert len(queued) == 1
    assert tasks.notify_owner(*queued[0]) is True
    assert mailoutbox[0].to == ["rep@acme.test"] and "Drip" in mailoutbox[0].body


def test_control_characters_in_a_leads_name_never_stop_an_email_or_its_owner_notice(
        org, member, smtp_server, monkeypatch, django_capture_on_commit_callbacks):
    from nurturing import tasks

    owner = member("rep", email="rep@acme.test")
    template = make_template(org)  # subject "Hello {{ lead.first_name }}"
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}, {"type": "notify_owner"}])
    lead = make_lead(org, owner=owner, first_name="Ada\x07\u2028Bcc: eve@evil.test\nX")
    services.enroll(sequence=sequence, leads=[lead.pk])
    queued = []
    monkeypatch.setattr(tasks.notify_owner, "delay", lambda *args: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        run()
    assert tasks.notify_owner(*queued[0]) is True

    received = {str(message["To"]): message for message in smtp_server.messages}
    assert received["ada@example.com"]["Subject"] == "Hello Ada Bcc: eve@evil.test X"
    assert received["rep@acme.test"]["Subject"].startswith("Follow up: Ada Bcc: eve@evil.test X")
    assert all(message["Bcc"] is None for message in smtp_server.messages)
