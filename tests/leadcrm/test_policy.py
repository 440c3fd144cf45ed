"""The access policy's findings, each through the door where it was found: the API, the pages and Django admin."""

import pytest
from rest_framework.test import APIClient

from leadcrm import services as tenancy
from leadcrm.models import AuditEntry, Membership, Role
from leads import services as lead_services
from leads.models import Activity, ActivityType
from routing.models import Assignment, RepProfile
from tests.routing import make_team
from webhooks.models import Endpoint

pytestmark = pytest.mark.django_db


def _session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _key_client(org, role, created_by=None) -> APIClient:
    _, plain = tenancy.create_api_key(organization=org, name=f"{role} integration", role=role, created_by=created_by)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    return client


@pytest.mark.parametrize("role", [Role.MARKETER, Role.MANAGER])
def test_only_admins_manage_webhooks_over_the_api(org, member, role, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    client = _session(member(role))
    created = client.post("/api/v1/webhooks/", {"url": "https://example.com/hook", "events": ["lead.created"]},
                          format="json")
    assert created.status_code == 403 and "secret" not in created.content.decode()
    assert client.get("/api/v1/webhooks/").status_code == 403
    assert Endpoint.objects.count() == 0
    assert _session(member(role, email=f"second-{role}@acme.test")).get("/settings/webhooks/").status_code == 403


@pytest.mark.parametrize("role", [Role.MARKETER, Role.MANAGER])
def test_a_key_acts_as_its_role_not_as_an_admin(org, member, role):
    lead = lead_services.capture_lead(organization_id=org.pk, data={"email": "ada@example.com"}).lead
    client = _key_client(org, role, created_by=member(role))
    assert client.get("/api/v1/audit-log/").status_code == 403
    assert client.post(f"/api/v1/leads/{lead.pk}/erase/").status_code == 403
    lead.refresh_from_db()
    assert lead.erased_at is None and lead.email == "ada@example.com"
    assert client.get("/api/v1/leads/").status_code == 200  # what the role may do, the key may do


def test_keys_made_before_roles_stay_admin_keys(org):
    admin_key = _key_client(org, Role.ADMIN)
    assert admin_key.get("/api/v1/audit-log/").status_code == 200
    key, _ = tenancy.create_api_key(organization=org, name="default")
    assert key.role == Role.ADMIN


def test_the_keys_page_offers_and_lists_roles(org, member):
    marketer = member(Role.MARKETER)
    client = _session(marketer)
    refused = client.post("/settings/api-keys/", {"name": "escalate", "role": "admin"})
    assert refused.status_code == 400 and b"may give a key only a role" in refused.content
    made = client.post("/settings/api-keys/", {"name": "Newsletter sync", "role": "marketer"})
    assert made.status_code == 200 and b'id="new-key"' in made.content
    key = org.api_keys.get(name="Newsletter sync")
    assert (key.role, key.created_by) == (Role.MARKETER, marketer)
    page = client.get("/settings/api-keys/").content.decode()
    assert "Newsletter sync" in page and "Marketer" in page and marketer.email in page
    # a marketer sees only the keys they made; an admin sees every key of the org
    tenancy.create_api_key(organization=org, name="Admin's key")
    assert "Admin&#x27;s key" not in page
    admin = Membership.objects.get(organization=org, role=Role.ADMIN).user
    assert "Admin&#x27;s key" in _session(admin).get("/settings/api-keys/").content.decode()


def test_a_manager_reads_the_queues_of_their_teams_only_through_both_doors(org, member):
    manager, mine, other = member(Role.MANAGER), member(Role.REP), member(Role.REP, email="other@acme.test")
    make_team(org, "East", [RepProfile.objects.get(user=mine)], manager=manager)
    make_team(org, "West", [RepProfile.objects.get(user=other)])
    client = _session(manager)
    assert client.get(f"/api/v1/queue/?rep={mine.pk}").status_code == 200
    assert client.get(f"/queue/?rep={mine.pk}").status_code == 200
    assert client.get(f"/api/v1/queue/?rep={other.pk}").status_code == 404
    assert client.get(f"/queue/?rep={other.pk}").status_code == 404
    # an admin reads anyone's; a rep only their own
    admin = Membership.objects.get(organization=org, role=Role.ADMIN).user
    assert _session(admin).get(f"/api/v1/queue/?rep={other.pk}").status_code == 200
    assert _session(mine).get(f"/api/v1/queue/?rep={other.pk}").status_code == 404


def test_what_a_key_does_names_the_key(org, member):
    rep = member(Role.REP)
    lead = lead_services.capture_lead(organization_id=org.pk, data={"email": "ada@example.com"}).lead
    client = _key_client(org, Role.ADMIN)
    moved = client.post(f"/api/v1/leads/{lead.pk}/stage/", {"stage": "mql"}, format="json")
    assert moved.status_code == 200
    change = Activity.objects.get(lead=lead, type=ActivityType.STAGE_CHANGE)
    assert (change.actor, change.actor_label) == (None, "API key admin integration")
    reassigned = client.post("/api/v1/leads/reassign/", {"leads": [str(lead.pk)], "rep": rep.pk}, format="json")
    assert reassigned.status_code == 200
    assignment = Assignment.objects.filter(lead=lead).latest("created_at")
    assert assignment.actor_label == "API key admin integration"
    timeline = client.get(f"/api/v1/leads/{lead.pk}/activities/").json()["results"]
    assert {item["actor_label"] for item in timeline if item["type"] == "stage_change"} == {
        "API key admin integration"}
    admin = Membership.objects.get(organization=org, role=Role.ADMIN).user
    assert "API key admin integration" in _session(admin).get(f"/leads/{lead.pk}/").content.decode()


def test_admins_change_roles_on_the_roles_page(org, member):
    rep = member(Role.REP)
    admin = Membership.objects.get(organization=org, role=Role.ADMIN)
    client = _session(admin.user)
    page = client.get("/settings/roles/")
    assert page.status_code == 200 and b"Erase a lead" in page.content and rep.email.encode() in page.content
    membership = Membership.objects.get(organization=org, user=rep)
    changed = client.post("/settings/roles/", {"membership": membership.pk, "role": "manager"})
    assert changed.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.MANAGER
    entry = AuditEntry.objects.filter(object_type="leadcrm.membership").latest("time")
    assert entry.changes["role"] == ["rep", "manager"] and entry.actor == admin.user
    # bad input: an unknown role, another org's member, the last admin stepping down — 4xx, nothing saved
    assert client.post("/settings/roles/", {"membership": membership.pk, "role": "owner"}).status_code == 400
    assert client.post("/settings/roles/", {"membership": "x", "role": "rep"}).status_code == 404
    last = client.post("/settings/roles/", {"membership": admin.pk, "role": "rep"})
    assert last.status_code == 400 and b"at least one admin" in last.content
    membership.refresh_from_db()
    admin.refresh_from_db()
    assert (membership.role, admin.role) == (Role.MANAGER, Role.ADMIN)
    assert _session(rep).get("/settings/roles/").status_code == 403


@pytest.mark.parametrize("role", [Role.MANAGER, Role.MARKETER, Role.REP])
def test_django_admin_follows_the_policy(org, member, role):
    user = member(role)
    user.is_staff = True  # even with staff status, the policy keeps the admin site to admins
    user.save()
    client = _session(user)
    for page in ("/admin/scoring/scoringrule/", "/admin/leadcrm/apikey/", "/admin/webhooks/endpoint/",
                 "/admin/leadcrm/membership/"):
        assert client.get(page).status_code == 403, page
    admin = Membership.objects.get(organization=org, role=Role.ADMIN).user
    assert _session(admin).get("/admin/leadcrm/apikey/").status_code == 200


def test_the_menu_offers_what_the_role_may_open(org, member):
    marketer_page = _session(member(Role.MARKETER)).get("/leads/").content.decode()
    assert "/settings/api-keys/" in marketer_page and "/settings/webhooks/" not in marketer_page
    assert "/settings/roles/" not in marketer_page and "/audit/" not in marketer_page
    rep_page = _session(member(Role.REP)).get("/leads/").content.decode()
    assert "/settings/api-keys/" not in rep_page and "/queue/pool/" in rep_page
