"""The REST API of distribution: reps, teams and assignment rules; route, history, claim, touch, reassign, queue."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from leadcrm.models import Membership, Role
from leads.models import Activity, Lead, LifecycleStage, Temperature
from routing import selectors, services
from routing.models import Assignment, AssignmentRule, LeadRouting, RepProfile, Team

from . import make_lead, make_rep, make_rule, make_team, route

pytestmark = pytest.mark.django_db


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def admin(org):
    return session(Membership.objects.get(organization=org, role=Role.ADMIN).user)


@pytest.fixture
def rival_rep(other_org):
    return make_rep(other_org, "rita")


def errors_of(response) -> dict:
    assert response.status_code == 400, (response.status_code, response.content[:400])
    return response.json()["errors"]


# ----------------------------------------------------------------------------------------------- reps


def test_reps_list_shows_each_rep_with_role_teams_and_open_leads(api, org):
    ann = make_rep(org, "ann", territories=["us-ca", "DE"])
    bob = make_rep(org, "bob", role=Role.MANAGER)
    team = make_team(org, "West", [ann], manager=bob.user)
    make_lead(org, owner=ann.user)
    make_lead(org, owner=ann.user)
    make_lead(org, owner=ann.user, lifecycle_stage=LifecycleStage.CUSTOMER)  # not open: does not count

    response = api.get("/api/v1/reps/")

    assert response.status_code == 200
    rows = {row["user"]: row for row in response.json()["results"]}
    assert set(rows) == {"ann@acme.test", "bob@acme.test"}  # the owner is an admin, not a rep
    assert rows["ann@acme.test"]["id"] == ann.user_id
    assert rows["ann@acme.test"]["territories"] == ["DE", "US-CA"]
    assert rows["ann@acme.test"]["open_leads"] == 2
    assert rows["ann@acme.test"]["teams"] == [{"id": team.pk, "name": "West"}]
    assert rows["ann@acme.test"]["role"] == "rep"
    assert rows["bob@acme.test"]["role"] == "manager" and rows["bob@acme.test"]["open_leads"] == 0


def test_a_member_who_joined_without_a_profile_gets_one_when_listed(api, org):
    user = make_rep(org, "cal").user
    RepProfile.objects.filter(user=user).delete()
    response = api.get(f"/api/v1/reps/{user.pk}/")
    assert response.status_code == 200
    assert response.json()["user"] == "cal@acme.test"


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as context:
        assert client.get(url).status_code == 200
    return len(context.captured_queries)


def test_reps_list_query_count_does_not_grow_with_reps(admin, org):
    team = make_team(org, "Everyone", [make_rep(org) for _ in range(2)])
    make_lead(org, owner=team.members.first().user)
    few = _queries(admin, "/api/v1/reps/")
    reps = [make_rep(org) for _ in range(12)]
    make_team(org, "More", reps)
    for rep in reps:
        make_lead(org, owner=rep.user)
    assert _queries(admin, "/api/v1/reps/") == few


def test_patch_a_rep(api, org):
    rep = make_rep(org, "ann")
    body = {"capacity": 7, "weight": 3, "languages": ["EN", "pt-BR"], "industries": [" Software "],
            "seniority": "senior", "available": False,
            "working_hours": {"timezone": "Europe/Berlin", "days": [5, 1, 2], "start": "9:00", "end": "17:30"}}
    response = api.patch(f"/api/v1/reps/{rep.user_id}/", body, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["working_hours"] == {"timezone": "Europe/Berlin", "days": [1, 2, 5], "start": "09:00",
                                     "end": "17:30"}
    assert data["languages"] == ["en", "pt-br"] and data["industries"] == ["Software"]
    rep.refresh_from_db()
    assert (rep.capacity, rep.weight, rep.seniority, rep.available) == (7, 3, "senior", False)


def test_put_a_rep_and_clear_its_hours(api, org):
    rep = make_rep(org, "ann", working_hours={"timezone": "UTC", "days": [1], "start": "08:00", "end": "12:00"})
    response = api.put(f"/api/v1/reps/{rep.user_id}/", {"capacity": 9, "working_hours": {}}, format="json")
    assert response.status_code == 200, response.json()
    rep.refresh_from_db()
    assert rep.capacity == 9 and rep.working_hours == {}


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"weight": -1}, "weight", "Between 0 and 100"),
    ({"weight": 101}, "weight", "Between 0 and 100"),
    ({"capacity": 0}, "capacity", "no fallback"),
    ({"capacity": -3}, "capacity", "greater than or equal to 0"),
    ({"working_hours": {"timezone": "UTC", "days": [1], "start": "17:00", "end": "09:00"}}, "working_hours.end",
     "after the start"),
    ({"working_hours": {"timezone": "Mars/Base", "days": [1], "start": "09:00", "end": "17:00"}},
     "working_hours.timezone", "IANA"),
    ({"working_hours": {"timezone": "UTC", "days": [0], "start": "09:00", "end": "17:00"}}, "working_hours.days",
     "1 (Monday) to 7"),
    ({"working_hours": {"timezone": "UTC", "days": [1], "start": "25:00", "end": "26:00"}},
     "working_hours.start", "HH:MM"),
    ({"working_hours": "nine to five"}, "working_hours", "{}"),
    ({"territories": ["California"]}, "territories", "country code"),
    ({"languages": ["english!"]}, "languages", "language code"),
    ({"seniority": "guru"}, "seniority", "valid choice"),
    ({"user": "other@acme.test"}, "user", "read-only"),
    ({"open_leads": 0}, "open_leads", "read-only"),
    ({"colour": "red"}, "colour", "Unknown"),
])
def test_bad_rep_settings_are_refused_per_field(api, org, body, field, words):
    rep = make_rep(org, "ann")
    before = RepProfile.objects.filter(pk=rep.pk).values().get()
    errors = errors_of(api.patch(f"/api/v1/reps/{rep.user_id}/", body, format="json"))
    assert field in errors, errors
    assert words in " ".join(errors[field])
    assert RepProfile.objects.filter(pk=rep.pk).values().get() == before


def test_capacity_zero_is_fine_once_a_fallback_exists(api, org):
    rep = make_rep(org, "ann")
    make_rule(org, "Catch all", strategy="pool", team=make_team(org, "Desk", []), is_fallback=True)
    response = api.patch(f"/api/v1/reps/{rep.user_id}/", {"capacity": 0}, format="json")
    assert response.status_code == 200
    assert response.json()["capacity"] == 0


def test_reps_are_found_by_user_id_and_only_in_this_org(api, org, rival_rep, member):
    marketer = member(Role.MARKETER)
    assert api.get(f"/api/v1/reps/{rival_rep.user_id}/").status_code == 404
    assert api.get(f"/api/v1/reps/{marketer.pk}/").status_code == 404  # a member, but no rep
    assert api.get("/api/v1/reps/abc/").status_code == 404
    assert api.post("/api/v1/reps/", {}, format="json").status_code == 405
    rep = make_rep(org)
    assert api.delete(f"/api/v1/reps/{rep.user_id}/").status_code == 405


def test_a_rep_reads_the_assignment_history_of_their_own_leads_only(org):
    rep, other = make_rep(org, "ann"), make_rep(org, "bob")
    mine, theirs = make_lead(org, owner=rep.user), make_lead(org, owner=other.user)
    assert session(rep.user).get(f"/api/v1/leads/{mine.pk}/assignments/").status_code == 200
    assert session(rep.user).get(f"/api/v1/leads/{theirs.pk}/assignments/").status_code == 404


@pytest.mark.parametrize(("method", "url", "body"), [
    ("get", "/api/v1/reps/", None),
    ("patch", "/api/v1/reps/{me}/", {"capacity": 500}),
    ("get", "/api/v1/teams/", None),
    ("post", "/api/v1/teams/", {"name": "Mine"}),
    ("get", "/api/v1/assignment-rules/", None),
    ("post", "/api/v1/assignment-rules/", {"name": "Mine", "action": {"type": "rep", "rep": "{me}"}}),
    ("post", "/api/v1/leads/{lead}/route/", None),
    ("post", "/api/v1/leads/reassign/", {"leads": ["{lead}"], "rep": "{me}"}),
])
def test_reps_cannot_reach_the_configuration(org, method, url, body):
    rep = make_rep(org, "ann")
    lead = make_lead(org, owner=rep.user)
    fill = {"me": rep.user_id, "lead": lead.pk}
    if body:
        body = {k: (v.format(**fill) if isinstance(v, str) else v) for k, v in body.items()}
        if isinstance(body.get("action"), dict):
            body["action"] = {**body["action"], "rep": rep.user_id}
        if "leads" in body:
            body["leads"] = [str(lead.pk)]
    before = (RepProfile.objects.get(pk=rep.pk).capacity, Team.objects.count(), AssignmentRule.objects.count(),
              Assignment.objects.count())
    response = getattr(session(rep.user), method)(url.format(**fill), body, format="json")
    assert response.status_code == 403
    assert (RepProfile.objects.get(pk=rep.pk).capacity, Team.objects.count(), AssignmentRule.objects.count(),
            Assignment.objects.count()) == before


# ----------------------------------------------------------------------------------------------- teams


def test_team_crud(api, org):
    ann, ben = make_rep(org, "ann"), make_rep(org, "ben")
    boss = make_rep(org, "boss", role=Role.MANAGER)

    created = api.post("/api/v1/teams/", {"name": " West ", "manager": boss.user_id,
                                          "members": [ann.user_id, ben.user_id]}, format="json")
    assert created.status_code == 201, created.json()
    team = created.json()
    assert team["name"] == "West" and team["manager"] == boss.user_id
    assert sorted(team["members"]) == sorted([ann.user_id, ben.user_id])

    changed = api.patch(f"/api/v1/teams/{team['id']}/", {"members": [ben.user_id]}, format="json")
    assert changed.status_code == 200
    assert changed.json()["members"] == [ben.user_id] and changed.json()["name"] == "West"
    assert api.put(f"/api/v1/teams/{team['id']}/", {"name": "East"}, format="json").json()["name"] == "East"

    listed = api.get("/api/v1/teams/").json()["results"]
    assert [(t["name"], t["members"]) for t in listed] == [("East", [ben.user_id])]
    assert api.get(f"/api/v1/teams/{team['id']}/").json()["manager"] == boss.user_id

    assert api.delete(f"/api/v1/teams/{team['id']}/").status_code == 204
    assert not Team.objects.filter(pk=team["id"]).exists()


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"name": ""}, "name", "blank"),
    ({"name": "west"}, "name", "Another team"),
    ({"name": "New", "manager": "{rep}"}, "manager", "manager or admin"),
    ({"name": "New", "manager": "{rival}"}, "manager", "No such member"),
    ({"name": "New", "members": ["{rival}"]}, "members", "No such rep"),
    ({"name": "New", "members": [987654]}, "members", "No such rep"),
    ({"name": "New", "members": "{rep}"}, "members", "list"),
    ({"name": "New", "members": ["x"]}, "members", "user id"),
])
def test_bad_teams_are_refused_per_field(api, org, rival_rep, body, field, words):
    rep = make_rep(org, "ann")
    make_team(org, "West", [])
    ids = {"rep": rep.user_id, "rival": rival_rep.user_id}
    body = {k: ([ids[v[1:-1]] if isinstance(v, str) and v.startswith("{") else v for v in value]
                if isinstance(value, list) else ids.get(value[1:-1], value) if isinstance(value, str) else value)
            for k, value in body.items()}
    errors = errors_of(api.post("/api/v1/teams/", body, format="json"))
    assert field in errors, errors
    assert words in " ".join(map(str, errors[field])), errors
    assert Team.objects.for_org(org).count() == 1


def test_a_team_that_rules_use_cannot_be_deleted(api, org):
    team = make_team(org, "West", [make_rep(org)])
    make_rule(org, "Western leads", strategy="round_robin", team=team)
    response = api.delete(f"/api/v1/teams/{team.pk}/")
    assert response.status_code == 409
    assert "Western leads" in response.json()["detail"]
    assert Team.objects.filter(pk=team.pk).exists()


# ----------------------------------------------------------------------------------------------- rules


def test_rule_crud_with_the_action_as_an_object(api, org):
    ann = make_rep(org, "ann")
    team = make_team(org, "West", [ann])
    body = {"name": "Big US", "order": 10, "condition": {"all": [{"field": "country", "op": "eq", "value": "US"}]},
            "action": {"type": "rep", "rep": ann.user_id}, "sla_minutes": 15, "max_reassignments": 3,
            "respect_working_hours": True}
    created = api.post("/api/v1/assignment-rules/", body, format="json")
    assert created.status_code == 201, created.json()
    rule = created.json()
    assert rule["action"] == {"type": "rep", "rep": ann.user_id}
    assert (rule["sla_minutes"], rule["max_reassignments"], rule["active"], rule["is_fallback"]) == (15, 3, True,
                                                                                                     False)
    stored = AssignmentRule.objects.get(pk=rule["id"])
    assert stored.rep.user_id == ann.user_id and stored.team is None and stored.strategy == "rep"

    changed = api.patch(f"/api/v1/assignment-rules/{rule['id']}/",
                        {"action": {"type": "least_loaded", "team": team.pk}}, format="json")
    assert changed.status_code == 200, changed.json()
    assert changed.json()["action"] == {"type": "least_loaded", "team": team.pk}
    stored.refresh_from_db()
    assert stored.rep is None and stored.team == team and stored.strategy == "least_loaded"

    renamed = api.patch(f"/api/v1/assignment-rules/{rule['id']}/", {"name": "Big US leads"}, format="json")
    assert renamed.json()["action"] == {"type": "least_loaded", "team": team.pk}

    fallback = api.post("/api/v1/assignment-rules/", {"name": "Everyone else", "is_fallback": True,
                                                      "action": {"type": "pool", "team": team.pk}}, format="json")
    assert fallback.status_code == 201
    listed = api.get("/api/v1/assignment-rules/").json()["results"]
    assert [r["name"] for r in listed] == ["Big US leads", "Everyone else"]

    assert api.delete(f"/api/v1/assignment-rules/{rule['id']}/").status_code == 204
    assert not AssignmentRule.objects.filter(pk=rule["id"]).exists()


def test_a_rule_may_use_a_segment(api, org):
    from leads import services as lead_services

    segment = lead_services.create_segment(organization_id=org.pk, name="Hot", definition={
        "all": [{"field": "score", "op": "gt", "value": 50}]})
    team = make_team(org, "West", [make_rep(org)])
    response = api.post("/api/v1/assignment-rules/", {"name": "Hot ones", "segment": segment.pk,
                                                      "action": {"type": "round_robin", "team": team.pk}},
                        format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["segment"] == str(segment.pk) and response.json()["condition"] == {}


@pytest.fixture
def rule_setup(org, other_org):
    from leads import services as lead_services

    ann = make_rep(org, "ann")
    team = make_team(org, "West", [ann])
    gone = make_team(org, "Gone", [])
    gone_id = gone.pk
    gone.delete()
    rival_team = make_team(other_org, "Rival team", [])
    rival_segment = lead_services.create_segment(organization_id=other_org.pk, name="Theirs", kind="static")
    make_rule(org, "Fallback", strategy="pool", team=team, is_fallback=True)
    return {"rep": ann.user_id, "team": team.pk, "gone": gone_id, "rival_rep": make_rep(other_org).user_id,
            "rival_team": rival_team.pk, "rival_segment": rival_segment.pk}


ROUND_ROBIN = {"type": "round_robin", "team": "team"}


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"action": {"type": "lottery", "team": "team"}}, "action.type", "valid choice"),
    ({"action": {"team": "team"}}, "action.type", "required"),
    ({"action": {"type": "rep"}}, "action.rep", "Name the rep"),
    ({"action": {"type": "rep", "rep": "rival_rep"}}, "action.rep", "No such rep in this organization"),
    ({"action": {"type": "rep", "rep": 987654}}, "action.rep", "No such rep in this organization"),
    ({"action": {"type": "rep", "rep": "rep", "team": "team"}}, "action.team", "no team"),
    ({"action": {"type": "round_robin"}}, "action.team", "Name the team"),
    ({"action": {"type": "weighted", "team": "gone"}}, "action.team", "No such team in this organization"),
    ({"action": {"type": "pool", "team": "rival_team"}}, "action.team", "No such team in this organization"),
    ({"action": {"type": "pool", "team": "team", "owner": 1}}, "action.owner", "Unknown field"),
    ({"action": "round_robin"}, "action", "dictionary"),
    ({"action": ROUND_ROBIN, "is_fallback": True}, "is_fallback", "only one"),
    ({"action": ROUND_ROBIN, "condition": {"all": [{"field": "score", "op": "bogus", "value": 1}]}},
     "condition.all.0.op", "Unknown operator"),
    ({"action": ROUND_ROBIN, "condition": {"all": [{"field": "shoe_size", "op": "eq", "value": 1}]}},
     "condition.all.0.field", ""),
    ({"action": ROUND_ROBIN, "condition": ["country"]}, "condition", "segment definition"),
    ({"action": ROUND_ROBIN, "segment": "rival_segment"}, "segment", "No such segment"),
    ({"action": ROUND_ROBIN, "sla_minutes": 0}, "sla_minutes", "Between 1 and"),
    ({"action": ROUND_ROBIN, "max_reassignments": 11}, "max_reassignments", "Between 0 and 10"),
    ({"action": ROUND_ROBIN, "order": -1}, "order", "greater than or equal to 0"),
])
def test_bad_rules_are_refused_per_field(api, org, rule_setup, body, field, words):
    def fill(value):
        return rule_setup.get(value, value) if isinstance(value, str) else value

    body = {"name": "New rule", **body}
    if isinstance(body["action"], dict):
        body["action"] = {key: fill(value) if key != "type" else value for key, value in body["action"].items()}
    body = {key: fill(value) if key == "segment" else value for key, value in body.items()}
    count = AssignmentRule.objects.count()
    errors = errors_of(api.post("/api/v1/assignment-rules/", body, format="json"))
    assert field in errors, errors
    assert errors[field] and words in " ".join(errors[field]), errors
    assert AssignmentRule.objects.count() == count


def test_other_orgs_rep_reads_exactly_like_an_unknown_one(api, rule_setup):
    rival = api.post("/api/v1/assignment-rules/", {"name": "x", "action": {"type": "rep", "rep":
                                                                             rule_setup["rival_rep"]}}, format="json")
    unknown = api.post("/api/v1/assignment-rules/", {"name": "x", "action": {"type": "rep", "rep": 987654}},
                       format="json")
    assert rival.json() == unknown.json()


# ----------------------------------------------------------------------------------------------- route, history


def test_route_gives_the_lead_to_the_rep_who_becomes_its_owner(api, org):
    ann = make_rep(org, "ann")
    make_rule(org, "Ann takes all", strategy="rep", rep=ann)
    lead = make_lead(org)

    response = api.post(f"/api/v1/leads/{lead.pk}/route/")

    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["rep"] == ann.user_id and data["rep_email"] == "ann@acme.test"
    assert (data["reason"], data["strategy"], data["rule_name"], data["pooled"]) == ("route_now", "rep",
                                                                                      "Ann takes all", False)
    assert data["lead"] == str(lead.pk)
    assert api.get(f"/api/v1/leads/{lead.pk}/").json()["owner"] == ann.user_id


def test_route_to_a_pool_says_so(admin, org):
    team = make_team(org, "Desk", [make_rep(org)])
    make_rule(org, "Pool", strategy="pool", team=team)
    lead = make_lead(org)
    response = admin.post(f"/api/v1/leads/{lead.pk}/route/")
    assert response.status_code == 200
    assert (response.json()["rep"], response.json()["pooled"], response.json()["team"]) == (None, True, team.pk)
    assert Assignment.objects.get(lead=lead).actor.email == "owner@acme.test"


def test_route_without_a_rule_that_places_the_lead_is_409(api, org):
    lead = make_lead(org)
    response = api.post(f"/api/v1/leads/{lead.pk}/route/")
    assert response.status_code == 409
    assert "rule" in response.json()["detail"]
    make_rule(org, "Inactive", strategy="rep", rep=make_rep(org), active=False)
    assert api.post(f"/api/v1/leads/{lead.pk}/route/").status_code == 409
    assert Lead.objects.get(pk=lead.pk).owner is None


def test_route_of_a_closed_lead_is_409(api, org):
    make_rule(org, "All", strategy="rep", rep=make_rep(org))
    lead = make_lead(org, lifecycle_stage=LifecycleStage.CUSTOMER)
    response = api.post(f"/api/v1/leads/{lead.pk}/route/")
    assert response.status_code == 409
    assert "Customer" in response.json()["detail"]
    assert not Assignment.objects.exists()


def test_history_newest_first(api, org):
    ann, ben = make_rep(org, "ann"), make_rep(org, "ben")
    make_rule(org, "Ann", strategy="rep", rep=ann)
    lead = make_lead(org)
    route(lead)
    assert api.post("/api/v1/leads/reassign/", {"leads": [str(lead.pk)], "rep": ben.user_id},
                    format="json").status_code == 200

    response = api.get(f"/api/v1/leads/{lead.pk}/assignments/")

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(row["rep_email"], row["reason"]) for row in rows] == [("ben@acme.test", "manual"),
                                                                    ("ann@acme.test", "rule")]
    assert rows[0]["previous_rep"] == ann.user_id
    assert api.get("/api/v1/leads/00000000-0000-0000-0000-000000000000/assignments/").status_code == 404


# ----------------------------------------------------------------------------------------------- claim


@pytest.fixture
def pool(org):
    ann, ben, cat = make_rep(org, "ann"), make_rep(org, "ben"), make_rep(org, "cat")
    team = make_team(org, "Desk", [ann, ben])
    make_rule(org, "Pool", strategy="pool", team=team)
    lead = make_lead(org)
    route(lead)
    assert LeadRouting.objects.get(lead=lead).pooled
    return {"lead": lead, "ann": ann.user, "ben": ben.user, "cat": cat.user}


def test_claim_then_a_second_rep_is_told_who_has_it(pool):
    lead = pool["lead"]
    first = session(pool["ann"]).post(f"/api/v1/leads/{lead.pk}/claim/")
    assert first.status_code == 200, first.json()
    assert (first.json()["rep"], first.json()["reason"]) == (pool["ann"].pk, "claim")
    second = session(pool["ben"]).post(f"/api/v1/leads/{lead.pk}/claim/")
    assert second.status_code == 409
    assert second.json() == {"detail": "Already claimed by ann@acme.test.", "code": "already_claimed"}
    lead.refresh_from_db()
    assert lead.owner == pool["ann"]
    assert not LeadRouting.objects.get(lead=lead).pooled


def test_claim_needs_a_reps_session(pool, api):
    response = api.post(f"/api/v1/leads/{pool['lead'].pk}/claim/")
    assert response.status_code == 403
    assert "API key" in response.json()["detail"]
    assert Lead.objects.get(pk=pool["lead"].pk).owner is None


def test_a_lead_outside_your_teams_pools_cannot_be_claimed(pool, org, other_org):
    assert session(pool["cat"]).post(f"/api/v1/leads/{pool['lead'].pk}/claim/").status_code == 404
    rival = make_rep(other_org, "rob")
    assert session(rival.user).post(f"/api/v1/leads/{pool['lead'].pk}/claim/").status_code == 404
    unpooled = make_lead(org)
    assert session(pool["ann"]).post(f"/api/v1/leads/{unpooled.pk}/claim/").status_code == 404
    assert Lead.objects.get(pk=pool["lead"].pk).owner is None


# ----------------------------------------------------------------------------------------------- touch


@pytest.fixture
def owned(org):
    ann = make_rep(org, "ann")
    make_rule(org, "Ann", strategy="rep", rep=ann, sla_minutes=30)
    lead = make_lead(org)
    route(lead)
    assert LeadRouting.objects.get(lead=lead).sla_due_at is not None
    return lead, ann.user


def test_touch_logs_the_activity_and_stops_the_sla_clock(owned, django_capture_on_commit_callbacks):
    lead, ann = owned
    with django_capture_on_commit_callbacks(execute=True):
        response = session(ann).post(f"/api/v1/leads/{lead.pk}/touch/", {"type": "call", "note": "Left a voicemail"},
                                     format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["type"], response.json()["properties"]) == ("call", {"note": "Left a voicemail"})
    activity = Activity.objects.get(lead=lead, type="call")
    assert activity.actor == ann
    routing = LeadRouting.objects.get(lead=lead)
    assert routing.sla_due_at is None and routing.first_touch_at is not None


@pytest.mark.parametrize(("kind", "stored"), [("email", "email_logged"), ("meeting", "meeting"), ("note", "note")])
def test_touch_types_map_to_activities(owned, api, kind, stored):
    lead, _ = owned
    response = api.post(f"/api/v1/leads/{lead.pk}/touch/", {"type": kind, "note": "ok"}, format="json")
    assert response.status_code == 201
    assert Activity.objects.filter(lead=lead, type=stored, actor=None).count() == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "fax"}, "type"),
    ({"type": "note", "note": "  "}, "note"),
    ({"type": "call", "note": "x" * 10_001}, "note"),
    ({"type": "call", "note": "a\u0000b"}, "note"),
    ({"note": "hello"}, "type"),
    ({"type": "call", "when": "now"}, "when"),
])
def test_bad_touches_are_refused(owned, body, field):
    lead, ann = owned
    errors = errors_of(session(ann).post(f"/api/v1/leads/{lead.pk}/touch/", body, format="json"))
    assert field in errors
    assert not Activity.objects.filter(lead=lead, type__in=["call", "note", "meeting", "email_logged"]).exists()


def test_a_rep_touches_only_their_own_leads(owned, org):
    lead, _ = owned
    ben = make_rep(org, "ben")
    response = session(ben.user).post(f"/api/v1/leads/{lead.pk}/touch/", {"type": "call"}, format="json")
    assert response.status_code == 404
    assert not Activity.objects.filter(lead=lead, type="call").exists()
    manager = make_rep(org, "meg", role=Role.MANAGER)
    assert session(manager.user).post(f"/api/v1/leads/{lead.pk}/touch/", {"type": "call"},
                                      format="json").status_code == 201


# ----------------------------------------------------------------------------------------------- reassign


def test_managers_reassign_many_leads(org):
    ann, ben = make_rep(org, "ann"), make_rep(org, "ben")
    manager = make_rep(org, "meg", role=Role.MANAGER)
    leads = [make_lead(org, owner=ann.user) for _ in range(3)]
    response = session(manager.user).post("/api/v1/leads/reassign/", {
        "leads": [str(lead.pk) for lead in leads], "rep": ben.user_id}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["reassigned"] == 3
    assert {r["assignment"]["rep_email"] for r in body["results"]} == {"ben@acme.test"}
    assert set(Lead.objects.filter(pk__in=[lead.pk for lead in leads]).values_list("owner", flat=True)) == {
        ben.user_id}

    back = session(manager.user).post("/api/v1/leads/reassign/", {"leads": [str(leads[0].pk)], "rep": None},
                                      format="json")
    assert back.status_code == 200 and back.json()["results"][0]["assignment"]["rep"] is None
    assert Lead.objects.get(pk=leads[0].pk).owner is None


@pytest.mark.parametrize(("body", "field"), [
    ({"leads": [], "rep": None}, "leads"),
    ({"leads": ["00000000-0000-0000-0000-000000000000"], "rep": None}, "leads"),
    ({"leads": ["nope"], "rep": None}, "leads"),
    ({"leads": ["{lead}"] * 501, "rep": None}, "leads"),
    ({"leads": ["{lead}"], "rep": "{rival}"}, "rep"),
    ({"leads": ["{lead}"]}, "rep"),
])
def test_bad_reassignments_change_nothing(api, org, rival_rep, body, field):
    lead = make_lead(org, owner=make_rep(org).user)
    fill = {"{lead}": str(lead.pk), "{rival}": rival_rep.user_id}
    body = {key: [fill.get(v, v) for v in value] if isinstance(value, list) else fill.get(value, value)
            for key, value in body.items()}
    errors = errors_of(api.post("/api/v1/leads/reassign/", body, format="json"))
    assert field in errors
    assert not Assignment.objects.exists()
    assert Lead.objects.get(pk=lead.pk).owner_id is not None


def test_marketers_cannot_reassign(org, member):
    lead = make_lead(org, owner=make_rep(org).user)
    response = session(member(Role.MARKETER)).post("/api/v1/leads/reassign/", {"leads": [str(lead.pk)],
                                                                                "rep": None}, format="json")
    assert response.status_code == 403


# ----------------------------------------------------------------------------------------------- queue


@pytest.fixture
def queue_of_ann(org):
    ann = make_rep(org, "ann").user
    now = timezone.now()
    cold = make_lead(org, owner=ann, first_name="Cold", temperature=Temperature.COLD, score=90)
    hot = make_lead(org, owner=ann, first_name="Hot", temperature=Temperature.HOT, score=10)
    overdue = make_lead(org, owner=ann, first_name="Late", temperature=Temperature.COLD)
    LeadRouting.objects.create(organization=org, lead=overdue, sla_due_at=now - timedelta(minutes=5))
    make_lead(org, owner=ann, lifecycle_stage=LifecycleStage.CUSTOMER)  # closed: not in the queue
    make_lead(org, owner=make_rep(org, "ben").user)  # someone else's
    return ann, [overdue, hot, cold]


def test_queue_in_priority_order(queue_of_ann):
    ann, expected = queue_of_ann
    response = session(ann).get("/api/v1/queue/")
    assert response.status_code == 200
    body = response.json()
    assert body["rep"] == ann.pk and body["count"] == 3
    assert [row["id"] for row in body["results"]] == [str(lead.pk) for lead in expected]
    late, hot, cold = body["results"]
    assert late["overdue"] is True and -330 < late["sla_seconds_left"] < -290
    assert late["name"] == "Late" and late["lifecycle_stage"] == "mql"
    assert hot["overdue"] is False and hot["sla_seconds_left"] is None and hot["temperature"] == "hot"
    assert {"email", "company", "score", "grade", "last_activity_at", "created_at", "sla_due_at"} <= set(cold)


def test_a_rep_reads_only_their_own_queue(queue_of_ann, org):
    ann, _ = queue_of_ann
    ben = RepProfile.objects.get(user__email="ben@acme.test").user
    assert session(ben).get(f"/api/v1/queue/?rep={ann.pk}").status_code == 404
    own = session(ben).get(f"/api/v1/queue/?rep={ben.pk}")
    assert own.status_code == 200 and own.json()["count"] == 1
    assert session(ann).get(f"/api/v1/queue/?rep={ann.pk}").json()["count"] == 3


def test_admin_keys_and_admins_read_any_reps_queue_managers_their_teams(queue_of_ann, api, admin, org, rival_rep):
    ann, _ = queue_of_ann
    assert api.get(f"/api/v1/queue/?rep={ann.pk}").json()["count"] == 3
    assert admin.get(f"/api/v1/queue/?rep={ann.pk}").json()["count"] == 3
    manager = make_rep(org, "meg", role=Role.MANAGER)
    assert session(manager.user).get(f"/api/v1/queue/?rep={ann.pk}").status_code == 404  # not in a team of hers
    make_team(org, "Meg's", [RepProfile.objects.get(user=ann)], manager=manager.user)
    assert session(manager.user).get(f"/api/v1/queue/?rep={ann.pk}").json()["rep"] == ann.pk
    assert api.get(f"/api/v1/queue/?rep={rival_rep.user_id}").status_code == 404
    assert api.get("/api/v1/queue/?rep=99999999999999999").status_code == 404
    assert "rep" in errors_of(api.get("/api/v1/queue/"))
    assert "rep" in errors_of(api.get("/api/v1/queue/?rep=ann"))


def test_the_queue_is_capped(org, settings):
    ann = make_rep(org, "ann")
    Lead.objects.bulk_create([Lead(organization=org, email=f"q{i}@example.test", owner=ann.user,
                                   lifecycle_stage=LifecycleStage.LEAD) for i in range(selectors.QUEUE_LIMIT + 3)])
    body = session(ann.user).get("/api/v1/queue/").json()
    assert body["count"] == selectors.QUEUE_LIMIT + 3
    assert len(body["results"]) == selectors.QUEUE_LIMIT


def test_queue_query_count_does_not_grow_with_leads(org):
    ann = make_rep(org, "ann")
    client = session(ann.user)
    make_lead(org, owner=ann.user)
    few = _queries(client, "/api/v1/queue/")
    for index in range(15):
        lead = make_lead(org, owner=ann.user, temperature=Temperature.HOT)
        LeadRouting.objects.create(organization=org, lead=lead, sla_due_at=timezone.now() + timedelta(minutes=index))
    assert _queries(client, "/api/v1/queue/") == few


def test_the_schema_describes_the_routing_api():
    schema = APIClient().get("/api/schema/?format=json").json()
    for path in ("/api/v1/reps/", "/api/v1/teams/{id}/", "/api/v1/assignment-rules/", "/api/v1/leads/{id}/route/",
                 "/api/v1/leads/{id}/claim/", "/api/v1/leads/{id}/touch/", "/api/v1/queue/",
                 "/api/v1/leads/reassign/", "/api/v1/leads/{id}/assignments/"):
        assert path in schema["paths"], path
    action = schema["components"]["schemas"]["RuleAction"]["properties"]
    assert set(schema["components"]["schemas"]["RoutingStrategyEnum"]["enum"]) == {
        "rep", "round_robin", "weighted", "least_loaded", "pool"}
    assert {"type", "rep", "team"} <= set(action)


def test_a_repeated_touch_with_the_same_idempotency_key_logs_once(owned, api):
    lead, _ = owned
    url = f"/api/v1/leads/{lead.pk}/touch/"
    first = api.post(url, {"type": "meeting", "note": "Demo"}, format="json", HTTP_IDEMPOTENCY_KEY="touch-1")
    again = api.post(url, {"type": "meeting", "note": "Demo"}, format="json", HTTP_IDEMPOTENCY_KEY="touch-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert Activity.objects.filter(lead=lead, type="meeting").count() == 1


@pytest.mark.parametrize("url", [
    "/api/v1/reps/99999999999999999999999/", "/api/v1/teams/99999999999999999999999/",
    "/api/v1/assignment-rules/99999999999999999999999/", "/api/v1/teams/abc/",
    "/api/v1/queue/?rep=%00", "/api/v1/queue/?rep=-1", "/api/v1/queue/?rep=99999999999999999999999",
    "/api/v1/reps/?cursor=%00", "/api/v1/assignment-rules/?ordering=%00", "/api/v1/teams/?search=%00",
])
def test_odd_ids_and_query_strings_never_500(api, url):
    assert api.get(url).status_code in (200, 400, 404)


def test_a_manager_claims_from_the_pool_of_a_team_they_manage_but_not_of_another(org):
    manager = make_rep(org, "meg", role=Role.MANAGER)
    managed = make_team(org, "Inbound", [make_rep(org, "ann")], manager=manager.user)
    other = make_team(org, "Outbound", [make_rep(org, "bob")])
    make_rule(org, "to the pool", strategy="pool", team=managed, is_fallback=True)
    mine, theirs = make_lead(org), make_lead(org)
    route(mine)
    route(theirs)
    LeadRouting.objects.filter(lead=theirs).update(team=other)

    assert session(manager.user).post(f"/api/v1/leads/{theirs.pk}/claim/").status_code == 404
    claimed = session(manager.user).post(f"/api/v1/leads/{mine.pk}/claim/")
    assert claimed.status_code == 200 and Lead.objects.get(pk=mine.pk).owner == manager.user
    with pytest.raises(services.ClaimRefused, match="do not manage"):
        services.claim(organization_id=org.pk, lead_id=theirs.pk, user=manager.user)
