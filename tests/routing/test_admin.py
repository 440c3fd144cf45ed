"""Distribution in Django admin: tenant-scoped lists and choices, and the same checks as the API."""

import pytest

from leadcrm.models import Membership, Role
from routing.models import AssignmentRule, Team
from tests.routing import make_lead, make_rep, make_rule, make_team, route

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(org, other_org, client):
    mine, theirs = make_rep(org, name="mine"), make_rep(other_org, name="theirs")
    my_team, their_team = make_team(org, "Mine team", [mine]), make_team(other_org, "Theirs team", [theirs])
    make_rule(org, "Mine rule", team=my_team)
    make_rule(other_org, "Theirs rule", team=their_team)
    route(make_lead(org, email="routed@acme.test"))
    route(make_lead(other_org, email="routed@rival.test"))
    client.force_login(Membership.objects.get(organization=org, role=Role.ADMIN).user)
    return {"mine": mine, "theirs": theirs, "my_team": my_team, "their_team": their_team}


@pytest.mark.parametrize("url, shown, hidden", [
    ("/admin/routing/assignmentrule/", "Mine rule", "Theirs rule"),
    ("/admin/routing/team/", "Mine team", "Theirs team"),
    ("/admin/routing/repprofile/", "mine@acme.test", "theirs@rival.test"),
    ("/admin/routing/assignment/", "routed@acme.test", "routed@rival.test"),
])
def test_lists_show_only_the_admins_org(client, setup, url, shown, hidden):
    html = client.get(url).content.decode()
    assert shown in html and hidden not in html


def test_another_orgs_team_cannot_be_opened(client, setup):
    response = client.get(f"/admin/routing/team/{setup['their_team'].pk}/change/")
    assert response.status_code == 302 and response["Location"] == "/admin/"  # "doesn't exist"
    assert client.get(f"/admin/routing/team/{setup['my_team'].pk}/change/").status_code == 200


def test_rule_form_offers_only_the_orgs_teams_and_reps(client, setup):
    html = client.get("/admin/routing/assignmentrule/add/").content.decode()
    assert "Mine team" in html and "Theirs team" not in html
    assert "mine@acme.test" in html and "theirs@rival.test" not in html


def rule_post(**fields):
    return {"name": "Admin rule", "order": 5, "condition": "{}", "strategy": "round_robin", "max_reassignments": 2,
            "match_profile": "on", "active": "on", **fields}


def test_a_rule_saved_in_admin_lands_in_the_admins_org(client, org, setup):
    response = client.post("/admin/routing/assignmentrule/add/", rule_post(team=setup["my_team"].pk,
                                                                         sla_minutes=30))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert AssignmentRule.objects.get(name="Admin rule").organization == org


@pytest.mark.parametrize("fields, message", [
    ({"strategy": "round_robin"}, "Name the team that shares the leads."),
    ({"is_fallback": "on", "condition": '{"all": [{"field": "country", "op": "eq", "value": "US"}]}'},
     "it has no condition"),
    ({"condition": '{"all": [{"field": "nonsense", "op": "eq", "value": 1}]}'}, "nonsense"),
    ({"sla_minutes": 0}, "Between 1 and"),
])
def test_admin_refuses_rules_that_make_no_sense(client, setup, fields, message):
    data = rule_post(team=setup["my_team"].pk, **fields)
    if fields.get("strategy") == "round_robin":
        data.pop("team")
    response = client.post("/admin/routing/assignmentrule/add/", data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AssignmentRule.objects.filter(name="Admin rule").exists()


def test_deleting_a_team_a_rule_uses_is_refused(client, setup):
    response = client.post(f"/admin/routing/team/{setup['my_team'].pk}/delete/", {"post": "yes"})
    assert response.status_code in (200, 302)
    assert Team.objects.filter(pk=setup["my_team"].pk).exists()
