"""Management commands that integrations and ops rely on: create_org, create_api_key, seed_demo, add_member."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from leadcrm.models import ApiKey, Membership, Organization, Role
from leads.models import Activity, Form, Lead

pytestmark = pytest.mark.django_db

User = get_user_model()


def run(*args, **options):
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def logs_in(client, email, password):
    response = client.post("/accounts/login/", {"username": email, "password": password})
    return response.status_code == 302 and "_auth_user_id" in client.session


# --- create_org ----------------------------------------------------------------------------------


def test_create_org_makes_the_org_and_an_admin_who_can_log_in(client):
    out = run("create_org", "globex", "--name", "Globex Corp", "--owner-email", "Hank@Globex.test",
              "--owner-password", "s3cret-pass")
    assert "globex" in out
    org = Organization.objects.get(slug="globex")
    assert org.name == "Globex Corp"
    membership = Membership.objects.get(organization=org)
    assert membership.role == Role.ADMIN
    assert membership.user.email == "hank@globex.test"
    assert membership.user.is_staff  # org admins manage their org in Django admin
    assert logs_in(client, "hank@globex.test", "s3cret-pass")
    assert client.get("/leads/").status_code == 200


def test_create_org_with_a_taken_slug_is_a_clear_error_and_changes_nothing():
    run("create_org", "globex", "--name", "Globex", "--owner-email", "a@globex.test", "--owner-password", "pw-1-aaaa")
    with pytest.raises(CommandError, match="already exists"):
        run("create_org", "globex", "--name", "Other", "--owner-email", "b@globex.test",
            "--owner-password", "pw-2-bbbb")
    assert Organization.objects.get(slug="globex").name == "Globex"
    assert not User.objects.filter(username="b@globex.test").exists()
    assert Membership.objects.count() == 1


def test_create_org_reuses_an_existing_user():
    run("create_org", "one", "--name", "One", "--owner-email", "x@multi.test", "--owner-password", "pw-one-111")
    run("create_org", "two", "--name", "Two", "--owner-email", "x@multi.test", "--owner-password", "pw-one-111")
    assert User.objects.filter(username="x@multi.test").count() == 1
    assert Membership.objects.filter(user__username="x@multi.test").count() == 2


def test_create_org_requires_its_options():
    with pytest.raises(CommandError):
        run("create_org", "lonely")


# --- create_api_key ------------------------------------------------------------------------------


def test_create_api_key_prints_a_working_key_as_the_last_line(org):
    out = run("create_api_key", org.slug, "--name", "website")
    plain = out.strip().splitlines()[-1]
    key = ApiKey.objects.get(organization=org, name="website")
    assert plain.startswith(f"{key.prefix}.")
    assert plain not in key.hashed_key  # stored hashed only

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    assert client.get("/api/v1/ping/").json() == {"ok": True, "organization": org.slug}
    created = client.post("/api/v1/leads/", {"email": "from-cli@example.com"}, format="json")
    assert created.status_code == 201
    assert Lead.objects.get(pk=created.json()["id"]).organization == org


def test_create_api_key_for_an_unknown_org_is_a_clear_error(db):
    with pytest.raises(CommandError, match="nope"):
        run("create_api_key", "nope", "--name", "x")
    assert ApiKey.objects.count() == 0


# --- seed_demo -----------------------------------------------------------------------------------


def test_seed_demo_twice_is_safe_and_every_role_can_log_in(client):
    run("seed_demo")
    org = Organization.objects.get(slug="demo")
    counts = (Lead.objects.for_org(org).count(), Activity.objects.for_org(org).count(),
              Form.objects.for_org(org).count(), Membership.objects.for_org(org).count(), User.objects.count())
    assert counts[0] >= 50 and counts[1] > counts[0] and counts[2] >= 1
    run("seed_demo")
    assert (Lead.objects.for_org(org).count(), Activity.objects.for_org(org).count(),
            Form.objects.for_org(org).count(), Membership.objects.for_org(org).count(),
            User.objects.count()) == counts
    assert Organization.objects.filter(slug="demo").count() == 1

    roles = dict(Membership.objects.for_org(org).values_list("user__username", "role"))
    for role in Role.values:
        assert roles.get(f"{role}@demo.test") == role
        client.logout()
        assert logs_in(client, f"{role}@demo.test", "demo12345"), role
        assert client.get("/leads/").status_code == 200
    # demo people have names, which the team page, notifications and the audit log show
    assert not User.objects.filter(username__endswith="@demo.test", first_name="").exists()


def test_seeded_rep_has_a_queue_of_their_own(client):
    run("seed_demo")
    org = Organization.objects.get(slug="demo")
    rep = User.objects.get(username="rep@demo.test")
    owned = Lead.objects.for_org(org).filter(owner=rep)
    assert 0 < owned.count() < Lead.objects.for_org(org).count()
    client.force_login(rep)
    page = client.get("/leads/?page_size=500").content.decode()
    assert all(str(lead.pk) not in page for lead in Lead.objects.for_org(org).exclude(owner=rep)[:50])


def test_seeded_demo_data_is_realistic(db):
    run("seed_demo")
    leads = Lead.objects.for_org(Organization.objects.get(slug="demo"))
    assert leads.exclude(company="").count() == leads.count()
    assert leads.values("country").distinct().count() > 3
    assert leads.values("source_type").distinct().count() > 2
    assert leads.exclude(last_activity_at=None).count() == leads.count()


# --- add_member ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", Role.values)
def test_add_member_with_each_role(client, org, role):
    out = run("add_member", org.slug, "--email", f"New.{role}@acme.test", "--password", "pw-new-1234",
              "--role", role)
    assert role in out
    membership = Membership.objects.get(organization=org, user__username=f"new.{role}@acme.test")
    assert membership.role == role
    assert membership.user.is_staff == (role == Role.ADMIN)
    assert logs_in(client, f"new.{role}@acme.test", "pw-new-1234")


def test_add_member_rejects_an_unknown_role(org):
    with pytest.raises(CommandError, match="role"):
        run("add_member", org.slug, "--email", "x@acme.test", "--password", "pw-x-12345", "--role", "overlord")
    assert not User.objects.filter(username="x@acme.test").exists()


def test_add_member_to_an_unknown_org_is_a_clear_error(db):
    with pytest.raises(CommandError, match="ghost"):
        run("add_member", "ghost", "--email", "x@acme.test", "--password", "pw-x-12345", "--role", "rep")
    assert not User.objects.filter(username="x@acme.test").exists()


def test_add_member_again_changes_the_role_not_the_count(org):
    run("add_member", org.slug, "--email", "m@acme.test", "--password", "pw-m-12345", "--role", "rep")
    run("add_member", org.slug, "--email", "m@acme.test", "--password", "pw-m-12345", "--role", "manager")
    memberships = Membership.objects.filter(organization=org, user__username="m@acme.test")
    assert [m.role for m in memberships] == ["manager"]


def test_add_member_puts_one_user_in_two_orgs(org, other_org):
    run("add_member", org.slug, "--email", "both@x.test", "--password", "pw-both-123", "--role", "marketer")
    run("add_member", other_org.slug, "--email", "both@x.test", "--password", "pw-both-123", "--role", "rep")
    assert set(Membership.objects.filter(user__username="both@x.test").values_list("organization__slug", "role")) \
        == {(org.slug, "marketer"), (other_org.slug, "rep")}


def test_the_demo_has_a_sales_history_for_the_reports(client):
    for command in ("seed_demo", "seed_demo_routing", "seed_demo_campaigns"):
        run(command)
    client.force_login(User.objects.get(username="manager@demo.test"))
    rows = {name: client.get(f"/api/v1/reports/{name}/").json()["rows"]
            for name in ("funnel", "speed-to-lead", "sales-cycle", "campaigns")}
    [funnel], [speed], [cycle] = rows["funnel"], rows["speed-to-lead"], rows["sales-cycle"]
    assert funnel["mql"] >= 30 and funnel["customer"] >= 10
    assert speed["with_sla"] == speed["leads"] >= 30 and 0 < speed["within_sla"] < speed["with_sla"]
    assert cycle["won"] >= 10 and cycle["lost"] >= 1 and cycle["created_to_won_days_median"] > 0
    assert any(float(campaign["won_revenue"]) > 0 for campaign in rows["campaigns"])
    run("seed_demo_routing")  # safe to re-run: the history is not made twice
    assert client.get("/api/v1/reports/speed-to-lead/").json()["rows"][0]["leads"] == speed["leads"]
