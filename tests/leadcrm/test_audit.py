"""The audit log: each audited object changed through the API, the browser pages and Django admin leaves an entry
with who, what and before/after; only org admins (and API keys) read it."""

import re
from html import unescape

import pytest
from django.contrib.auth import get_user_model

from leadcrm import services as core
from leadcrm.models import ApiKey, AuditEntry, Membership, Role
from nurturing import services as nurturing
from routing.models import AssignmentRule, RepProfile, Team
from scoring.models import ScoringRule
from tests.routing import make_rep, make_rule, make_team

pytestmark = pytest.mark.django_db


def entries(org, object_type=None, **filters):
    queryset = AuditEntry.objects.for_org(org).order_by("time", "id")
    if object_type:
        queryset = queryset.filter(object_type=object_type)
    return list(queryset.filter(**filters))


def last(org, object_type):
    found = entries(org, object_type)
    assert found, f"no audit entry for {object_type}"
    return found[-1]


@pytest.fixture
def admin_client(client, org):
    client.force_login(Membership.objects.get(organization=org, role=Role.ADMIN).user)
    return client


# --------------------------------------------------------------------------------------------------- API


def test_scoring_rule_through_the_api(org, api):
    created = api.post("/api/v1/scoring-rules/", {"name": "Big company", "kind": "fit", "points": 10, "condition": {
        "field": "company_size", "op": "gte", "value": 500}}, format="json")
    assert created.status_code == 201
    entry = last(org, "scoring.scoringrule")
    assert (entry.action, entry.actor_label, entry.object_label) == ("created", "API key test", "Big company")
    assert entry.changes["points"] == [None, 10]

    assert api.patch(f"/api/v1/scoring-rules/{created.json()['id']}/", {"points": 25}, format="json").status_code == 200
    entry = last(org, "scoring.scoringrule")
    assert entry.action == "updated" and entry.changes == {"points": [10, 25]}

    assert api.delete(f"/api/v1/scoring-rules/{created.json()['id']}/").status_code == 204
    entry = last(org, "scoring.scoringrule")
    assert entry.action == "deleted" and entry.changes["points"] == [25, None]
    assert entry.object_id == created.json()["id"]


def test_scoring_settings_and_grade_bands_through_the_api(org, api):
    response = api.patch("/api/v1/scoring-settings/", {"mql_score": 70, "grade_bands": {"A": 50, "B": 35, "C": 20,
                                                                                          "D": 0}}, format="json")
    assert response.status_code == 200
    entry = last(org, "scoring.scoringsettings")
    assert entry.changes["mql_score"] == [50, 70]
    assert entry.changes["grade_bands"][1]["A"] == 50
    assert "config_version" not in entry.changes  # bookkeeping is not a change anyone made


def test_routing_through_the_api(org, api):
    rep = make_rep(org, name="ann")
    team = api.post("/api/v1/teams/", {"name": "EMEA", "members": [rep.user_id]}, format="json")
    assert team.status_code == 201, team.json()
    assert last(org, "routing.team").changes["members"] == [None, ["ann@acme.test"]]
    rule = api.post("/api/v1/assignment-rules/", {"name": "Europe", "action": {"type": "round_robin",
                                                                               "team": team.json()["id"]}},
                    format="json")
    assert rule.status_code == 201, rule.json()
    assert api.patch(f"/api/v1/assignment-rules/{rule.json()['id']}/", {"sla_minutes": 30},
                     format="json").status_code == 200
    assert last(org, "routing.assignmentrule").changes == {"sla_minutes": [None, 30]}
    assert api.patch(f"/api/v1/reps/{rep.user_id}/", {"capacity": 5}, format="json").status_code == 200
    entry = last(org, "routing.repprofile")
    assert entry.changes == {"capacity": [50, 5]} and entry.object_label == "ann@acme.test"


def test_templates_and_sequences_through_the_api(org, api):
    template = api.post("/api/v1/templates/", {"name": "Welcome", "subject": "Hi", "html": "<p>Hi</p>",
                                               "text": "Hi"}, format="json")
    assert template.status_code == 201
    assert api.patch(f"/api/v1/templates/{template.json()['id']}/", {"subject": "Hello"},
                     format="json").status_code == 200
    entry = last(org, "nurturing.emailtemplate")
    assert entry.action == "updated"
    assert entry.changes["content"][0]["subject"] == "Hi" and entry.changes["content"][1]["subject"] == "Hello"

    sequence = api.post("/api/v1/sequences/", {"name": "Drip", "steps": [
        {"type": "email", "template": template.json()["id"]}]}, format="json")
    assert sequence.status_code == 201, sequence.json()
    assert last(org, "nurturing.sequence").changes["steps"][1][0]["template"] == "Welcome"
    response = api.patch(f"/api/v1/sequences/{sequence.json()['id']}/", {"steps": [
        {"type": "wait", "days": 2}, {"type": "email", "template": template.json()["id"]}]}, format="json")
    assert response.status_code == 200, response.json()
    before, after = last(org, "nurturing.sequence").changes["steps"]
    assert len(before) == 1 and len(after) == 2
    assert api.delete(f"/api/v1/sequences/{sequence.json()['id']}/").status_code == 204
    assert last(org, "nurturing.sequence").action == "deleted"


def test_api_keys_through_the_api_never_store_the_hash(org, api):
    created = api.post("/api/v1/api-keys/", {"name": "Zapier"}, format="json")
    assert created.status_code == 201
    prefix, plain = created.json()["prefix"], created.json()["key"]
    entry = last(org, "leadcrm.apikey")
    assert (entry.action, entry.object_id, entry.actor_label) == ("created", prefix, "API key test")
    assert entry.changes["hashed_key"] == "changed"
    key = ApiKey.objects.get(prefix=prefix)
    assert api.delete(f"/api/v1/api-keys/{prefix}/").status_code == 204
    entry = last(org, "leadcrm.apikey")
    assert entry.action == "revoked" and entry.changes["revoked"] == [False, True]
    stored = str(list(AuditEntry.objects.values_list("changes", "object_id", "object_label")))
    assert key.hashed_key not in stored and plain not in stored and key.pk not in stored


# ----------------------------------------------------------------------------------------------- browser


def test_browser_pages_record_the_signed_in_user(org, admin_client):
    rule = ScoringRule.objects.for_org(org).get(name="Submitted a form")
    response = admin_client.post(f"/scoring/rules/{rule.pk}/toggle/", {})
    assert response.status_code == 302
    entry = last(org, "scoring.scoringrule")
    assert (entry.actor_label, entry.changes) == ("owner@acme.test", {"active": [True, False]})
    assert entry.actor == Membership.objects.get(organization=org, role=Role.ADMIN).user

    admin_client.post("/settings/api-keys/", {"name": "Website"})
    prefix = ApiKey.objects.get(name="Website").prefix
    admin_client.post(f"/settings/api-keys/{prefix}/revoke/")
    assert [e.action for e in entries(org, "leadcrm.apikey", object_id=prefix)] == ["created", "revoked"]

    rep = make_rep(org, name="bo")
    make_team(org, "Desk", [rep])
    admin_client.post(f"/team/reps/{rep.user_id}/availability/", {"available": "0"})
    assert last(org, "routing.repprofile").changes == {"available": [True, False]}

    template = nurturing.create_template(organization_id=org.pk, name="Promo", subject="A", html="<p>A</p>",
                                         text="A")
    response = admin_client.post(f"/emails/templates/{template.pk}/", {"name": "Promo 2", "subject": "B",
                                                                         "html": "<p>B</p>", "text": "B"})
    assert response.status_code in (200, 302)
    entry = last(org, "nurturing.emailtemplate")
    assert entry.changes["name"] == ["Promo", "Promo 2"] and entry.actor_label == "owner@acme.test"


# ------------------------------------------------------------------------------------------------- admin


def test_admin_membership_add_role_change_and_removal(org, admin_client, member):
    user = member(Role.REP, email="rita@acme.test")
    membership = Membership.objects.get(organization=org, user=user)
    response = admin_client.post(f"/admin/leadcrm/membership/{membership.pk}/change/",
                                 {"user": user.pk, "role": "manager"})
    assert response.status_code == 302, response.content.decode()[:1500]
    entry = last(org, "leadcrm.membership")
    assert entry.action == "updated" and entry.changes == {"role": ["rep", "manager"]}
    assert entry.actor_label == "owner@acme.test"

    response = admin_client.post(f"/admin/leadcrm/membership/{membership.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    entry = last(org, "leadcrm.membership")
    assert entry.action == "deleted" and entry.object_label == "rita@acme.test (Manager)"
    assert entry.changes["role"] == ["manager", None]


def test_membership_added_by_the_service(org):
    core.add_member(organization=org, email="new@acme.test", password=None, role=Role.MARKETER)
    entry = last(org, "leadcrm.membership")
    assert entry.action == "created" and entry.actor_label == "system"
    assert entry.changes["role"] == [None, "marketer"] and entry.changes["user"] == [None, "new@acme.test"]


def test_admin_assignment_rule_and_team_inline_members(org, admin_client):
    ann, bo = make_rep(org, name="ann"), make_rep(org, name="bo")
    team = make_team(org, "Inside", [ann])
    rule = make_rule(org, "Inside rule", team=team)
    data = {"name": "Inside rule", "order": 7, "condition": "{}", "strategy": "round_robin", "team": team.pk,
            "max_reassignments": 2, "match_profile": "on", "active": "on"}
    response = admin_client.post(f"/admin/routing/assignmentrule/{rule.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:1500]
    assert last(org, "routing.assignmentrule").changes["order"][1] == 7

    # Inlines need Django's model permissions, which only superusers have here.
    superuser = get_user_model().objects.create_superuser("root@example.test", "root@example.test", "pw")
    admin_client.force_login(superuser)
    member = team.memberships.get()
    response = admin_client.post(f"/admin/routing/team/{team.pk}/change/", {
        "organization": org.pk, "name": "Inside sales", "manager": "",
        "memberships-TOTAL_FORMS": "2", "memberships-INITIAL_FORMS": "1", "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-id": member.pk, "memberships-0-team": team.pk, "memberships-0-rep": ann.pk,
        "memberships-1-team": team.pk, "memberships-1-rep": bo.pk,
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    entry = last(org, "routing.team")
    assert entry.changes["name"] == ["Inside", "Inside sales"]
    assert entry.changes["members"] == [["ann@acme.test"], ["ann@acme.test", "bo@acme.test"]]
    assert entry.actor_label == "root@example.test"
    assert Team.objects.get(pk=team.pk).members.count() == 2
    assert AssignmentRule.objects.filter(pk=rule.pk).exists() and RepProfile.objects.filter(pk=bo.pk).exists()


def test_admin_scoring_rule_through_the_service_is_recorded_once(org, admin_client):
    rule = ScoringRule.objects.for_org(org).get(name="Submitted a form")
    response = admin_client.post(f"/admin/scoring/scoringrule/{rule.pk}/change/", {
        "name": "Submitted a form", "kind": "behavior", "points": "20",
        "condition": '{"activity_type": "form_submission"}', "max_occurrences": "3", "window_days": "",
        "active": "on", "_save": "Save"})
    assert response.status_code == 302, response.content.decode()[:1500]
    found = entries(org, "scoring.scoringrule")
    assert len(found) == 1 and found[0].changes == {"points": [15, 20]}


def test_admin_api_key_add_is_recorded(org, admin_client):
    response = admin_client.post("/admin/leadcrm/apikey/add/", {"name": "From admin", "role": "admin"})
    assert response.status_code == 302, response.content.decode()[:1500]
    entry = last(org, "leadcrm.apikey")
    assert entry.action == "created" and entry.object_label.startswith("From admin")


# --------------------------------------------------------------------------------------------- reading it


def test_admins_read_the_log_page_with_filters_escaped(org, admin_client, api):
    api.post("/api/v1/scoring-rules/", {"name": "<script>alert(1)</script>", "kind": "fit", "points": 1,
                                        "condition": {"field": "city", "op": "is_empty"}}, format="json")
    core.create_api_key(organization=org, name="other key")
    page = admin_client.get("/audit/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "API key test" in html
    only_rules = admin_client.get("/audit/?object_type=scoring.scoringrule").content.decode()
    assert "other key" not in only_rules and "alert(1)" in only_rules
    assert "alert(1)" not in admin_client.get("/audit/?actor=nobody").content.decode()
    assert "alert(1)" not in admin_client.get("/audit/?start=2999-01-01").content.decode()
    assert "alert(1)" in admin_client.get("/audit/?end=2999-01-01&start=2000-01-01").content.decode()


@pytest.mark.parametrize("role", [Role.MANAGER, Role.MARKETER, Role.REP])
def test_other_roles_cannot_read_the_log(org, client, member, role):
    client.force_login(member(role))
    assert client.get("/audit/").status_code == 403
    assert client.get("/api/v1/audit-log/").status_code == 403
    assert b"/audit/" not in client.get("/leads/").content


def test_api_cursor_pages_and_filters(org, api, django_assert_max_num_queries):
    for n in range(5):
        core.create_api_key(organization=org, name=f"key {n}")
    with django_assert_max_num_queries(6):
        first = api.get("/api/v1/audit-log/?page_size=2&object_type=leadcrm.apikey")
    assert first.status_code == 200
    body = first.json()
    assert [row["object_label"].split(" (")[0] for row in body["results"]] == ["key 4", "key 3"]
    second = api.get(body["next"]).json()
    assert [row["object_label"].split(" (")[0] for row in second["results"]] == ["key 2", "key 1"]
    assert api.get("/api/v1/audit-log/?actor=nobody").json()["results"] == []
    assert api.get("/api/v1/audit-log/?start=not-a-date").status_code == 400


def test_admin_shows_the_log_read_only(org, admin_client, other_org):
    core.create_api_key(organization=other_org, name="rival secret key")
    core.create_api_key(organization=org, name="own key")
    html = admin_client.get("/admin/leadcrm/auditentry/").content.decode()
    assert "own key" in html and "rival secret key" not in html
    entry = last(org, "leadcrm.apikey")
    assert admin_client.post(f"/admin/leadcrm/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_log_page_keyset_pages_cost_the_same(org, admin_client, django_assert_max_num_queries):
    for n in range(60):
        core.create_api_key(organization=org, name=f"key {n}")
    with django_assert_max_num_queries(12):
        first = admin_client.get("/audit/?action=created&object_type=leadcrm.apikey")
    html = first.content.decode()
    assert "key 59 (" in html and "key 0 (" not in html
    older_url = unescape(re.search(r'<a href="([^"]+)" rel="next"', html).group(1))
    with django_assert_max_num_queries(12):
        older = admin_client.get(older_url).content.decode()
    assert "key 0 (" in older and "key 59 (" not in older
    assert "key 5 (" not in admin_client.get("/audit/?action=revoked").content.decode()


def test_log_page_folds_long_values_and_escapes_them(org, admin_client):
    long_value = {"rules": [{"field": "<b>company</b>", "value": "x" * 200}]}
    AuditEntry.objects.create(organization=org, actor_label="ann", action="updated", object_type="routing.team",
                              object_id="1", object_label="EMEA", changes={"conditions": [None, long_value],
                                                                           "points": [1, 2]})
    html = admin_client.get("/audit/").content.decode()
    folded = re.search(r'<details class="change-value"><summary>(.*?)</summary><pre>(.*?)</pre>', html, re.S)
    assert folded and folded.group(1).endswith("…") and len(unescape(folded.group(1))) <= 41
    assert "x" * 200 in folded.group(2) and "&lt;b&gt;company&lt;/b&gt;" in folded.group(2)
    assert "<b>company" not in html
    assert '<pre class="change-value">2</pre>' in html  # a short value shows as it is


def test_log_page_refuses_a_bad_date_with_a_form_error(org, admin_client):
    response = admin_client.get("/audit/?start=not-a-date&action=")
    assert response.status_code == 400
    assert "Enter a valid date" in response.content.decode()
