"""Settings → Routing in the browser: the rep profiles, teams and assignment rules pages. Changes go through the
same services as the API (the same checks, shown as form errors at their fields, never a server error; the same
audit entries); the pages are for the roles the policy gives Action.ROUTING; list pages cost a fixed number of
queries however many rows they show."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from leadcrm.models import AuditEntry, Role
from leads import services as lead_services
from leads.models import Lead, LifecycleStage
from routing.models import AssignmentRule, RepProfile, Team, TeamMember
from tests.routing import make_lead, make_rep, make_rule, make_team

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
DE = {"all": [{"field": "country", "op": "eq", "value": "DE"}]}


@pytest.fixture
def admin(org):
    return org.memberships.get(role=Role.ADMIN).user


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


def entries(org, model):
    return AuditEntry.objects.filter(organization=org, object_type=f"routing.{model}").order_by("time", "pk")


def field_errors(response, field: str) -> str:
    """The text of the error list under a form field (by its id), or ""."""
    match = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', response.content.decode(), re.S)
    return re.sub(r"<[^>]+>", " ", match.group(1)) if match else ""


REP_FORM = {"capacity": "20", "weight": "1", "available": "on", "away_until": "", "hours_timezone": "",
            "hours_start": "", "hours_end": "", "territories": "", "industries": "", "languages": "",
            "seniority": ""}


# --------------------------------------------------------------------------------------------- reps


def test_reps_page_shows_capacity_load_away_hours_and_what_each_sells(org, admin_client):
    rita = make_rep(org, "rita", capacity=2, territories=["DE", "AT"], languages=["de"], industries=["Software"],
                    working_hours={"timezone": "Europe/Berlin", "days": [1, 2, 3, 4, 5], "start": "09:00",
                                   "end": "17:00"})
    away = make_rep(org, "otto", away_until=timezone.now() + timedelta(days=3))
    paused = make_rep(org, "paula", available=False)
    make_team(org, "DACH <sales>", [rita])
    for _ in range(2):
        make_lead(org, owner=rita.user)
    make_lead(org, owner=rita.user, lifecycle_stage=LifecycleStage.CUSTOMER)  # closed: not load

    response = admin_client.get("/settings/routing/reps/")

    assert response.status_code == 200
    row = _row(response, f"rep-{rita.user_id}")
    assert "2 / 2" in row and "full" in row
    assert "Mon–Fri 09:00–17:00 (Europe/Berlin)" in row
    assert "Territories: AT, DE" in row and "Languages: de" in row and "Industries: Software" in row
    assert "DACH &lt;sales&gt;" in row
    assert "Away until" in _row(response, f"rep-{away.user_id}")
    assert "Paused" in _row(response, f"rep-{paused.user_id}")
    assert "Takes leads" in row


def _row(response, row_id) -> str:
    content = response.content.decode()
    start = content.index(f'id="{row_id}"')
    return content[start:content.index("</tr>", start)]


def test_reps_page_costs_the_same_for_many_reps(org, admin_client, django_assert_max_num_queries):
    team = make_team(org, "Sales", [make_rep(org)])
    with django_assert_max_num_queries(20) as few:
        admin_client.get("/settings/routing/reps/")
    reps = [make_rep(org, capacity=5) for _ in range(8)]
    TeamMember.objects.bulk_create([TeamMember(organization=org, team=team, rep=rep) for rep in reps])
    for rep in reps:
        make_lead(org, owner=rep.user)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get("/settings/routing/reps/")
    assert response.content.decode().count('id="rep-') == 9


def test_a_rep_profile_is_saved_from_the_form_and_audited(org, admin, admin_client):
    rita = make_rep(org, "rita")
    form = {**REP_FORM, "capacity": "12", "weight": "3", "away_until": "2030-01-15T09:00",
            "hours_timezone": "Europe/Berlin", "hours_days": ["1", "2", "3"], "hours_start": "08:30",
            "hours_end": "16:00", "territories": "de, us-ca", "languages": "DE, en", "industries": "Software",
            "seniority": "senior"}

    response = admin_client.post(f"/settings/routing/reps/{rita.user_id}/", form)

    assert response.status_code == 302 and response["Location"].endswith(f"#rep-{rita.user_id}")
    rita.refresh_from_db()
    assert (rita.capacity, rita.weight, rita.available) == (12, 3, True)
    assert rita.away_until.isoformat().startswith("2030-01-15T09:00")
    assert rita.working_hours == {"timezone": "Europe/Berlin", "days": [1, 2, 3], "start": "08:30", "end": "16:00"}
    assert rita.territories == ["DE", "US-CA"] and rita.languages == ["de", "en"]
    entry, = entries(org, "repprofile")
    assert entry.actor == admin and entry.changes["capacity"] == [50, 12]

    # The form sent again as it is shown changes nothing and records nothing.
    shown = admin_client.get(f"/settings/routing/reps/{rita.user_id}/").content.decode()
    assert 'value="2030-01-15T09:00"' in shown and 'value="DE, US-CA"' in shown
    assert admin_client.post(f"/settings/routing/reps/{rita.user_id}/", {
        **form, "territories": "DE, US-CA", "languages": "de, en"}).status_code == 302
    assert entries(org, "repprofile").count() == 1


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"capacity": "-1"}, "capacity", "greater than or equal to 0"),
    ({"capacity": "lots"}, "capacity", "Enter a whole number"),
    ({"capacity": "0"}, "capacity", "no fallback rule"),
    ({"weight": "500"}, "weight", "Between 0 and 100"),
    ({"weight": ""}, "weight", "This field is required"),
    ({"territories": "Germany"}, "territories", "Not a country code"),
    ({"languages": "english!"}, "languages", "Not a language code"),
    ({"away_until": "next week"}, "away_until", "Enter a valid date/time"),
    ({"hours_timezone": "Mars/Olympus"}, "hours_timezone", "Select a valid choice"),
    ({"hours_timezone": "Europe/Berlin"}, "hours_days", "Needed for working hours"),
    ({"hours_timezone": "Europe/Berlin", "hours_days": ["1"], "hours_start": "17:00", "hours_end": "09:00"},
     "hours_end", "The end must come after the start"),
    ({"hours_days": ["9"]}, "hours_days", "Select a valid choice"),
    ({"seniority": "god"}, "seniority", "Select a valid choice"),
])
def test_a_rep_profile_that_makes_no_sense_is_refused_at_its_field(org, admin_client, changes, field, message):
    rita = make_rep(org, "rita")

    response = admin_client.post(f"/settings/routing/reps/{rita.user_id}/", {**REP_FORM, **changes})

    assert response.status_code == 400
    assert message in field_errors(response, field), response.content.decode()[:3000]
    assert 'aria-invalid="true"' in response.content.decode()
    rita.refresh_from_db()
    assert rita.capacity == 50 and not entries(org, "repprofile").exists()


def test_capacity_zero_is_taken_once_there_is_a_fallback(org, admin_client):
    rita = make_rep(org, "rita")
    make_rule(org, "everyone", strategy="pool", team=make_team(org, "Sales", [rita]), is_fallback=True)
    response = admin_client.post(f"/settings/routing/reps/{rita.user_id}/", {**REP_FORM, "capacity": "0"})
    assert response.status_code == 302
    rita.refresh_from_db()
    assert rita.capacity == 0


def test_an_empty_capacity_means_no_limit(org, admin_client):
    rita = make_rep(org, "rita")
    assert admin_client.post(f"/settings/routing/reps/{rita.user_id}/",
                             {**REP_FORM, "capacity": ""}).status_code == 302
    rita.refresh_from_db()
    assert rita.capacity is None
    assert "0 / no limit" in _row(admin_client.get("/settings/routing/reps/"), f"rep-{rita.user_id}")


def test_another_orgs_rep_and_a_former_member_are_not_found(org, other_org, admin_client):
    stranger = make_rep(other_org, "stranger")
    assert admin_client.get(f"/settings/routing/reps/{stranger.user_id}/").status_code == 404
    assert admin_client.post(f"/settings/routing/reps/{stranger.user_id}/", REP_FORM).status_code == 404
    assert RepProfile.objects.get(pk=stranger.pk).capacity == 50


# --------------------------------------------------------------------------------------------- teams


def test_a_team_is_made_changed_and_deleted_from_its_pages(org, admin, admin_client):
    rita, sam = make_rep(org, "rita"), make_rep(org, "sam")
    manager = make_rep(org, "mona", role=Role.MANAGER)

    response = admin_client.post("/settings/routing/teams/new/", {
        "name": " DACH ", "manager": str(manager.user_id), "members": [str(rita.user_id), str(sam.user_id)]})

    team = Team.objects.get(organization=org)
    assert response.status_code == 302 and response["Location"].endswith(f"#team-{team.pk}")
    assert team.name == "DACH" and team.manager == manager.user
    assert set(team.members.all()) == {rita, sam}
    listed = admin_client.get("/settings/routing/teams/").content.decode()
    assert "2: rita@acme.test, sam@acme.test" in listed and "mona@acme.test" in listed

    edit = admin_client.get(f"/settings/routing/teams/{team.pk}/").content.decode()
    assert re.search(rf'value="{rita.user_id}"[^>]*checked', edit)
    assert admin_client.post(f"/settings/routing/teams/{team.pk}/", {
        "name": "DACH", "manager": "", "members": [str(sam.user_id)]}).status_code == 302
    team.refresh_from_db()
    assert team.manager is None and list(team.members.all()) == [sam]

    assert "cannot be undone" in admin_client.get(f"/settings/routing/teams/{team.pk}/delete/").content.decode()
    assert admin_client.post(f"/settings/routing/teams/{team.pk}/delete/").status_code == 302
    assert not Team.objects.filter(pk=team.pk).exists()
    assert [entry.action for entry in entries(org, "team")] == ["created", "updated", "deleted"]
    assert all(entry.actor == admin for entry in entries(org, "team"))


@pytest.mark.parametrize(("form", "field", "message"), [
    ({"name": ""}, "name", "This field is required"),
    ({"name": "   "}, "name", "This field is required"),
    ({"name": "sales"}, "name", "Another team has this name"),
    ({"name": "New", "manager": "{rep}"}, "manager", "Select a valid choice"),
    ({"name": "New", "members": ["999999"]}, "members", "Select a valid choice"),
])
def test_a_team_that_makes_no_sense_is_refused_at_its_field(org, admin_client, form, field, message):
    rita = make_rep(org, "rita")
    make_team(org, "Sales", [rita])
    form = {key: value.format(rep=rita.user_id) if isinstance(value, str) else value for key, value in form.items()}

    response = admin_client.post("/settings/routing/teams/new/", form)

    assert response.status_code == 400
    assert message in field_errors(response, field), response.content.decode()[:3000]
    assert Team.objects.filter(organization=org).count() == 1


def test_a_team_rules_send_leads_to_is_kept_and_the_page_says_which(org, admin_client):
    team = make_team(org, "Sales", [make_rep(org)])
    make_rule(org, "Germans <first>", team=team, condition=DE)

    page = admin_client.get(f"/settings/routing/teams/{team.pk}/delete/").content.decode()
    assert "Germans &lt;first&gt;" in page and "Delete team</button>" not in page

    response = admin_client.post(f"/settings/routing/teams/{team.pk}/delete/")
    assert response.status_code == 409
    assert "Assignment rules send leads to this team" in response.content.decode()
    assert Team.objects.filter(pk=team.pk).exists()


def test_teams_page_costs_the_same_for_many_teams(org, admin_client, django_assert_max_num_queries):
    make_team(org, "Team 0", [make_rep(org)])
    with django_assert_max_num_queries(20) as few:
        admin_client.get("/settings/routing/teams/")
    for number in range(1, 8):
        team = make_team(org, f"Team {number}", [make_rep(org), make_rep(org)], manager=make_rep(
            org, role=Role.MANAGER).user)
        make_rule(org, f"rule {number}", team=team)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get("/settings/routing/teams/")
    assert response.content.decode().count('id="team-') == 8


# --------------------------------------------------------------------------------------------- rules


def rule_form(team=None, **fields):
    form = {"name": "Germans", "active": "on", "definition": json.dumps(DE), "segment": "",
            "strategy": "round_robin", "team": str(team.pk) if team else "", "rep": "", "match_profile": "on",
            "sla_minutes": "30", "max_reassignments": "2"}
    form.update(fields)
    return {key: value for key, value in form.items() if value is not None}


def test_a_rule_is_made_from_the_form_after_the_others_and_audited(org, admin, admin_client):
    team = make_team(org, "Sales", [make_rep(org)])
    older = make_rule(org, "older", team=team, order=40)
    fallback = make_rule(org, "fallback", strategy="pool", team=team, is_fallback=True, order=999)

    response = admin_client.post("/settings/routing/rules/new/", rule_form(team, definition=json.dumps(
        {"all": [*DE["all"], {"field": "score", "op": "gte", "value": 50}]})))

    rule = AssignmentRule.objects.get(organization=org, name="Germans")
    assert response.status_code == 302 and response["Location"].endswith(f"#rule-{rule.pk}")
    assert rule.order == older.order + 10
    assert rule.condition["all"][1] == {"field": "score", "op": "gte", "value": 50}
    assert (rule.strategy, rule.team, rule.sla_minutes, rule.rep) == ("round_robin", team, 30, None)
    assert entries(org, "assignmentrule").last().actor == admin
    listed = admin_client.get("/settings/routing/").content.decode()
    assert listed.index(">older<") < listed.index(">Germans<") < listed.index(">fallback<")
    assert "Score is at least 50" in listed and "Round robin in a team: <strong>Sales</strong>" in listed
    assert fallback.pk  # the fallback stays last whatever its order


def test_an_empty_builder_is_every_lead_and_the_target_the_strategy_does_not_use_is_ignored(org, admin_client):
    team = make_team(org, "Sales", [make_rep(org)])
    rita = make_rep(org, "rita")
    response = admin_client.post("/settings/routing/rules/new/", rule_form(
        team, definition='{"all": []}', strategy="rep", rep=str(rita.user_id)))
    assert response.status_code == 302
    rule = AssignmentRule.objects.get(organization=org)
    assert rule.condition == {} and rule.rep == rita and rule.team is None
    assert "Every lead" in admin_client.get("/settings/routing/").content.decode()


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"name": ""}, "name", "This field is required"),
    ({"definition": "{not json"}, "definition", "Not a definition"),
    ({"definition": json.dumps({"all": [{"field": "country", "op": "gt", "value": "DE"}]})}, "definition",
     "all.0.op"),
    ({"definition": json.dumps({"all": [{"field": "shoe_size", "op": "eq", "value": 9}]})}, "definition",
     "all.0.field"),
    ({"team": ""}, "team", "Name the team"),
    ({"strategy": "rep"}, "rep", "Name the rep"),
    ({"strategy": "telepathy"}, "strategy", "Select a valid choice"),
    ({"sla_minutes": "0"}, "sla_minutes", "Between 1 and 10080"),
    ({"sla_minutes": "99999999999"}, "sla_minutes", "less than or equal to"),
    ({"max_reassignments": "11"}, "max_reassignments", "Between 0 and 10"),
    ({"is_fallback": "on"}, "is_fallback", "it has no condition"),
    ({"segment": "{segment}"}, "definition", "not both"),
])
def test_a_rule_that_makes_no_sense_is_refused_at_its_field(org, admin_client, fields, field, message):
    team = make_team(org, "Sales", [make_rep(org)])
    segment = lead_services.create_segment(organization_id=org.pk, name="Hot", definition={
        "all": [{"field": "score", "op": "gt", "value": 80}]})
    fields = {key: value.replace("{segment}", str(segment.pk)) for key, value in fields.items()}

    response = admin_client.post("/settings/routing/rules/new/", {**rule_form(team), **fields})

    assert response.status_code == 400
    assert message in field_errors(response, field), response.content.decode()[:4000]
    assert not AssignmentRule.objects.filter(organization=org).exists()
    assert 'data-segment-builder' in response.content.decode()  # the builder is shown again


def test_only_one_fallback_rule_as_over_the_api(org, admin_client):
    team = make_team(org, "Sales", [make_rep(org)])
    make_rule(org, "catch all", strategy="pool", team=team, is_fallback=True)
    response = admin_client.post("/settings/routing/rules/new/", rule_form(
        team, definition="", is_fallback="on", name="second catch all"))
    assert response.status_code == 400
    assert "already has a fallback rule" in field_errors(response, "is_fallback")


def test_a_rule_is_edited_deleted_and_its_builder_shows_its_conditions(org, admin_client):
    team = make_team(org, "Sales", [make_rep(org)])
    rule = make_rule(org, "Germans", team=team, condition=DE, sla_minutes=15)

    page = admin_client.get(f"/settings/routing/rules/{rule.pk}/").content.decode()
    assert re.search(r'<option value="country"[^>]*selected', page) and 'value="DE"' in page
    assert admin_client.post(f"/settings/routing/rules/{rule.pk}/", rule_form(
        team, name="Germans", active=None, sla_minutes="")).status_code == 302
    rule.refresh_from_db()
    assert not rule.active and rule.sla_minutes is None

    assert admin_client.get(f"/settings/routing/rules/{rule.pk}/delete/").status_code == 200
    assert admin_client.post(f"/settings/routing/rules/{rule.pk}/delete/").status_code == 302
    assert not AssignmentRule.objects.filter(pk=rule.pk).exists()
    assert [entry.action for entry in entries(org, "assignmentrule")] == ["created", "updated", "deleted"]


def test_json_shown_in_the_builder_saves_nothing(org, admin_client):
    team = make_team(org, "Sales", [make_rep(org)])
    response = admin_client.post("/settings/routing/rules/new/", {**rule_form(team), "load_json": "1"})
    assert response.status_code == 200
    assert re.search(r'<option value="country"[^>]*selected', response.content.decode())
    assert not AssignmentRule.objects.exists()


def _places(client) -> list[str]:
    content = client.get("/settings/routing/").content.decode()
    return re.findall(r'<a href="/settings/routing/rules/\d+/"><strong>([^<]+)</strong>', content)


def test_rules_move_up_and_down_the_fallback_staying_last(org, admin, admin_client):
    team = make_team(org, "Sales", [make_rep(org)])
    # Rules made over the API all get the default order: they are numbered when one moves.
    first, second, third = (make_rule(org, name, team=team) for name in ("first", "second", "third"))
    make_rule(org, "fallback", strategy="pool", team=team, is_fallback=True)
    assert _places(admin_client) == ["first", "second", "third", "fallback"]

    response = admin_client.post(f"/settings/routing/rules/{third.pk}/move/", {"direction": "up"})
    assert response.status_code == 302 and response["Location"].endswith(f"#rule-{third.pk}")
    assert _places(admin_client) == ["first", "third", "second", "fallback"]
    assert list(AssignmentRule.objects.filter(is_fallback=False).order_by("order").values_list("order", flat=True)) \
        == [10, 20, 30]
    assert all(entry.actor == admin for entry in entries(org, "assignmentrule").filter(action="updated"))

    response = admin_client.post(f"/settings/routing/rules/{first.pk}/move/", {"direction": "down"}, **HTMX)
    assert response.status_code == 200
    content = response.content.decode()
    assert content.startswith('<div id="rules">') and "“first” moved down to place 2." in content
    assert 'hx-swap-oob="innerHTML"' in content
    assert _places(admin_client) == ["third", "first", "second", "fallback"]

    before = entries(org, "assignmentrule").count()
    response = admin_client.post(f"/settings/routing/rules/{third.pk}/move/", {"direction": "up"}, **HTMX)
    assert "“third” is already first." in response.content.decode()
    assert entries(org, "assignmentrule").count() == before

    fallback = AssignmentRule.objects.get(is_fallback=True)
    assert admin_client.post(f"/settings/routing/rules/{fallback.pk}/move/", {"direction": "up"}).status_code == 404
    assert admin_client.post(f"/settings/routing/rules/{first.pk}/move/", {"direction": "sideways"}).status_code \
        == 404


def test_a_moved_rule_is_the_one_that_places_the_lead(org, admin_client):
    rita, sam = make_rep(org, "rita"), make_rep(org, "sam")
    make_rule(org, "Germans to Rita", strategy="rep", rep=rita, condition=DE, order=10)
    rule = make_rule(org, "Germans to Sam", strategy="rep", rep=sam, condition=DE, order=20)
    admin_client.post(f"/settings/routing/rules/{rule.pk}/move/", {"direction": "up"})
    lead = make_lead(org, country="DE")
    from routing import services

    services.route_lead(organization_id=org.pk, lead_id=lead.pk)
    assert Lead.objects.get(pk=lead.pk).owner == sam.user


def test_rules_page_costs_the_same_for_many_rules(org, admin_client, django_assert_max_num_queries):
    team = make_team(org, "Sales", [make_rep(org)])
    make_rule(org, "rule 0", team=team, condition=DE)
    with django_assert_max_num_queries(20) as few:
        admin_client.get("/settings/routing/")
    lists = lead_services.create_segment(organization_id=org.pk, name="VIPs", kind="static")
    for number in range(1, 8):
        make_rule(org, f"rule {number}", team=make_team(org, f"Team {number}", [make_rep(org)]), condition={
            "all": [{"list": str(lists.pk), "member": True}]})
    make_rule(org, "to a rep", strategy="rep", rep=make_rep(org))
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get("/settings/routing/")
    assert response.content.decode().count('<tr id="rule-') == 9
    assert "Is in the list “VIPs”" in response.content.decode()


def test_the_pages_escape_names(org, admin_client):
    team = make_team(org, "<b>Team</b>", [make_rep(org)])
    make_rule(org, "<script>alert(1)</script>", team=team, condition={
        "all": [{"field": "company", "op": "eq", "value": "<img src=x>"}]})
    for url in ("/settings/routing/", "/settings/routing/teams/", f"/settings/routing/teams/{team.pk}/delete/"):
        content = admin_client.get(url).content.decode()
        assert "<script>alert(1)" not in content and "<b>Team</b>" not in content and "<img src=x>" not in content


def test_reps_and_teams_come_in_keyset_pages_by_email_and_name(org, admin_client, monkeypatch):
    from routing import config_views

    monkeypatch.setattr(config_views, "PAGE_SIZE", 2)
    for name in ("dora", "alma", "cleo", "bea", "emil"):
        make_team(org, f"Team {name}", [make_rep(org, name)])
    pages = {"/settings/routing/reps/": r'<td data-label="Rep"><a [^>]+><strong>(\w+)@',
             "/settings/routing/teams/": r'<td data-label="Team"><a [^>]+><strong>Team (\w+)<'}
    for url, pattern in pages.items():
        seen, next_url = [], url
        while next_url:
            response = admin_client.get(next_url)
            assert response.status_code == 200
            seen += re.findall(pattern, response.content.decode())
            match = re.search(r'<a href="([^"]+)" rel="next">', response.content.decode())
            next_url = match.group(1).replace("&amp;", "&") if match else None
        assert seen == ["alma", "bea", "cleo", "dora", "emil"], url
