"""Django admin of scoring: tenant-scoped rules and settings, checked with the scoring services (an unknown field
or activity type is refused on the field), saved through them (the org is re-scored), and a preview of a rule
that saves nothing."""

import json
import re
from html import unescape

import pytest
from django.contrib.auth import get_user_model

from leadcrm.models import Membership, Role
from leads.models import Lead
from scoring.models import ScoringRule, ScoringSettings

from . import add_activity, behavior, fit, make_lead, score_org, set_rules

pytestmark = pytest.mark.django_db

RULES = "/admin/scoring/scoringrule/"
SETTINGS = "/admin/scoring/scoringsettings/"


def version(org) -> int:
    return ScoringSettings.objects.get(organization=org).config_version


def field_errors(response, field) -> str:
    """The error text Django admin shows on one field's row."""
    html = response.content.decode()
    match = re.search(rf'<div class="form-row[^"]*field-{field}[^"]*">(.*?)</div>\s*</div>', html, re.S)
    assert match, f"no row for {field}"
    return unescape(" ".join(re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', match.group(1), re.S)))


def rule_form(**overrides) -> dict:
    return {"name": "Enterprise", "kind": "fit", "points": "30",
            "condition": json.dumps({"field": "company_size", "op": "gte", "value": 1000}),
            "max_occurrences": "", "window_days": "", "active": "on", "_save": "Save", **overrides}


@pytest.fixture
def two_orgs(org, other_org):
    acme = set_rules(org, fit(20, {"field": "industry", "op": "eq", "value": "Software"}, name="Acme industry rule"),
                     behavior(10, {"activity_type": "page_view"}, name="Acme visits rule", max_occurrences=5))
    rival = set_rules(other_org, fit(5, {"field": "country", "op": "eq", "value": "FR"}, name="Rival country rule"))
    return {"acme": acme, "rival": rival}


@pytest.fixture
def org_admin(client, org):
    client.force_login(Membership.objects.get(organization=org, role=Role.ADMIN).user)
    return client


# --- tenant scope --------------------------------------------------------------------------------------------


def test_an_org_admin_sees_only_their_orgs_rules(org_admin, two_orgs):
    response = org_admin.get(RULES)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Acme industry rule" in html and "Acme visits rule" in html
    assert "Rival country rule" not in html
    assert "Industry is Software" in html  # the condition in words


def test_an_org_admin_cannot_open_change_or_delete_another_orgs_rule(org_admin, other_org, two_orgs):
    theirs = two_orgs["rival"][0]
    before = version(other_org)
    response = org_admin.get(f"{RULES}{theirs.pk}/change/")
    assert response.status_code in (302, 404) and b"Rival country rule" not in response.content
    org_admin.post(f"{RULES}{theirs.pk}/change/", rule_form(name="Hijacked"))
    org_admin.post(f"{RULES}{theirs.pk}/delete/", {"post": "yes"})
    assert org_admin.post(f"{RULES}{theirs.pk}/preview/", rule_form()).status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Rival country rule" and version(other_org) == before
    # control: their own rule opens
    assert org_admin.get(f"{RULES}{two_orgs['acme'][0].pk}/change/").status_code == 200


def test_the_organization_is_not_chosen_by_an_org_admin(org_admin, org, other_org, two_orgs):
    html = org_admin.get(f"{RULES}add/").content.decode()
    assert 'name="organization"' not in html
    response = org_admin.post(f"{RULES}add/", rule_form(organization=str(other_org.pk)))
    assert response.status_code == 302
    assert ScoringRule.objects.get(name="Enterprise").organization == org


def test_the_settings_list_takes_an_org_admin_to_their_own_settings(org_admin, org, other_org, two_orgs):
    response = org_admin.get(SETTINGS)
    assert response.status_code == 302 and response["Location"] == f"{SETTINGS}{org.pk}/change/"
    assert org_admin.get(f"{SETTINGS}{org.pk}/change/").status_code == 200
    theirs = org_admin.get(f"{SETTINGS}{other_org.pk}/change/")
    assert theirs.status_code in (302, 404) and b"Rival" not in theirs.content


@pytest.mark.parametrize("role", [Role.REP, Role.MARKETER, Role.MANAGER])
def test_other_roles_cannot_use_the_scoring_admin(client, member, two_orgs, role):
    client.force_login(member(role))
    for url in (RULES, SETTINGS, f"{RULES}add/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    response = client.post(f"{RULES}add/preview/", rule_form())
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_a_superuser_works_in_the_org_picked_in_the_switcher(client, org, other_org, two_orgs):
    root = get_user_model().objects.create_superuser("root@x.test", "root@x.test", "pw-root-1234")
    client.force_login(root)
    client.post("/org/switch/", {"organization": str(other_org.pk)})
    html = client.get(RULES).content.decode()
    assert "Rival country rule" in html and "Acme industry rule" not in html
    before = version(other_org)
    response = client.post(f"{RULES}add/", rule_form(organization=str(other_org.pk)))
    assert response.status_code == 302
    assert ScoringRule.objects.get(name="Enterprise").organization == other_org
    assert version(other_org) == before + 1
    # a saved rule stays in its org
    rule = two_orgs["rival"][0]
    client.post(f"{RULES}{rule.pk}/change/", rule_form(name="Renamed", organization=str(org.pk)))
    rule.refresh_from_db()
    assert (rule.name, rule.organization) == ("Renamed", other_org)
    # the other org's rules are out of reach until the superuser switches to it
    acme_rule = two_orgs["acme"][0]
    assert client.get(f"{RULES}{acme_rule.pk}/change/").status_code == 302
    client.post("/org/switch/", {"organization": str(org.pk)})
    assert client.get(f"{RULES}{acme_rule.pk}/change/").status_code == 200


# --- checks and saves through the services --------------------------------------------------------------------


def test_adding_a_rule_goes_through_the_service(org_admin, org, two_orgs):
    before = version(org)
    response = org_admin.post(f"{RULES}add/", rule_form(condition='{"field": "company_size", "op": "gte", '
                                                                  '"value": "1000"}'))
    assert response.status_code == 302
    rule = ScoringRule.objects.get(name="Enterprise")
    assert rule.condition == {"field": "company_size", "op": "gte", "value": "1000"}
    assert version(org) == before + 1
    assert ScoringSettings.objects.get(organization=org).recalc_status == "queued"


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"condition": '{"field": "shoe_size", "op": "eq", "value": 42}'}, "condition", "Unknown field 'shoe_size'"),
    ({"kind": "behavior", "condition": '{"activity_type": "teleport"}'}, "condition",
     "Unknown activity type 'teleport'"),
    ({"condition": '{"field": "industry", "op": "resembles", "value": "x"}'}, "condition", "Unknown operator"),
    ({"condition": '{"field": "company_size", "op": "gt", "value": "big"}'}, "condition", "'big' is not a number"),
    ({"condition": '{"field": "score", "op": "gte", "value": 10}'}, "condition", "cannot test score"),
    ({"points": "1001"}, "points", "-1000 to 1000"),
    ({"max_occurrences": "3"}, "max_occurrences", "Only behaviour rules count occurrences"),
    ({"kind": "behavior", "condition": '{"activity_type": "page_view"}', "window_days": "0"}, "window_days",
     "from 1 to 36,500"),
    ({"condition": "{oops"}, "condition", "Enter a valid JSON"),
])
def test_bad_rules_are_refused_on_the_field_and_nothing_is_saved(org_admin, org, two_orgs, overrides, field,
                                                                 message):
    before = (version(org), ScoringRule.objects.count())
    response = org_admin.post(f"{RULES}add/", rule_form(**overrides))
    assert response.status_code == 200  # the form again
    assert message in field_errors(response, field)
    assert (version(org), ScoringRule.objects.count()) == before


def test_changing_a_rule_goes_through_the_service(org_admin, org, two_orgs):
    rule = two_orgs["acme"][1]
    before = version(org)
    response = org_admin.post(f"{RULES}{rule.pk}/change/", rule_form(
        name="Acme visits rule", kind="behavior", points="7", max_occurrences="2", window_days="14",
        condition='{"activity_type": "page_view", "property": "url", "op": "starts_with", "value": "/docs"}'))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.points, rule.max_occurrences, rule.window_days) == (7, 2, 14)
    assert rule.condition["value"] == "/docs"
    assert version(org) == before + 1


def test_deleting_rules_goes_through_the_service(org_admin, org, two_orgs):
    first, second = two_orgs["acme"]
    before = version(org)
    assert org_admin.post(f"{RULES}{first.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not ScoringRule.objects.filter(pk=first.pk).exists()
    assert version(org) == before + 1
    response = org_admin.post(RULES, {"action": "delete_selected", "_selected_action": [str(second.pk)],
                                      "post": "yes"})
    assert response.status_code == 302
    assert not ScoringRule.objects.for_org(org).exists()
    assert version(org) == before + 2


def test_settings_are_checked_and_saved_through_the_service(org_admin, org, two_orgs):
    url = f"{SETTINGS}{org.pk}/change/"
    form = {"mql_score": "55", "mql_min_grade": "B", "grade_bands": '{"A": 50, "B": 60, "C": 20, "D": 5}',
            "temperature_bands": '{"warm": 30, "hot": 70}', "decay_half_life_days": "", "_save": "Save",
            "recalc_status": "idle", "config_version": "999"}
    before = ScoringSettings.objects.filter(organization=org).values().get()
    response = org_admin.post(url, form)
    assert response.status_code == 200
    assert "A (50) must be above B (60)" in field_errors(response, "grade_bands")
    assert ScoringSettings.objects.filter(organization=org).values().get() == before

    response = org_admin.post(url, {**form, "grade_bands": '{"A": 70, "B": 60, "C": 20, "D": 5}'})
    assert response.status_code == 302
    settings = ScoringSettings.objects.get(organization=org)
    assert (settings.mql_score, settings.mql_min_grade) == (55, "B")
    assert settings.grade_bands == {"A": 70, "B": 60, "C": 20, "D": 5}
    assert settings.config_version == before["config_version"] + 1  # not 999: recalculation fields are read-only
    assert settings.recalc_status == "queued"


def test_settings_show_the_recalculation_read_only(org_admin, org, two_orgs):
    ScoringSettings.objects.filter(organization=org).update(recalc_status="running", recalc_done=30,
                                                            recalc_total=120)
    html = org_admin.get(f"{SETTINGS}{org.pk}/change/").content.decode()
    assert "25% (30 of 120 leads)" in html
    assert 'name="recalc_status"' not in html and 'name="config_version"' not in html
    assert org_admin.get(f"{SETTINGS}add/").status_code == 403


# --- preview --------------------------------------------------------------------------------------------------


@pytest.fixture
def leads(org, two_orgs):
    made = [make_lead(org, industry=["Software", "Retail"][n % 2], company_size=[50, 2000][n // 2 % 2])
            for n in range(8)]
    for lead in made[:3]:
        add_activity(lead, "page_view")
    score_org(org)
    return made


def lead_state(org):
    return sorted(Lead.objects.for_org(org).values_list("id", "score", "grade", "lifecycle_stage"))


def test_the_change_form_has_a_preview_button(org_admin, two_orgs):
    rule = two_orgs["acme"][0]
    html = org_admin.get(f"{RULES}{rule.pk}/change/").content.decode()
    assert f'data-url="{RULES}{rule.pk}/preview/"' in html and 'id="rule-preview"' in html
    assert f'data-url="{RULES}add/preview/"' in org_admin.get(f"{RULES}add/").content.decode()


def test_preview_of_a_change_counts_and_saves_nothing(org_admin, org, two_orgs, leads):
    rule = two_orgs["acme"][0]
    before = (lead_state(org), version(org), list(ScoringRule.objects.for_org(org).values()))
    response = org_admin.post(f"{RULES}{rule.pk}/preview/", rule_form(
        name="Acme industry rule", points="-20", condition='{"field": "industry", "op": "eq", "value": "Software"}'))
    assert response.status_code == 200
    html = response.content.decode()
    assert "of 8 leads" in html
    assert re.search(r"<strong>4</strong> leads would lose points", html)  # the four software leads
    assert re.search(r"<strong>0</strong> leads would gain points", html)
    assert 'id="preview-chart"' in html
    assert (lead_state(org), version(org), list(ScoringRule.objects.for_org(org).values())) == before


def test_preview_of_a_new_rule(org_admin, org, two_orgs, leads):
    before = (lead_state(org), ScoringRule.objects.count())
    response = org_admin.post(f"{RULES}add/preview/", rule_form())
    assert response.status_code == 200
    assert re.search(r"<strong>4</strong> leads would gain points", response.content.decode())  # size ≥ 1000
    assert (lead_state(org), ScoringRule.objects.count()) == before


def test_preview_of_bad_values_lists_the_errors(org_admin, org, two_orgs, leads):
    response = org_admin.post(f"{RULES}add/preview/", rule_form(condition='{"field": "shoe_size", "op": "eq"}'))
    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert "Fix these to see a preview" in html and "Unknown field 'shoe_size'" in html
    assert org_admin.get(f"{RULES}add/preview/").status_code == 405  # preview is a POST of the form
