"""Webhook endpoints in the audit log, and webhook deliveries in a lead's export and erasure."""

import pytest

from leadcrm.models import AuditEntry
from leads import services as lead_services
from webhooks.models import Delivery

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def public_dns(dns, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    dns["hooks.example"] = ["93.184.216.34"]


def test_endpoint_changes_are_audited_with_the_secret_hidden(api, org):
    created = api.post("/api/v1/webhooks/", {"url": "https://hooks.example/in", "events": ["lead.created"]},
                       format="json").json()
    api.patch(f"/api/v1/webhooks/{created['id']}/", {"active": False}, format="json")
    api.post(f"/api/v1/webhooks/{created['id']}/rotate-secret/")
    api.delete(f"/api/v1/webhooks/{created['id']}/")
    entries = list(AuditEntry.objects.for_org(org).filter(object_type="webhooks.endpoint").order_by("time", "pk"))
    assert [entry.action for entry in entries] == ["created", "updated", "updated", "deleted"]
    assert entries[1].changes["active"] == [True, False]
    assert entries[2].changes == {"secret": "changed"}
    assert all(created["secret"] not in str(entry.changes) for entry in entries)
    assert entries[0].actor_label.startswith("API key")


def test_export_lists_the_deliveries_and_erase_removes_their_bodies(api, org, django_capture_on_commit_callbacks):
    api.post("/api/v1/webhooks/", {"url": "https://hooks.example/in", "events": ["lead.created"]}, format="json")
    with django_capture_on_commit_callbacks(execute=True):  # deliveries are made once the capture commits
        lead = lead_services.capture_lead(organization_id=org.pk, channel="api",
                                          data={"email": "ada@example.com", "first_name": "Ada"}).lead
    [delivery] = Delivery.objects.for_org(org).filter(lead_id=lead.pk)
    assert "ada@example.com" in str(delivery.payload)

    exported = api.get(f"/api/v1/leads/{lead.pk}/export/").json()
    assert exported["webhook_deliveries"][0]["event_type"] == "lead.created"
    assert api.post(f"/api/v1/leads/{lead.pk}/erase/").status_code == 200
    delivery.refresh_from_db()
    assert "ada@example.com" not in str(delivery.payload) and delivery.status  # the row and its history stay
