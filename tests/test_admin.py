"""Django admin is tenant-scoped for org admins: their rows only, FK choices and saves limited to their
org; reps and marketers cannot use it; superusers work in one org at a time, any org, picked in the switcher."""

import re

import pytest
from django.contrib.auth import get_user_model

from leadcrm import services as tenancy
from leadcrm.models import ApiKey, Membership, Role
from leads import import_files, services
from leads.models import Activity, Form, ImportJob, Lead

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_orgs(org, other_org):
    """Each org with a lead (owned by one of its reps), an activity, a form, an import and an API key."""
    data = {}
    for o, tag in ((org, "acme"), (other_org, "rival")):
        rep = tenancy.add_member(organization=o, email=f"rep@{tag}.test", password="pw-rep-1234", role=Role.REP).user
        lead = services.capture_lead(organization_id=o.pk, data={"email": f"lead@{tag}.test", "owner": rep}).lead
        form = Form.objects.create(organization=o, name=f"{tag} form", slug=f"{tag}-form", fields=["email"])
        job = ImportJob.objects.create(organization=o, filename=f"{tag}.csv", file=import_files.upload(b"email\n"))
        key, _ = tenancy.create_api_key(organization=o, name=f"{tag} key")
        data[tag] = {"org": o, "rep": rep, "lead": lead, "form": form, "import": job, "key": key,
                     "admin": Membership.objects.get(organization=o, role=Role.ADMIN).user}
    return data


def org_admin_client(client, user):
    client.force_login(user)
    return client


CHANGELISTS = [
    ("/admin/leads/lead/", lambda d: d["lead"].email),
    ("/admin/leads/activity/", lambda d: str(d["lead"])),
    ("/admin/leads/form/", lambda d: d["form"].slug),
    ("/admin/leads/importjob/", lambda d: d["import"].filename),
    ("/admin/leadcrm/membership/", lambda d: d["rep"].email),
    ("/admin/leadcrm/apikey/", lambda d: d["key"].prefix),
    ("/admin/leadcrm/organization/", lambda d: d["org"].slug),
]


@pytest.mark.parametrize(("url", "marker"), CHANGELISTS, ids=[u for u, _ in CHANGELISTS])
def test_org_admin_changelists_show_only_their_org(client, two_orgs, url, marker):
    org_admin_client(client, two_orgs["acme"]["admin"])
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert marker(two_orgs["acme"]) in html
    assert marker(two_orgs["rival"]) not in html


def _change_url(kind, obj):
    return {
        "lead": f"/admin/leads/lead/{obj.pk}/change/",
        "form": f"/admin/leads/form/{obj.pk}/change/",
        "import": f"/admin/leads/importjob/{obj.pk}/change/",
        "key": f"/admin/leadcrm/apikey/{obj.pk}/change/",
        "org": f"/admin/leadcrm/organization/{obj.pk}/change/",
    }[kind]


@pytest.mark.parametrize("kind", ["lead", "form", "import", "key", "org"])
def test_org_admin_cannot_open_or_delete_another_orgs_rows(client, two_orgs, kind):
    org_admin_client(client, two_orgs["acme"]["admin"])
    theirs = two_orgs["rival"][kind]
    url = _change_url(kind, theirs)
    response = client.get(url)
    assert response.status_code in (302, 404)
    if response.status_code == 302:
        assert response["Location"] == "/admin/"  # "doesn't exist. Perhaps it was deleted?"
    response = client.post(url.replace("/change/", "/delete/"), {"post": "yes"})
    assert response.status_code in (302, 403, 404)
    assert type(theirs).objects.filter(pk=theirs.pk).exists()
    # control: their own row of the same kind opens
    assert client.get(_change_url(kind, two_orgs["acme"][kind])).status_code == 200


def test_lead_owner_choices_are_limited_to_the_org(client, two_orgs):
    org_admin_client(client, two_orgs["acme"]["admin"])
    html = client.get("/admin/leads/lead/add/").content.decode()
    owner_select = re.search(r'<select name="owner".*?</select>', html, re.S).group(0)
    assert f'value="{two_orgs["acme"]["rep"].pk}"' in owner_select
    assert f'value="{two_orgs["rival"]["rep"].pk}"' not in owner_select
    assert 'name="organization"' not in html  # set from the admin's org, not chosen


def _lead_form(**overrides):
    return {"email": "added@acme.test", "lifecycle_stage": "lead", "status": "open", "tags": "",
            "custom_fields": "{}", "first_touch": "{}", "last_touch": "{}", "stage_entered_at": "{}",
            "_save": "Save", **overrides}


def test_saving_in_admin_puts_the_row_in_the_admins_org(client, two_orgs):
    acme, rival = two_orgs["acme"], two_orgs["rival"]
    org_admin_client(client, acme["admin"])
    response = client.post("/admin/leads/lead/add/", _lead_form(owner=acme["rep"].pk,
                                                                 organization=str(rival["org"].pk)))
    assert response.status_code == 302, re.findall(r'class="errorlist[^"]*"[^>]*>(.*?)</ul>',
                                                   response.content.decode(), re.S)
    lead = Lead.objects.get(email="added@acme.test")
    assert lead.organization == acme["org"]
    assert lead.owner == acme["rep"]


def test_admin_rejects_an_owner_from_another_org(client, two_orgs):
    org_admin_client(client, two_orgs["acme"]["admin"])
    response = client.post("/admin/leads/lead/add/", _lead_form(owner=two_orgs["rival"]["rep"].pk))
    assert response.status_code == 200  # the form again, with an error
    assert "Select a valid choice" in response.content.decode()
    assert not Lead.objects.filter(email="added@acme.test").exists()


def test_editing_a_membership_cannot_move_it_to_another_org(client, two_orgs):
    acme = two_orgs["acme"]
    org_admin_client(client, acme["admin"])
    membership = Membership.objects.get(organization=acme["org"], user=acme["rep"])
    response = client.post(f"/admin/leadcrm/membership/{membership.pk}/change/", {
        "user": acme["rep"].pk, "role": "manager", "organization": str(two_orgs["rival"]["org"].pk), "_save": "Save",
    })
    assert response.status_code == 302
    membership.refresh_from_db()
    assert (membership.organization, membership.role) == (acme["org"], "manager")


def test_membership_user_choices_are_limited_to_the_org(client, two_orgs):
    org_admin_client(client, two_orgs["acme"]["admin"])
    html = client.get("/admin/leadcrm/membership/add/").content.decode()
    select = re.search(r'<select name="user".*?</select>', html, re.S).group(0)
    assert f'value="{two_orgs["acme"]["rep"].pk}"' in select
    assert f'value="{two_orgs["rival"]["rep"].pk}"' not in select


def test_org_admin_cannot_add_organizations_or_see_users(client, two_orgs):
    org_admin_client(client, two_orgs["acme"]["admin"])
    assert client.get("/admin/leadcrm/organization/add/").status_code == 403
    assert client.get("/admin/auth/user/").status_code == 403
    index = client.get("/admin/").content.decode()
    assert "/admin/leads/lead/" in index
    assert "/admin/auth/user/" not in index


@pytest.mark.parametrize("role", [Role.REP, Role.MARKETER, Role.MANAGER])
def test_non_admin_roles_cannot_use_admin(client, org, member, role):
    client.force_login(member(role))
    response = client.get("/admin/leads/lead/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert client.get("/admin/").status_code == 302


def test_staff_user_acting_as_rep_in_another_org_sees_nothing_there(client, two_orgs):
    """Admin of Acme, rep in Rival: with Rival active, the admin shows none of Rival's rows."""
    acme, rival = two_orgs["acme"], two_orgs["rival"]
    user = acme["admin"]
    tenancy.add_member(organization=rival["org"], email=user.email, password=None, role=Role.REP)
    client.force_login(user)
    assert client.post("/org/switch/", {"organization": str(rival["org"].pk)}).status_code == 302
    response = client.get("/admin/leads/lead/")
    assert response.status_code == 403
    assert rival["lead"].email.encode() not in response.content
    client.post("/org/switch/", {"organization": str(acme["org"].pk)})
    assert client.get("/admin/leads/lead/").status_code == 200


def test_superuser_works_in_any_org_one_at_a_time(client, two_orgs):
    """Row-level security has no every-org scope for the app role: a superuser picks the org in the switcher."""
    root = get_user_model().objects.create_superuser("root@x.test", "root@x.test", "pw-root-1234")
    client.force_login(root)
    for active, other in (("acme", "rival"), ("rival", "acme")):
        client.post("/org/switch/", {"organization": str(two_orgs[active]["org"].pk)})
        for url, marker in CHANGELISTS:
            html = client.get(url).content.decode()
            assert marker(two_orgs[active]) in html, url
            assert marker(two_orgs[other]) not in html, url
        assert client.get(_change_url("lead", two_orgs[active]["lead"])).status_code == 200
        assert client.get(_change_url("lead", two_orgs[other]["lead"])).status_code == 302  # "does not exist"


def test_activities_are_read_only_in_admin(client, two_orgs):
    org_admin_client(client, two_orgs["acme"]["admin"])
    activity = Activity.objects.for_org(two_orgs["acme"]["org"]).first()
    response = client.post(f"/admin/leads/activity/{activity.pk}/change/", {"type": "note", "_save": "Save"})
    assert response.status_code in (302, 403)
    activity.refresh_from_db()
    assert activity.type == "api_submission"


def test_admin_changelists_do_not_query_per_row(client, two_orgs, django_assert_max_num_queries):
    acme = two_orgs["acme"]
    for i in range(30):
        user = tenancy.add_member(organization=acme["org"], email=f"o{i}@acme.test", password=None, role="rep").user
        Lead.objects.create(organization=acme["org"], email=f"l{i}@acme.test", owner=user)
        tenancy.create_api_key(organization=acme["org"], name=f"k{i}")
    org_admin_client(client, acme["admin"])
    for url in ("/admin/leads/lead/", "/admin/leadcrm/membership/", "/admin/leadcrm/apikey/"):
        with django_assert_max_num_queries(15):
            assert client.get(url).status_code == 200


def test_api_keys_cannot_be_created_for_another_org_in_admin(client, two_orgs):
    org_admin_client(client, two_orgs["acme"]["admin"])
    before = ApiKey.objects.for_org(two_orgs["rival"]["org"]).count()
    client.post("/admin/leadcrm/apikey/add/", {"name": "sneaky", "organization": str(two_orgs["rival"]["org"].pk),
                                               "_save": "Save"})
    assert ApiKey.objects.for_org(two_orgs["rival"]["org"]).count() == before
