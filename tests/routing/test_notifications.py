"""Notification emails go to a real SMTP server, once each."""

import pytest

from routing import tasks
from routing.models import Notification
from tests.routing import make_lead, make_rep, make_rule, route

pytestmark = pytest.mark.django_db


def test_the_rep_gets_one_email_per_assignment(org, smtp_server):
    rep = make_rep(org, name="dana")
    make_rule(org, strategy="rep", rep=rep)
    lead = make_lead(org, first_name="<b>Kim</b>", last_name="Lee")
    route(lead)
    notification = Notification.objects.get(user=rep.user)

    assert tasks.email_notification(notification.pk) is True
    assert tasks.email_notification(notification.pk) is False  # a repeated task sends nothing

    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]
    assert message["To"] == "dana@acme.test"
    assert message["Subject"] == "New lead for you: <b>Kim</b> Lee"  # plain text: nothing to escape
    assert f"/leads/{lead.pk}/" in message.get_content()
    notification.refresh_from_db()
    assert notification.emailed_at is not None


def test_an_unreachable_mail_server_leaves_the_email_to_retry(org, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens
    rep = make_rep(org)
    make_rule(org, strategy="rep", rep=rep)
    route(make_lead(org))
    notification = Notification.objects.get(user=rep.user)

    with pytest.raises(OSError):
        tasks.email_notification.run(notification.pk)

    notification.refresh_from_db()
    assert notification.emailed_at is None


def test_a_line_break_in_the_leads_name_still_emails_the_rep_with_a_one_line_subject(org, smtp_server):
    rep = make_rep(org, name="dana")
    make_rule(org, strategy="rep", rep=rep)
    lead = make_lead(org, first_name="Kim\r\nBcc: eve@evil.test", last_name="Lee\u2028\x85\x07Jr")
    route(lead)
    notification = Notification.objects.get(user=rep.user)

    assert tasks.email_notification(notification.pk) is True

    [message] = smtp_server.messages
    assert message["Subject"] == "New lead for you: Kim Bcc: eve@evil.test Lee Jr"
    assert message["Bcc"] is None and message["To"] == "dana@acme.test"
    assert f"/leads/{lead.pk}/" in message.get_content()


def test_a_failed_message_leaves_its_own_and_later_ones_to_retry_and_the_sent_ones_sent(org, smtp_server, monkeypatch):
    lead = make_lead(org)
    notifications = [Notification.objects.create(organization=org, user=make_rep(org, name=name).user, lead=lead,
                                                 kind="assigned", message=f"New lead for {name}")
                     for name in ("ann", "bob", "cat")]
    sent_to = []

    def send_mail(*, recipient_list, **kwargs):
        if recipient_list == ["bob@acme.test"]:
            raise OSError("mail server went away")
        sent_to.extend(recipient_list)

    monkeypatch.setattr(tasks, "send_mail", send_mail)
    with pytest.raises(OSError):
        tasks.email_notifications.run([n.pk for n in notifications], str(org.pk))

    emailed = {n.user.email: n.emailed_at is not None
               for n in Notification.objects.filter(pk__in=[n.pk for n in notifications]).select_related("user")}
    assert sent_to == ["ann@acme.test"]
    assert emailed == {"ann@acme.test": True, "bob@acme.test": False, "cat@acme.test": False}

    monkeypatch.undo()
    assert tasks.email_notifications.run([n.pk for n in notifications], str(org.pk)) == 2  # the retry: bob and cat
    assert sorted(message["To"] for message in smtp_server.messages) == ["bob@acme.test", "cat@acme.test"]
