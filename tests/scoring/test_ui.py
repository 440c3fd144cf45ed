"""Browser: the scoring rules (list, form without JSON, switch, delete, preview), the settings page, the
recalculation progress, and the Score panel of the lead page; roles, other tenants and escaping."""

import re
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from leadcrm.models import Role
from leads.models import Lead
from scoring import services
from scoring.forms import parse_value
from scoring.models import RecalculationStatus, ScoreSnapshot, ScoringRule, ScoringSettings

from . import add_activity, behavior, fit, make_lead, score_org, set_rules

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def version(org) -> int:
    return ScoringSettings.objects.get(organization=org).config_version


def rule_post(**overrides) -> dict:
    """A fit rule as the browser form posts it."""
    return {"kind": "fit", "name": "Mid-size companies", "points": "25", "lead_field": "company_size", "op": "gte",
            "value": "100", "active": "on", **overrides}


def behaviour_post(**overrides) -> dict:
    return {"kind": "behavior", "name": "Read the docs", "points": "5", "activity_type": "page_view",
            "property_name": "url", "property_op": "contains", "property_value": "/docs", "max_occurrences": "3",
            "window_days": "30", "active": "on", **overrides}


def errors_of(response) -> str:
    return " ".join(unescape(m) for m in re.findall(r'class="errorlist"[^>]*>(.*?)</ul>', response.content.decode(),
                                                      re.S))


@pytest.fixture
def rules(org):
    """Two rules of `org`, with the scores of its (no) leads current."""
    created = set_rules(
        org,
        fit(20, {"field": "industry", "op": "in", "value": ["Software", "Finance"]}, name="Target industry"),
        behavior(10, {"activity_type": "page_view", "property": "url", "op": "contains", "value": "/pricing"},
                 name="Pricing page", max_occurrences=3, window_days=30),
        mql_score=40, mql_min_grade="C", grade_bands={"A": 40, "B": 30, "C": 20, "D": 10},
        temperature_bands={"warm": 20, "hot": 40},
    )
    return {"fit": created[0], "behavior": created[1]}


@pytest.fixture
def rival_rule(other_org):
    return set_rules(other_org, fit(7, {"field": "country", "op": "eq", "value": "FR"}, name="Rival rule"))[0]


@pytest.fixture
def rep_client(client, member):
    client.force_login(member(Role.REP))
    return client


# --- pages and who may see them -----------------------------------------------------------------------


def test_rule_list_shows_both_groups_in_words(browser, rules):
    response = browser.get("/scoring/")
    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert "Fit rules" in html and "Behaviour rules" in html
    assert "Industry is one of Software, Finance" in html
    assert "Page view where url contains /pricing" in html
    assert "at most 3 times, in the last 30 days" in html
    assert f"/scoring/rules/{rules['fit'].pk}/edit/" in html
    assert f"/scoring/rules/{rules['fit'].pk}/delete/" in html
    assert "/scoring/settings/" in html and "New rule" in html
    assert 'id="recalc-status"' in html


def test_rule_list_empty_state_says_what_to_do(browser, org):
    set_rules(org)
    html = browser.get("/scoring/").content.decode()
    assert "No fit rules yet" in html and "No behaviour rules yet" in html
    assert "/scoring/rules/new/?kind=fit" in html and "/scoring/rules/new/?kind=behavior" in html
    html = browser.get("/scoring/rules/new/?kind=behavior").content.decode()
    assert re.search(r'<input type="radio" name="kind" value="behavior"[^>]*checked', html)


def test_rule_list_queries_do_not_grow_with_rules(browser, org):
    set_rules(org, *(fit(n, {"field": "industry", "op": "eq", "value": f"i{n}"}) for n in range(1, 31)))
    browser.get("/scoring/")
    with CaptureQueriesContext(connection) as queries:
        assert browser.get("/scoring/").status_code == 200
    assert len(queries) <= 10


@pytest.mark.parametrize("url", ["/scoring/", "/scoring/rules/new/", "/scoring/settings/", "/scoring/status/"])
def test_pages_render_for_a_marketer(browser, rules, url):
    assert browser.get(url).status_code == 200


def test_edit_and_delete_pages_render(browser, rules):
    for rule in rules.values():
        assert browser.get(f"/scoring/rules/{rule.pk}/edit/").status_code == 200
        response = browser.get(f"/scoring/rules/{rule.pk}/delete/")
        assert response.status_code == 200
        assert "Delete rule" in response.content.decode()


def test_the_nav_links_scoring_for_marketers_not_reps(browser, member):
    assert 'href="/scoring/"' in browser.get("/leads/").content.decode()
    browser.force_login(member(Role.REP))
    assert 'href="/scoring/"' not in browser.get("/leads/").content.decode()


def test_reps_cannot_use_the_rule_pages(rep_client, org, rules):
    rule = rules["fit"]
    before = version(org)
    for url in ("/scoring/", "/scoring/rules/new/", f"/scoring/rules/{rule.pk}/edit/", "/scoring/settings/",
                f"/scoring/rules/{rule.pk}/delete/", "/scoring/status/"):
        assert rep_client.get(url).status_code == 403, url
    assert rep_client.post("/scoring/rules/new/", rule_post()).status_code == 403
    assert rep_client.post(f"/scoring/rules/{rule.pk}/toggle/", {}).status_code == 403
    assert rep_client.post(f"/scoring/rules/{rule.pk}/delete/").status_code == 403
    assert rep_client.post("/scoring/rules/preview/", rule_post(), **HTMX).status_code == 403
    assert ScoringRule.objects.for_org(org).count() == 2 and ScoringRule.objects.get(pk=rule.pk).active
    assert version(org) == before


def test_anonymous_visitors_are_sent_to_login(client, rules):
    for url in ("/scoring/", "/scoring/settings/", f"/scoring/rules/{rules['fit'].pk}/edit/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


# --- other tenants ---------------------------------------------------------------------------------------


@pytest.fixture
def rival_lead(other_org):
    return make_lead(other_org, first_name="Victor", company="Rival Secrets")


def test_another_orgs_rule_is_404_and_untouched(browser, org, other_org, rules, rival_rule):
    before = (version(other_org), ScoringRule.objects.get(pk=rival_rule.pk).active)
    pk = rival_rule.pk
    assert browser.get(f"/scoring/rules/{pk}/edit/").status_code == 404
    assert browser.post(f"/scoring/rules/{pk}/edit/", rule_post(name="Hijacked")).status_code == 404
    assert browser.get(f"/scoring/rules/{pk}/delete/").status_code == 404
    assert browser.post(f"/scoring/rules/{pk}/delete/").status_code == 404
    assert browser.post(f"/scoring/rules/{pk}/toggle/", {}, **HTMX).status_code == 404
    assert browser.post(f"/scoring/rules/{pk}/preview/", rule_post(), **HTMX).status_code == 404
    rival_rule.refresh_from_db()
    assert (version(other_org), rival_rule.active, rival_rule.name) == (*before, "Rival rule")
    html = browser.get("/scoring/").content.decode()
    assert "Rival rule" not in html and str(pk) not in html


def test_another_orgs_lead_panel_is_404(browser, org, rival_lead):
    for headers in ({}, HTMX):
        response = browser.get(f"/scoring/leads/{rival_lead.pk}/panel/", **headers)
        assert response.status_code == 404
        assert b"Rival Secrets" not in response.content


def test_owning_org_reaches_what_the_other_cannot(client, other_org, rival_rule, rival_lead):
    """Control for the two tests above: the same URLs answer for the rule's own org."""
    from leadcrm.models import Membership

    client.force_login(Membership.objects.get(organization=other_org, role=Role.ADMIN).user)
    assert client.get(f"/scoring/rules/{rival_rule.pk}/edit/").status_code == 200
    assert client.get(f"/scoring/leads/{rival_lead.pk}/panel/", **HTMX).status_code == 200
    assert "Rival rule" in client.get("/scoring/").content.decode()


# --- creating, editing, switching, deleting ----------------------------------------------------------------


def test_creating_a_fit_rule_saves_a_typed_condition_and_queues_a_recalculation(browser, org, rules):
    before = version(org)
    response = browser.post("/scoring/rules/new/", rule_post())
    assert response.status_code == 302 and response["Location"] == "/scoring/"
    rule = ScoringRule.objects.for_org(org).get(name="Mid-size companies")
    assert (rule.kind, rule.points, rule.active) == ("fit", 25, True)
    assert rule.condition == {"field": "company_size", "op": "gte", "value": 100}  # a number, not "100"
    assert (rule.max_occurrences, rule.window_days) == (None, None)
    settings = ScoringSettings.objects.get(organization=org)
    assert settings.config_version == before + 1
    assert settings.recalc_status == RecalculationStatus.QUEUED
    page = browser.get("/scoring/").content.decode()
    assert "Mid-size companies" in page and "saved" in page
    assert 'hx-trigger="every 1s' in page  # the progress bar polls while the recalculation is queued


@pytest.mark.parametrize(("post", "condition"), [
    ({"lead_field": "__custom__", "custom_key": "plan", "op": "in", "value": "Pro, Enterprise"},
     {"field": "custom_fields.plan", "op": "in", "value": ["Pro", "Enterprise"]}),
    ({"lead_field": "job_title", "op": "contains", "value": "chief, head"},
     {"field": "job_title", "op": "contains", "value": ["chief", "head"]}),
    ({"lead_field": "company_size", "op": "between", "value": "50, 5000"},
     {"field": "company_size", "op": "between", "value": [50, 5000]}),
    ({"lead_field": "company", "op": "is_empty", "value": "ignored"}, {"field": "company", "op": "is_empty"}),
    ({"lead_field": "consent_opt_in", "op": "eq", "value": "yes"},
     {"field": "consent_opt_in", "op": "eq", "value": True}),
    ({"lead_field": "__custom__", "custom_key": "seats", "op": "gt", "value": "2.5"},
     {"field": "custom_fields.seats", "op": "gt", "value": 2.5}),
    ({"condition_json": '{"field": "tags", "op": "contains", "value": "vip"}', "lead_field": "", "op": ""},
     {"field": "tags", "op": "contains", "value": "vip"}),
])
def test_fit_conditions_built_from_plain_inputs(browser, org, rules, post, condition):
    assert browser.post("/scoring/rules/new/", rule_post(**post)).status_code == 302
    assert ScoringRule.objects.for_org(org).get(name="Mid-size companies").condition == condition


def test_creating_a_behaviour_rule(browser, org, rules):
    before = version(org)
    assert browser.post("/scoring/rules/new/", behaviour_post()).status_code == 302
    rule = ScoringRule.objects.for_org(org).get(name="Read the docs")
    assert rule.condition == {"activity_type": "page_view", "property": "url", "op": "contains", "value": "/docs"}
    assert (rule.kind, rule.points, rule.max_occurrences, rule.window_days) == ("behavior", 5, 3, 30)
    assert version(org) == before + 1


def test_a_behaviour_rule_needs_no_property(browser, org, rules):
    post = behaviour_post(property_name="", property_op="", property_value="", max_occurrences="", window_days="")
    assert browser.post("/scoring/rules/new/", post).status_code == 302
    rule = ScoringRule.objects.for_org(org).get(name="Read the docs")
    assert rule.condition == {"activity_type": "page_view"}
    assert (rule.max_occurrences, rule.window_days) == (None, None)


def test_the_edit_form_shows_the_rule_and_saves_changes(browser, org, rules):
    rule = rules["fit"]
    html = browser.get(f"/scoring/rules/{rule.pk}/edit/").content.decode()
    assert re.search(r'<option value="industry"[^>]*selected', html)
    assert re.search(r'<option value="in"\s+selected', html)
    assert 'value="Software, Finance"' in html
    before = version(org)
    response = browser.post(f"/scoring/rules/{rule.pk}/edit/", rule_post(
        name="Target industry", points="-5", lead_field="industry", op="in", value="Software, Finance, Retail"))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.points == -5 and rule.condition["value"] == ["Software", "Finance", "Retail"]
    assert ScoringRule.objects.for_org(org).count() == 2  # changed in place, not added
    assert version(org) == before + 1


def test_a_condition_the_inputs_cannot_show_goes_to_the_json_box(browser, org):
    rule = set_rules(org, behavior(5, {"activity_type": "page_view", "where": [
        {"property": "url", "op": "contains", "value": "/a"}, {"property": "ref", "op": "eq", "value": "x"}]}))[0]
    html = unescape(browser.get(f"/scoring/rules/{rule.pk}/edit/").content.decode())
    assert '"where"' in html and "<details open>" in html


def test_switching_a_rule_off_and_on_with_htmx(browser, org, rules):
    rule = rules["behavior"]
    before = version(org)
    response = browser.post(f"/scoring/rules/{rule.pk}/toggle/", {}, **HTMX)  # an unticked switch posts nothing
    assert response.status_code == 200
    assert response["HX-Trigger"] == "recalc-changed"
    assert f'id="rule-{rule.pk}"' in response.content.decode() and 'class="inactive"' in response.content.decode()
    rule.refresh_from_db()
    assert rule.active is False and version(org) == before + 1
    # the same state again changes nothing
    browser.post(f"/scoring/rules/{rule.pk}/toggle/", {}, **HTMX)
    assert version(org) == before + 1
    response = browser.post(f"/scoring/rules/{rule.pk}/toggle/", {"active": "on"})  # without scripts
    assert response.status_code == 302 and response["Location"] == "/scoring/"
    rule.refresh_from_db()
    assert rule.active is True and version(org) == before + 2


def test_the_status_fragment_polls_only_while_busy(browser, org, rules):
    ScoringSettings.objects.filter(organization=org).update(recalc_status=RecalculationStatus.IDLE)
    html = browser.get("/scoring/status/").content.decode()
    assert "every" not in re.search(r'hx-trigger="([^"]*)"', html).group(1)
    assert "up to date" in html
    ScoringSettings.objects.filter(organization=org).update(recalc_status=RecalculationStatus.RUNNING,
                                                            recalc_done=250, recalc_total=1000)
    html = browser.get("/scoring/status/").content.decode()
    assert re.search(r'hx-trigger="every 1s', html)
    assert "250 of 1000 leads (25%)" in html and '<progress value="250" max="1000"' in html
    ScoringSettings.objects.filter(organization=org).update(recalc_status=RecalculationStatus.FAILED,
                                                            recalc_error="boom <b>")
    html = browser.get("/scoring/status/").content.decode()
    assert "Re-scoring failed" in html and "boom &lt;b&gt;" in html and "every" not in re.search(
        r'hx-trigger="([^"]*)"', html).group(1)


def test_deleting_a_rule_asks_first(browser, org, rules):
    rule = rules["fit"]
    before = version(org)
    assert browser.get(f"/scoring/rules/{rule.pk}/delete/").status_code == 200
    assert ScoringRule.objects.filter(pk=rule.pk).exists()
    response = browser.post(f"/scoring/rules/{rule.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/scoring/"
    assert not ScoringRule.objects.filter(pk=rule.pk).exists()
    assert version(org) == before + 1


# --- bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("post", "field", "message"), [
    (rule_post(points="5000"), "points", "-1000 to 1000"),
    (rule_post(points="many"), "points", "Enter a whole number"),
    (rule_post(value="lots"), "value", "'lots' is not a number"),
    (rule_post(op="contains", value="x"), "op", "does not apply to Company size"),
    (rule_post(lead_field="", op="eq"), "lead_field", "Choose the field"),
    (rule_post(lead_field="score", op="gte"), "lead_field", "Select a valid choice"),
    (rule_post(lead_field="__custom__", custom_key="bad key!", op="eq", value="x"), "custom_key", "Unknown field"),
    (rule_post(lead_field="__custom__", custom_key="", op="eq", value="x"), "custom_key", "Give the custom field"),
    (rule_post(op="gte", value=""), "value", "needs a value"),
    (rule_post(condition_json='{"field": "nope", "op": "eq", "value": 1}'), "condition_json", "Unknown field"),
    (rule_post(condition_json='{"field": "score", "op": "gte", "value": 1}'), "condition_json", "cannot test score"),
    (rule_post(condition_json="{not json"), "condition_json", "not valid JSON"),
    (behaviour_post(activity_type="teleport"), "activity_type", "Select a valid choice"),
    (behaviour_post(condition_json='{"activity_type": "teleport"}'), "condition_json", "Unknown activity type"),
    (behaviour_post(activity_type=""), "activity_type", "Choose the activity"),
    (behaviour_post(property_op=""), "property_op", "Choose how to test the property"),
    (behaviour_post(property_name="", property_value="x"), "property_name", "Name the activity property"),
    (behaviour_post(property_op="gt", property_value="abc"), "property_value", "'abc' is not a number"),
    (behaviour_post(max_occurrences="0"), "max_occurrences", "from 1 to 100,000"),
    (behaviour_post(window_days="-3"), "window_days", "from 1 to 36,500"),
])
def test_bad_input_shows_form_errors_and_saves_nothing(browser, org, rules, post, field, message):
    before = (version(org), ScoringRule.objects.for_org(org).count())
    response = browser.post("/scoring/rules/new/", post)
    assert response.status_code == 400
    html = response.content.decode()
    match = re.search(rf'id="id_{field}_error">(.*?)</ul>', html, re.S)
    assert match, (field, errors_of(response))
    assert message in unescape(match.group(1))
    assert (version(org), ScoringRule.objects.for_org(org).count()) == before
    # the inputs keep what was typed
    if post.get("name"):
        assert f'value="{post["name"]}"' in html


def test_bad_edit_leaves_the_rule_as_it_was(browser, org, rules):
    rule = rules["fit"]
    before = (version(org), rule.condition, rule.points)
    response = browser.post(f"/scoring/rules/{rule.pk}/edit/", rule_post(value="lots"))
    assert response.status_code == 400
    rule.refresh_from_db()
    assert (version(org), rule.condition, rule.points) == before


def test_parse_value_types_what_was_typed():
    assert parse_value("number", "in", "50, 100") == [50, 100]
    assert parse_value("number", "eq", "2.5") == 2.5
    assert parse_value("json", "gt", "7") == 7
    assert parse_value("json", "eq", "7") == "7"  # custom fields compare as text unless the test is numeric
    assert parse_value("text", "contains", "a, b ,") == ["a", "b"]
    assert parse_value("text", "contains", "solo") == "solo"
    assert parse_value("tags", "contains", "a,b") == "a,b"  # a tag test takes one tag
    assert parse_value("bool", "eq", "No") is False
    assert parse_value("date", "gt", "2026-01-31") == "2026-01-31"
    assert parse_value("date", "within_days", "30") == 30
    assert parse_value("text", "is_empty", "x") is None
    assert parse_value("number", "gt", "NaN") == "NaN"  # left for clean_rule to refuse


# --- preview -------------------------------------------------------------------------------------------------


@pytest.fixture
def scored(org, rules):
    """Twelve leads of `org` with different industries, sizes and visits, scored with the current rules."""
    leads = []
    for n in range(12):
        lead = make_lead(org, industry=["Software", "Retail", ""][n % 3], company_size=[10, 100, 1000, None][n % 4],
                         lifecycle_stage="lead")
        for _ in range(n % 4):
            add_activity(lead, "page_view", properties={"url": "/pricing"})
        leads.append(lead)
    score_org(org)
    settings = ScoringSettings.objects.get(organization=org)
    ScoringSettings.objects.filter(organization=org).update(scored_version=settings.config_version)
    return leads


def state(org):
    return sorted(Lead.objects.for_org(org).values_list("id", "score", "fit_score", "behavior_score", "grade",
                                                        "temperature", "lifecycle_stage"))


def preview_counts(html: str) -> dict:
    counts = {"gain": 0, "lose": 0, "grade": 0, "mql": 0}
    for key, phrase in (("gain", "would gain points"), ("lose", "would lose points"),
                        ("grade", "would change grade"), ("mql", "would become marketing qualified")):
        match = re.search(rf"<strong>(\d+)</strong> leads? {phrase}", html)
        if match:
            counts[key] = int(match.group(1))
    return counts


def outcome(before: list, after: list) -> dict:
    old = {row[0]: row for row in before}
    counts = {"gain": 0, "lose": 0, "grade": 0, "mql": 0}
    for row in after:
        was = old[row[0]]
        counts["gain"] += row[1] > was[1]
        counts["lose"] += row[1] < was[1]
        counts["grade"] += row[4] != was[4]
        counts["mql"] += row[6] == "mql" and was[6] != "mql"
    return counts


def _preview_then_save(browser, org, preview_url, save_url, post, save=None):
    before_state, before_version = state(org), version(org)
    before_rules = sorted(ScoringRule.objects.for_org(org).values_list("id", "name", "points", "active"))
    snapshots = ScoreSnapshot.objects.for_org(org).count()
    response = browser.post(preview_url, post, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # a fragment
    predicted = preview_counts(html)
    # nothing changed
    assert state(org) == before_state and version(org) == before_version
    assert sorted(ScoringRule.objects.for_org(org).values_list("id", "name", "points", "active")) == before_rules
    assert ScoreSnapshot.objects.for_org(org).count() == snapshots
    # now save it for real and re-score the org the way the worker does
    response = browser.post(save_url, save or post)
    assert response.status_code == 302
    services.recalculate_organization(organization_id=org.pk)
    actual = outcome(before_state, state(org))
    assert predicted == actual
    return predicted, html


def test_preview_of_a_new_rule_changes_nothing_and_matches_saving(browser, org, scored):
    predicted, html = _preview_then_save(browser, org, "/scoring/rules/preview/", "/scoring/rules/new/",
                                         rule_post())
    assert predicted["gain"] > 0 and predicted["grade"] > 0 and predicted["mql"] > 0
    assert "of 12 leads" in html
    chart = re.search(r'<script id="preview-chart" type="application/json">(.*?)</script>', html, re.S)
    assert chart and '"type": "bar"' in chart.group(1) and '"With this rule"' in chart.group(1)
    assert 'data-chart="preview-chart"' in html


def test_preview_of_an_edit_replaces_the_rule(browser, org, rules, scored):
    rule = rules["fit"]
    post = rule_post(name="Target industry", points="-10", lead_field="industry", op="in", value="Software, Finance")
    predicted, _ = _preview_then_save(browser, org, f"/scoring/rules/{rule.pk}/preview/",
                                      f"/scoring/rules/{rule.pk}/edit/", post)
    assert predicted["lose"] > 0 and predicted["gain"] == 0


def test_preview_of_switching_a_rule_off(browser, org, rules, scored):
    rule = rules["behavior"]
    post = behaviour_post(name="Pricing page", points="10", property_value="/pricing", active="")
    post.pop("active")
    predicted, _ = _preview_then_save(browser, org, f"/scoring/rules/{rule.pk}/preview/",
                                      f"/scoring/rules/{rule.pk}/edit/", post)
    assert predicted["lose"] > 0


def test_preview_of_bad_input_lists_the_errors_and_links_the_inputs(browser, org, scored):
    response = browser.post("/scoring/rules/preview/", rule_post(points="5000", value="lots"), **HTMX)
    assert response.status_code == 200  # htmx swaps 200s only
    html = unescape(response.content.decode())
    assert "Fix these to see a preview" in html
    assert '<a href="#id_points">Points</a>' in html and '<a href="#id_value">Value</a>' in html


def test_preview_without_scripts_shows_the_form_page_with_the_preview(browser, org, scored):
    response = browser.post("/scoring/rules/preview/", rule_post())
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and 'id="rule-form"' in html and "would gain points" in html
    assert 'value="Mid-size companies"' in html
    assert not ScoringRule.objects.for_org(org).filter(name="Mid-size companies").exists()


def test_the_form_page_offers_preview_by_htmx_and_without_scripts(browser, rules):
    html = browser.get(f"/scoring/rules/{rules['fit'].pk}/edit/").content.decode()
    url = f"/scoring/rules/{rules['fit'].pk}/preview/"
    assert f'formaction="{url}"' in html and f'hx-post="{url}"' in html and 'hx-target="#rule-preview"' in html
    assert 'id="ops-by-kind"' in html  # the operators the page offers per kind of field


# --- settings ------------------------------------------------------------------------------------------------


def settings_post(**overrides) -> dict:
    return {"mql_score": "60", "mql_min_grade": "B", "grade_a": "50", "grade_b": "35", "grade_c": "20",
            "grade_d": "5", "warm": "30", "hot": "70", "decay_half_life_days": "45", **overrides}


def test_settings_page_shows_the_current_values(browser, org, rules):
    html = browser.get("/scoring/settings/").content.decode()
    assert 'name="mql_score" value="40"' in html
    assert re.search(r'<option value="C" selected>', html)
    assert 'name="grade_a" value="40"' in html and 'name="hot" value="40"' in html
    assert 'id="recalc-status"' in html


def test_saving_settings_goes_through_the_service_and_shows_progress(browser, org, rules):
    before = version(org)
    response = browser.post("/scoring/settings/", settings_post())
    assert response.status_code == 302 and response["Location"] == "/scoring/settings/"
    settings = ScoringSettings.objects.get(organization=org)
    assert (settings.mql_score, settings.mql_min_grade, settings.decay_half_life_days) == (60, "B", 45)
    assert settings.grade_bands == {"A": 50, "B": 35, "C": 20, "D": 5}
    assert settings.temperature_bands == {"hot": 70, "warm": 30}
    assert settings.config_version == before + 1
    page = browser.get("/scoring/settings/").content.decode()
    assert "Settings saved" in page and "Re-scoring queued" in page and 'hx-trigger="every 1s' in page
    # blank half-life switches decay off
    browser.post("/scoring/settings/", settings_post(decay_half_life_days=""))
    assert ScoringSettings.objects.get(organization=org).decay_half_life_days is None


def test_unchanged_settings_do_not_re_score(browser, org, rules):
    browser.post("/scoring/settings/", settings_post())
    before = version(org)
    response = browser.post("/scoring/settings/", settings_post(), follow=True)
    assert "Nothing changed" in response.content.decode()
    assert version(org) == before


@pytest.mark.parametrize(("post", "message"), [
    (settings_post(grade_b="60"), "Grade bands: A (50) must be above B (60)."),
    (settings_post(warm="80"), "Temperature bands: hot (70) must be above warm (80)."),
    (settings_post(mql_score="high"), "Enter a whole number."),
    (settings_post(decay_half_life_days="0"), "greater than or equal to 1"),
    (settings_post(mql_min_grade="Z"), "Select a valid choice"),
])
def test_bad_settings_are_refused_with_a_message(browser, org, rules, post, message):
    before = ScoringSettings.objects.filter(organization=org).values().get()
    response = browser.post("/scoring/settings/", post)
    assert response.status_code == 400
    assert message in errors_of(response)
    assert ScoringSettings.objects.filter(organization=org).values().get() == before


# --- the lead page's Score panel ---------------------------------------------------------------------------


@pytest.fixture
def scored_lead(org, rules):
    lead = make_lead(org, first_name="Ada", industry="Software")
    for _ in range(2):
        add_activity(lead, "page_view", properties={"url": "/pricing"})
    score_org(org)
    lead.refresh_from_db()
    return lead


def test_the_lead_page_loads_the_panel_from_scoring(browser, scored_lead):
    html = browser.get(f"/leads/{scored_lead.pk}/").content.decode()
    assert f'hx-get="/scoring/leads/{scored_lead.pk}/panel/"' in html and 'hx-trigger="load"' in html
    assert "vendor/chartjs/chart.umd.min.js" in html


def test_the_panel_explains_the_score(browser, scored_lead):
    response = browser.get(f"/scoring/leads/{scored_lead.pk}/panel/", **HTMX)
    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert "<html" not in html
    assert scored_lead.score == 40 and scored_lead.grade == "C"
    assert "<strong>40</strong> points" in html and "Grade C" in html and "Hot" in html
    fit_row = re.search(r"<th scope=\"row\">Fit</th>(.*?)</tr>", html, re.S).group(1)
    assert re.findall(r"<td>(?:<strong>)?([^<]*)", fit_row) == ["+20", "0", "+20"]
    behaviour_row = re.search(r"<th scope=\"row\">Behaviour</th>(.*?)</tr>", html, re.S).group(1)
    assert re.findall(r"<td>(?:<strong>)?([^<]*)", behaviour_row) == ["+20", "0", "+20"]
    rows = re.findall(r'<a href="/scoring/rules/[0-9a-f-]+/edit/">([^<]*)</a>.*?<td>([^<]*)</td>\s*<td>(\d+)</td>',
                      html, re.S)
    assert sorted(rows) == [("Pricing page", "+20", "2"), ("Target industry", "+20", "1")]
    chart = re.search(rf'<script id="score-history-{scored_lead.pk}" type="application/json">(.*?)</script>', html)
    assert chart and '"type": "line"' in chart.group(1) and "[40]" in chart.group(1)


def test_the_panel_without_scripts_is_a_whole_page(browser, scored_lead):
    html = browser.get(f"/scoring/leads/{scored_lead.pk}/panel/").content.decode()
    assert "<html" in html and "Score of Ada" in html and "Why this score" in html


def test_a_lead_without_points_gets_a_helpful_empty_panel(browser, org, rules):
    lead = make_lead(org, industry="Retail")
    html = browser.get(f"/scoring/leads/{lead.pk}/panel/", **HTMX).content.decode()
    assert "No rule matches this lead yet" in html and 'href="/scoring/"' in html
    assert "No score changes recorded yet" in html and "<canvas" not in html


def test_lead_supplied_text_in_the_panel_is_escaped(browser, org):
    set_rules(org, fit(5, {"field": "company", "op": "eq", "value": "<b>Evil</b>"},
                       name="<script>alert('rule')</script>"))
    lead = make_lead(org, company="<b>Evil</b>", first_name="<img src=x onerror=alert(1)>")
    score_org(org)
    for headers in (HTMX, {}):
        html = browser.get(f"/scoring/leads/{lead.pk}/panel/", **headers).content.decode()
        assert "&lt;script&gt;alert(&#x27;rule&#x27;)&lt;/script&gt;" in html
        assert "<script>alert(" not in html and "<img src=x" not in html
    listing = browser.get("/scoring/").content.decode()
    assert "&lt;script&gt;alert(&#x27;rule&#x27;)&lt;/script&gt;" in listing and "<script>alert(" not in listing
    assert "&lt;b&gt;Evil&lt;/b&gt;" in listing and "<b>Evil</b>" not in listing
    edit = browser.get(f"/scoring/rules/{ScoringRule.objects.for_org(org).get().pk}/edit/").content.decode()
    assert "<script>alert(" not in edit and "<b>Evil</b>" not in edit


def test_reps_see_the_panel_of_their_own_leads_only(rep_client, org, rules):
    rep = Lead._meta.get_field("owner").related_model.objects.get(email="rep@acme.test")
    own = make_lead(org, owner=rep)
    other = make_lead(org)
    html = rep_client.get(f"/scoring/leads/{own.pk}/panel/", **HTMX).content.decode()
    assert "Why this score" in html and "/scoring/rules/" not in html  # no links to pages a rep cannot open
    assert rep_client.get(f"/scoring/leads/{other.pk}/panel/", **HTMX).status_code == 404
