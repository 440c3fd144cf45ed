""""Send me a test" from the template editor: the content as typed (unsaved), for the chosen or the sample lead,
reaches the signed-in member through the real mail server, marked [Test]; it is no message to a lead (no row, no
timeline, no numbers); each member has a rate of their own; content that cannot render and leads the member may
not see send nothing."""

import pytest

from leadcrm.models import Role
from leads import services as lead_services
from leads.models import Activity, Lead
from nurturing import selectors, services
from nurturing.models import Message, TemplateVersion

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
HTML = '<p>Hi {{ lead.first_name }} from {{ organization.name }}</p><a href="https://example.com/x">x</a>' \
       '<a href="{{ unsubscribe_url }}">Unsubscribe</a>'


@pytest.fixture
def mara(org, member, client):
    user = member(Role.MARKETER, "mara@acme.test")
    client.force_login(user)
    return user


@pytest.fixture
def template(org):
    return services.create_template(organization_id=org.pk, name="Welcome", subject="Saved subject", html=HTML,
                                    text="Hi {{ lead.first_name }}")


def _post(client, template, **data):
    body = {"name": "Welcome", "subject": "Unsaved for {{ lead.first_name }}", "html": HTML,
            "text": "Hi {{ lead.first_name }}", "lead": "", **data}
    return client.post(f"/emails/templates/{template.pk}/test/", body, **HTMX)


def test_a_test_of_unsaved_content_with_sample_data_arrives_and_is_recorded_nowhere(
        org, mara, client, template, smtp_server):
    response = _post(client, template)

    assert response.status_code == 200
    assert "Test sent to <strong>mara@acme.test</strong> with sample data." in response.content.decode()
    [received] = smtp_server.messages
    assert received["To"] == "mara@acme.test"
    assert received["Subject"] == "[Test] Unsaved for Ada"
    assert received["X-LeadCRM-Test"] == "yes" and received["List-Unsubscribe"] is None
    parts = {part.get_content_type(): part.get_content() for part in received.walk() if not part.is_multipart()}
    assert "Hi Ada from Acme" in parts["text/html"]
    assert "https://example.com/x" in parts["text/html"] and "/t/c/" not in parts["text/html"]  # not tracked
    assert "/t/o/" not in parts["text/html"]
    # not saved, not a message, not on any timeline, not in the numbers
    assert TemplateVersion.objects.get(template=template).subject == "Saved subject"
    assert not Message.objects.exists()
    assert not Activity.objects.filter(type="email_sent").exists()
    assert selectors.template_stats(template)[0]["sent"] == 0


def test_a_test_for_a_chosen_lead_uses_the_leads_data(org, mara, client, template, smtp_server):
    lead = lead_services.capture_lead(organization_id=org.pk, data={"email": "grace@navy.test",
                                                                    "first_name": "Grace"}).lead
    response = _post(client, template, lead="grace@navy.test")
    assert response.status_code == 200 and "for grace@navy.test" in response.content.decode()
    [received] = smtp_server.messages
    assert received["Subject"] == "[Test] Unsaved for Grace" and received["To"] == "mara@acme.test"
    assert not Message.objects.exists()
    assert not Activity.objects.filter(lead=lead, type="email_sent").exists()


def test_a_new_template_can_be_tested_before_it_is_saved(org, mara, client, smtp_server):
    response = client.post("/emails/templates/test/", {"subject": "Draft", "html": "<p>x</p>", "text": ""}, **HTMX)
    assert response.status_code == 200
    assert [message["Subject"] for message in smtp_server.messages] == ["[Test] Draft"]


def test_without_scripts_the_editor_comes_back_with_the_outcome(org, mara, client, template, smtp_server):
    response = client.post(f"/emails/templates/{template.pk}/test/", {
        "name": "Welcome", "subject": "Unsaved", "html": HTML, "text": ""})
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html
    assert "Test sent to <strong>mara@acme.test</strong>" in html and 'value="Unsaved"' in html
    assert len(smtp_server.messages) == 1


def test_content_that_cannot_render_sends_nothing_and_costs_no_test(org, mara, client, template, settings,
                                                                     mailoutbox):
    settings.NURTURE_TEST_EMAIL_RATE = "1/m"
    response = _post(client, template, subject="{{ lead.password }}")
    assert response.status_code == 400
    assert "Unknown merge field" in response.content.decode() and mailoutbox == []
    assert _post(client, template).status_code == 200 and len(mailoutbox) == 1


def test_a_lead_the_member_may_not_see_is_not_used(org, other_org, member, client, template, mailoutbox):
    lead_services.capture_lead(organization_id=other_org.pk, data={"email": "rival@rival.test"})
    client.force_login(member(Role.MARKETER, "mara@acme.test"))
    response = _post(client, template, lead="rival@rival.test")
    assert response.status_code == 400
    assert "No lead of this organization matches “rival@rival.test”" in response.content.decode()
    assert mailoutbox == []


def test_the_rate_is_per_member(org, member, client, template, settings, mailoutbox):
    settings.NURTURE_TEST_EMAIL_RATE = "2/h"
    client.force_login(member(Role.MARKETER, "mara@acme.test"))
    assert [_post(client, template).status_code for _ in range(3)] == [200, 200, 429]
    refused = _post(client, template)
    assert "Test not sent: You have sent several test emails just now; try again in" in refused.content.decode()
    assert len(mailoutbox) == 2
    client.force_login(member(Role.MANAGER, "manny@acme.test"))  # someone else still may
    assert _post(client, template).status_code == 200
    assert [message.to for message in mailoutbox] == [["mara@acme.test"]] * 2 + [["manny@acme.test"]]


def test_a_member_without_an_address_is_told(org, member, client, template, mailoutbox):
    user = member(Role.MARKETER, "noaddress@acme.test")
    user.email = ""
    user.save()
    client.force_login(user)
    response = _post(client, template)
    assert response.status_code == 400 and "Your account has no email address" in response.content.decode()
    assert mailoutbox == []


def test_a_mail_server_that_is_down_is_said_not_a_server_error(org, mara, client, template, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nobody listens
    response = _post(client, template)
    assert response.status_code == 409
    assert "The mail server did not take the test email" in response.content.decode()


def test_the_test_says_the_owners_from_when_the_org_sends_from_owners(org, mara, client, template, member,
                                                                     smtp_server):
    org.email_from_owner = True
    org.save()
    owner = member(Role.REP, "rita@acme.test")
    owner.first_name, owner.last_name = "Rita", "Rep"
    owner.save()
    lead = lead_services.capture_lead(organization_id=org.pk, data={"email": "grace@navy.test"}).lead
    Lead.objects.filter(pk=lead.pk).update(owner=owner)
    _post(client, template, lead="grace@navy.test")
    _post(client, template)  # the sample lead's made-up owner
    owned, sample = smtp_server.messages
    assert owned["From"].addresses[0].display_name == "Rita Rep" and owned["Reply-To"] == "rita@acme.test"
    assert sample["From"].addresses[0].display_name == "Sam Seller"


@pytest.mark.parametrize("role", [Role.REP])
def test_reps_may_not_send_tests(org, member, client, template, role, mailoutbox):
    client.force_login(member(role, "rep@acme.test"))
    assert _post(client, template).status_code == 403
    assert client.post("/emails/templates/test/", {"subject": "x", "html": "<p>x</p>"}).status_code == 403
    assert mailoutbox == []


def test_another_orgs_template_is_a_404(org, other_org, client, template, mailoutbox):
    from leadcrm.models import Membership

    client.force_login(Membership.objects.get(organization=other_org, role=Role.ADMIN).user)
    assert _post(client, template).status_code == 404
    assert mailoutbox == []
