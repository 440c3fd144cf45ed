"""Webhook pages for org admins: list, create (secret shown once), edit, enable/disable, rotate, test event, delete,
the deliveries of an endpoint and a delivery's attempts with Replay. Other roles get a 404; lead data is escaped."""

import pytest

from leadcrm.models import Role
from leads.models import Lead
from webhooks import services
from webhooks.models import Attempt, Delivery, Endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client, member, dns, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    settings.WEBHOOKS_ALLOW_HTTP = False
    dns["hooks.example"] = ["93.184.216.34"]
    client.force_login(member(Role.ADMIN, email="boss@acme.test"))
    return client


FORM = {"url": "https://hooks.example/in", "description": "Sync", "events": ["lead.created", "deal.won"],
        "active": "on"}


def test_nav_link_and_empty_state(admin):
    home = admin.get("/settings/webhooks/")
    assert home.status_code == 200
    html = home.content.decode()
    assert 'href="/settings/webhooks/"' in html and "No webhook endpoints yet" in html


@pytest.mark.parametrize("role", [Role.MARKETER, Role.MANAGER, Role.REP])
def test_only_admins_see_webhooks(client, member, org, role):
    endpoint = Endpoint.objects.create(organization=org, url="https://hooks.example/", events=["lead.created"],
                                       secret="whsec_YQ==")
    client.force_login(member(role))
    assert client.get("/settings/webhooks/").status_code == 403
    assert client.get(f"/settings/webhooks/{endpoint.pk}/").status_code == 403
    assert client.post(f"/settings/webhooks/{endpoint.pk}/rotate/").status_code == 403
    assert 'href="/settings/webhooks/"' not in client.get("/leads/").content.decode()


def test_create_shows_the_secret_once_then_edit_toggle_rotate_delete(admin, org):
    refused = admin.post("/settings/webhooks/new/", {**FORM, "url": "https://169.254.169.254/"})
    assert refused.status_code == 400 and "private or reserved" in refused.content.decode()
    assert admin.post("/settings/webhooks/new/", {**FORM, "events": []}).status_code == 400

    created = admin.post("/settings/webhooks/new/", FORM)
    assert created.status_code == 201
    endpoint = Endpoint.objects.get()
    assert endpoint.secret in created.content.decode() and endpoint.events == ["lead.created", "deal.won"]
    page = admin.get(f"/settings/webhooks/{endpoint.pk}/").content.decode()
    assert endpoint.secret not in page and "Send test event" in page
    assert "https://hooks.example/in" in admin.get("/settings/webhooks/").content.decode()

    edited = admin.post(f"/settings/webhooks/{endpoint.pk}/edit/", {**FORM, "description": "Renamed",
                                                                    "events": ["lead.mql"]})
    assert edited.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.description == "Renamed" and endpoint.events == ["lead.mql"]
    assert admin.post(f"/settings/webhooks/{endpoint.pk}/edit/", {**FORM, "url": "https://127.0.0.1/"}
                      ).status_code == 400

    admin.post(f"/settings/webhooks/{endpoint.pk}/active/", {"active": "0"})
    assert Endpoint.objects.get().active is False
    admin.post(f"/settings/webhooks/{endpoint.pk}/active/", {"active": "1"})
    assert Endpoint.objects.get().active is True

    old = endpoint.secret
    rotated = admin.post(f"/settings/webhooks/{endpoint.pk}/rotate/")
    new = Endpoint.objects.get().secret
    assert new != old and new in rotated.content.decode()

    assert "Delete this endpoint?" in admin.get(f"/settings/webhooks/{endpoint.pk}/delete/").content.decode()
    assert admin.post(f"/settings/webhooks/{endpoint.pk}/delete/").status_code == 302
    assert not Endpoint.objects.exists()


def test_deliveries_list_filters_and_delivery_page_with_replay(admin, org, django_assert_max_num_queries):
    endpoint = services.create_endpoint(organization_id=org.pk, data={**FORM, "active": True})
    leads = Lead.objects.bulk_create([Lead(organization=org, email=f"l{i}@example.com") for i in range(60)])
    Lead.objects.filter(pk=leads[0].pk).update(first_name="<script>alert(1)</script>")
    services.deliveries_for_leads(organization_id=org.pk, event_type="lead.created", lead_ids=[x.pk for x in leads])
    first = Delivery.objects.get(lead_id=leads[0].pk)
    Delivery.objects.filter(pk=first.pk).update(status="failed", attempt_count=7, last_status_code=500)
    Attempt.objects.create(organization=org, delivery=first, attempted_at=first.created_at, url=endpoint.url,
                           status_code=500, response_body="<b>receiver down</b>", duration_ms=12)

    with django_assert_max_num_queries(12):
        page = admin.get(f"/settings/webhooks/{endpoint.pk}/")
    html = page.content.decode()
    assert html.count('class="badge delivery-') == 50 and 'rel="next"' in html
    failed = admin.get(f"/settings/webhooks/{endpoint.pk}/?status=failed").content.decode()
    assert failed.count('class="badge delivery-failed"') == 1
    partial = admin.get(f"/settings/webhooks/{endpoint.pk}/?event=deal.won", HTTP_HX_REQUEST="true")
    assert "No deliveries match these filters" in partial.content.decode()
    assert "<html" not in partial.content.decode()

    detail = admin.get(f"/settings/webhooks/{endpoint.pk}/deliveries/{first.pk}/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail and "<script>alert(1)" not in detail
    assert "&lt;b&gt;receiver down&lt;/b&gt;" in detail and "HTTP 500" in detail and "Replay" in detail

    replayed = admin.post(f"/settings/webhooks/{endpoint.pk}/deliveries/{first.pk}/replay/")
    copy = Delivery.objects.get(replay_of=first)
    assert replayed.status_code == 302 and replayed["Location"].endswith(f"/deliveries/{copy.pk}/")
    assert copy.payload == first.payload and copy.status == "pending"


def test_send_test_event_queues_a_test_delivery(admin, org):
    endpoint = services.create_endpoint(organization_id=org.pk, data={**FORM, "active": True})
    response = admin.post(f"/settings/webhooks/{endpoint.pk}/test/")
    delivery = Delivery.objects.get(endpoint=endpoint)
    assert delivery.event_type == "webhook.test" and response.status_code == 302
    assert "webhook.test" in admin.get(response["Location"]).content.decode()
