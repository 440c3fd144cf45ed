"""Settings → Organization: admins change the org's name and the sender of email to leads (audited); other roles
get a 403; an admin changes only their own organization; names are escaped and kept to one header line."""

import pytest

from leadcrm.models import AuditEntry, Membership, Organization, Role

pytestmark = pytest.mark.django_db


def _admin(org):
    return Membership.objects.get(organization=org, role=Role.ADMIN).user


def test_an_admin_changes_the_settings_and_the_change_is_audited(org, client):
    client.force_login(_admin(org))
    page = client.get("/settings/organization/")
    assert page.status_code == 200 and 'value="Acme"' in page.content.decode()
    response = client.post("/settings/organization/", {"name": "Acme Inc.", "email_sender_name": "Acme Marketing",
                                                        "email_from_owner": "on"})
    assert response.status_code == 302 and response["Location"] == "/settings/organization/"
    org.refresh_from_db()
    assert (org.name, org.email_sender_name, org.email_from_owner) == ("Acme Inc.", "Acme Marketing", True)
    entry = AuditEntry.objects.get(organization=org, object_type="leadcrm.organization")
    assert entry.changes["email_from_owner"] == [False, True] and entry.changes["name"] == ["Acme", "Acme Inc."]
    html = client.get("/settings/organization/").content.decode()
    assert "Acme Marketing &lt;no-reply@leadcrm.local&gt;" in html


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"name": ""}, "name", "This field is required."),
    ({"name": "\x07\x1b"}, "name", "A name of 1 to 200 characters."),
    ({"name": "Acme", "email_sender_name": "x" * 101}, "email_sender_name", "at most 100 characters"),
])
def test_refusals_are_shown_on_their_inputs(org, client, data, field, message):
    client.force_login(_admin(org))
    response = client.post("/settings/organization/", data)
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html.split(f'id="id_{field}_error"', 1)[1].split("</ul>", 1)[0]
    org.refresh_from_db()
    assert org.name == "Acme"


def test_typed_names_are_escaped_and_kept_to_one_line(org, client):
    client.force_login(_admin(org))
    client.post("/settings/organization/", {"name": "Acme\r\nX-Evil: 1", "email_sender_name": "<b>Acme</b>"})
    org.refresh_from_db()
    assert org.name == "Acme X-Evil: 1"
    html = client.get("/settings/organization/").content.decode()
    assert "<b>Acme</b>" not in html and "&lt;b&gt;Acme&lt;/b&gt;" in html


@pytest.mark.parametrize("role", [Role.MANAGER, Role.MARKETER, Role.REP])
def test_other_roles_are_refused(org, member, client, role):
    client.force_login(member(role, f"{role}@acme.test"))
    assert client.get("/settings/organization/").status_code == 403
    assert client.post("/settings/organization/", {"name": "Pwned"}).status_code == 403
    org.refresh_from_db()
    assert org.name == "Acme"


def test_an_admin_changes_only_their_own_organization(org, other_org, client):
    client.force_login(_admin(other_org))
    page = client.get("/settings/organization/").content.decode()
    assert "Rival" in page and "Acme" not in page
    client.post("/settings/organization/", {"name": "Rival Two", "email_from_owner": "on"})
    assert Organization.objects.get(pk=org.pk).name == "Acme"
    assert not Organization.objects.get(pk=org.pk).email_from_owner
    assert Organization.objects.get(pk=other_org.pk).name == "Rival Two"


def test_the_menu_offers_it_to_admins_only(org, member, client):
    client.force_login(_admin(org))
    assert 'href="/settings/organization/"' in client.get("/leads/").content.decode()
    client.force_login(member(Role.MARKETER, "mara@acme.test"))
    assert 'href="/settings/organization/"' not in client.get("/leads/").content.decode()
