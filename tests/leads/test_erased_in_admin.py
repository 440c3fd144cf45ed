"""An erased lead in Django admin: viewable, never changeable, and its admin history no longer names it."""

import json

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType

from leadcrm.models import Membership, Role
from leads import services
from leads.models import Lead

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, org):
    client.force_login(Membership.objects.get(organization=org, role=Role.ADMIN).user)
    return client


def _lead(org, email="ada@example.com", first_name="Ada"):
    return services.capture_lead(organization_id=org.pk, data={
        "email": email, "first_name": first_name, "last_name": "Lovelace", "company": "Analytical"}).lead


def _change_form(lead, **changes):
    return {"email": lead.email, "first_name": lead.first_name, "last_name": lead.last_name, "company": "Analytical",
            "lifecycle_stage": lead.lifecycle_stage, "source_type": lead.source_type, "custom_fields": "{}",
            "first_touch": "{}", "last_touch": "{}", "stage_entered_at": "{}", "tags": "", **changes}


def test_an_erased_lead_opens_read_only_and_a_change_is_refused(admin_client, org, api):
    erased, kept = _lead(org), _lead(org, email="grace@example.com", first_name="Grace")
    assert api.post(f"/api/v1/leads/{erased.pk}/erase/").status_code == 200

    page = admin_client.get(f"/admin/leads/lead/{erased.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert b'name="_save"' in admin_client.get(f"/admin/leads/lead/{kept.pk}/change/").content

    response = admin_client.post(f"/admin/leads/lead/{erased.pk}/change/", _change_form(
        erased, email="back@example.com", first_name="Ada"))
    assert response.status_code == 403
    erased.refresh_from_db()
    assert (erased.email, erased.first_name) == ("", "")


def test_erasing_rewrites_the_leads_admin_history(admin_client, org, api):
    lead = _lead(org)
    user = Membership.objects.get(organization=org, role=Role.ADMIN).user
    content_type = ContentType.objects.get_for_model(Lead)
    for message in ([{"changed": {"fields": ["First name", "Email"]}},
                     {"added": {"name": "note", "object": "Call Ada Lovelace back"}}],
                    "Renamed to Ada Lovelace <ada@example.com>"):
        LogEntry.objects.create(user=user, content_type=content_type, object_id=str(lead.pk),
                                object_repr="Ada Lovelace", action_flag=CHANGE,
                                change_message=message if isinstance(message, str) else json.dumps(message))
    assert b"Ada Lovelace" in admin_client.get("/admin/").content  # "Recent actions", before

    assert api.post(f"/api/v1/leads/{lead.pk}/erase/").status_code == 200

    for url in ("/admin/", f"/admin/leads/lead/{lead.pk}/history/"):
        content = admin_client.get(url).content.decode()
        assert "Ada" not in content and "Lovelace" not in content and "ada@example.com" not in content, url
    assert "Erased lead" in admin_client.get("/admin/").content.decode()
    history = admin_client.get(f"/admin/leads/lead/{lead.pk}/history/").content.decode()
    assert "Changed First name and Email." in history  # which fields changed is kept


def test_a_change_in_admin_goes_through_the_lead_service_and_is_rescored(admin_client, org):
    from leadcrm.models import OutboxEvent

    lead = _lead(org)
    OutboxEvent.objects.all().delete()
    response = admin_client.post(f"/admin/leads/lead/{lead.pk}/change/",
                                 _change_form(lead, tags="vip, partner", status=lead.status))
    assert response.status_code == 302, response.context["adminform"].form.errors
    lead.refresh_from_db()
    assert lead.tags == ["vip", "partner"]
    [event] = OutboxEvent.objects.filter(event="lead.updated")  # scoring, webhooks and the audit trail follow it
    assert "tags" in event.payload["fields"] and event.payload["lead_id"] == str(lead.pk)
