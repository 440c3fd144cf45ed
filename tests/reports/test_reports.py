"""Each report through the API, against numbers worked out by hand from the data set in conftest.py."""

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leadcrm.models import Role
from leads import services as lead_services
from leads.models import Lead

from .conftest import FORMULA_SOURCE, RANGE, grow, make_lead

pytestmark = pytest.mark.django_db

REPORTS = ["funnel", "speed-to-lead", "sales-cycle", "reps", "sources", "campaigns", "score-calibration"]


def get(api, report, **params):
    response = api.get(f"/api/v1/reports/{report}/", {**RANGE, **params})
    assert response.status_code == 200, response.content[:500]
    return response.json()


def by_key(body):
    return {row["key"]: row for row in body["rows"]}


def test_funnel_counts_each_stage_and_the_step_rates(api, data, noise):
    body = get(api, "funnel")
    assert body["start"] == "2026-03-01" and body["end"] == "2026-03-31" and body["breakdown"] is None
    [row] = body["rows"]
    assert {k: row[k] for k in ("leads", "mql", "sal", "sql", "opportunity", "customer")} == {
        "leads": 5, "mql": 4, "sal": 3, "sql": 2, "opportunity": 1, "customer": 1}
    assert (row["mql_rate"], row["sal_rate"], row["sql_rate"], row["opportunity_rate"], row["customer_rate"]) == (
        0.8, 0.75, 0.6667, 0.5, 1.0)


def test_funnel_breakdowns(api, data, noise):
    rows = by_key(get(api, "funnel", breakdown="source_type"))
    assert set(rows) == {"paid", "organic", "referral"}
    assert (rows["organic"]["leads"], rows["organic"]["mql"], rows["organic"]["sal"]) == (2, 1, 0)
    assert (rows["paid"]["leads"], rows["paid"]["sql"], rows["paid"]["customer"]) == (2, 2, 1)
    assert (rows["referral"]["sal"], rows["referral"]["sql"], rows["referral"]["sql_rate"]) == (1, 0, 0.0)

    rows = by_key(get(api, "funnel", breakdown="owner"))
    a, b = str(data["a"].pk), str(data["b"].pk)
    assert rows[a]["label"] == "anna@acme.test" and rows[a]["leads"] == 2 and rows[a]["customer"] == 1
    assert rows[b]["leads"] == 2 and rows[None]["leads"] == 1

    rows = {row["label"]: row for row in get(api, "funnel", breakdown="team")["rows"]}
    assert (rows["Inbound"]["leads"], rows["Outbound"]["leads"], rows[""]["leads"]) == (2, 2, 1)

    rows = by_key(get(api, "funnel", breakdown="campaign"))
    assert (rows["spring"]["leads"], rows["spring"]["sql"], rows[""]["leads"]) == (2, 2, 3)


def test_funnel_by_segment_counts_leads_in_and_out(api, org, data):
    segment = lead_services.create_segment(organization_id=org.pk, name="Paid", definition={
        "all": [{"field": "source_type", "op": "eq", "value": "paid"}]})
    rows = by_key(get(api, "funnel", breakdown="segment", segment=str(segment.pk)))
    assert (rows["in"]["leads"], rows["in"]["sql"], rows["out"]["leads"], rows["out"]["mql"]) == (2, 2, 3, 2)


def test_funnel_segment_breakdown_needs_a_segment_of_the_org(api, other_org):
    response = api.get("/api/v1/reports/funnel/", {"breakdown": "segment", "segment": "not-a-uuid"})
    assert response.status_code == 400 and "segment" in response.json()["errors"]
    response = api.get("/api/v1/reports/funnel/", {"breakdown": "segment"})
    assert response.status_code == 400 and "segment" in response.json()["errors"]
    theirs = lead_services.create_segment(organization_id=other_org.pk, name="Theirs", definition={
        "all": [{"field": "source_type", "op": "eq", "value": "paid"}]})
    response = api.get("/api/v1/reports/funnel/", {"breakdown": "segment", "segment": str(theirs.pk)})
    assert response.status_code == 400 and response.json()["errors"]["segment"] == ["No such segment."]


def test_speed_to_lead_percentiles_and_sla_share(api, data, noise):
    [row] = get(api, "speed-to-lead")["rows"]
    assert (row["leads"], row["touched"], row["with_sla"], row["within_sla"], row["within_sla_rate"]) == (
        4, 3, 3, 1, 0.3333)
    assert (row["capture_to_mql_median_minutes"], row["capture_to_mql_p90_minutes"]) == (25.0, 51.0)
    assert (row["mql_to_assigned_median_minutes"], row["mql_to_assigned_p90_minutes"]) == (10.0, 24.0)
    assert (row["assigned_to_touch_median_minutes"], row["assigned_to_touch_p90_minutes"]) == (30.0, 102.0)
    assert (row["capture_to_touch_median_minutes"], row["capture_to_touch_p90_minutes"]) == (100.0, 148.0)


def test_speed_to_lead_by_team_and_rep(api, data):
    rows = by_key(get(api, "speed-to-lead", breakdown="team"))
    inbound = rows[str(data["inbound"].pk)]
    assert inbound["label"] == "Inbound"
    assert (inbound["leads"], inbound["within_sla"], inbound["within_sla_rate"]) == (2, 1, 0.5)
    assert (inbound["capture_to_mql_median_minutes"], inbound["capture_to_mql_p90_minutes"]) == (45.0, 57.0)
    rows = by_key(get(api, "speed-to-lead", breakdown="rep"))
    bert = rows[str(data["b"].pk)]
    assert (bert["leads"], bert["touched"], bert["with_sla"], bert["within_sla"]) == (2, 1, 1, 0)


def test_sales_cycle_days_to_win_and_reasons(api, data, noise):
    [row] = get(api, "sales-cycle")["rows"]
    assert (row["won"], row["lost"]) == (2, 2)
    assert (row["created_to_won_days_median"], row["created_to_won_days_p90"], row["created_to_won_days_mean"]) == (
        21.5, 30.7, 21.5)
    assert (row["mql_to_won_days_median"], row["mql_to_won_days_p90"], row["mql_to_won_days_mean"]) == (
        20.98, 29.8, 20.98)
    rows = by_key(get(api, "sales-cycle", breakdown="lost_reason"))
    assert {key: (r["won"], r["lost"]) for key, r in rows.items()} == {
        "": (2, 0), "No budget": (0, 1), "Too expensive": (0, 1)}
    rows = by_key(get(api, "sales-cycle", breakdown="source"))
    assert rows[FORMULA_SOURCE]["created_to_won_days_median"] == 10.0
    assert rows["events"]["created_to_won_days_mean"] == 33.0 and rows["blog"]["lost"] == 1


def test_reps_performance(api, data, noise):
    rows = by_key(get(api, "reps"))
    assert set(rows) == {str(data["a"].pk), str(data["b"].pk), str(data["c"].pk)}
    anna, bert, cleo = rows[str(data["a"].pk)], rows[str(data["b"].pk)], rows[str(data["c"].pk)]
    assert anna == {"key": str(data["a"].pk), "label": "anna@acme.test", "assigned": 3, "within_sla": 2,
                    "accepted": 3, "qualified": 2, "converted": 1, "won": 1, "close_rate": 0.3333,
                    "revenue": "1000.00"}
    assert (bert["assigned"], bert["within_sla"], bert["accepted"], bert["qualified"], bert["won"],
            bert["close_rate"], bert["revenue"]) == (2, 0, 1, 0, 0, 0.0, "0.00")
    assert (cleo["assigned"], cleo["close_rate"]) == (0, None)


def test_sources_performance(api, data, noise):
    body = get(api, "sources")
    assert body["breakdown"] == "source"
    rows = by_key(body)
    assert set(rows) == {FORMULA_SOURCE, "ads", "blog", "partner"}
    # l1 joined Spring (400.00 in March, shared with l2 of "ads") and Webinar (100.00, shared with l3 of "blog")
    assert rows[FORMULA_SOURCE] == {"key": FORMULA_SOURCE, "label": FORMULA_SOURCE, "leads": 1, "mqls": 1, "sqls": 1,
                                    "deals": 1, "won_revenue": "1000.00", "cost": "250.00", "cost_per_lead": "250.00",
                                    "cost_per_mql": "250.00", "roi": 3.0}
    assert [rows[key]["cost"] for key in ("ads", "blog", "partner")] == ["200.00", "50.00", "0.00"]
    assert rows["partner"]["roi"] is None
    assert (rows["blog"]["leads"], rows["blog"]["mqls"], rows["blog"]["sqls"], rows["blog"]["deals"]) == (2, 1, 0, 1)
    rows = by_key(get(api, "sources", breakdown="source_type"))
    assert (rows["paid"]["leads"], rows["paid"]["deals"], rows["paid"]["won_revenue"]) == (2, 2, "1000.00")


def test_campaigns_performance_and_attribution(api, data, noise):
    rows = by_key(get(api, "campaigns"))
    spring, webinar, old = (rows[str(data[name].pk)] for name in ("spring", "webinar", "old"))
    assert spring == {"key": str(data["spring"].pk), "label": "Spring", "leads": 2, "mqls": 2, "sqls": 2,
                      "deals": 2, "won_revenue": "1000.00", "cost": "400.00", "cost_per_lead": "200.00",
                      "cost_per_mql": "200.00", "roi": 1.5}
    assert (webinar["leads"], webinar["mqls"], webinar["sqls"], webinar["deals"], webinar["won_revenue"],
            webinar["cost"], webinar["cost_per_lead"], webinar["roi"]) == (2, 2, 1, 1, "0.00", "100.00", "50.00", -1.0)
    assert (old["leads"], old["cost"], old["roi"], old["cost_per_lead"]) == (0, "0.00", None, None)

    rows = by_key(get(api, "campaigns", attribution="last_touch"))
    assert rows[str(data["spring"].pk)]["won_revenue"] == "0.00"
    assert rows[str(data["webinar"].pk)]["won_revenue"] == "1000.00"
    rows = by_key(get(api, "campaigns", attribution="linear"))
    assert rows[str(data["spring"].pk)]["won_revenue"] == "500.00" and rows[str(data["spring"].pk)]["roi"] == 0.25
    assert rows[str(data["webinar"].pk)]["won_revenue"] == "500.00" and rows[str(data["webinar"].pk)]["roi"] == 4.0

    response = api.get("/api/v1/reports/campaigns/", {"attribution": "u_shaped"})
    assert response.status_code == 400
    assert "first_touch, last_touch, linear" in response.json()["errors"]["attribution"][0]


def test_score_calibration_by_band_and_grade(api, data, noise):
    body = get(api, "score-calibration")
    assert [(r["key"], r["label"], r["leads"], r["reached_sql"], r["won"]) for r in body["rows"]] == [
        ("10", "10 to 19", 1, 0, 0), ("40", "40 to 49", 1, 0, 0), ("50", "50 to 59", 2, 1, 0),
        ("80", "80 to 89", 1, 1, 1)]
    assert body["rows"][2]["sql_rate"] == 0.5 and body["rows"][3]["won_rate"] == 1.0
    rows = by_key(get(api, "score-calibration", breakdown="grade"))
    assert {g: (r["leads"], r["reached_sql"], r["won"]) for g, r in rows.items()} == {
        "A": (1, 1, 1), "B": (2, 1, 0), "C": (1, 0, 0), "D": (1, 0, 0)}


def test_score_calibration_shows_the_base_rate_and_each_bands_lift(api, org, data, noise):
    """One of the five leads created in the range won: the base rate is 20%, and the band of the winner wins five
    times as often as the average lead; by predictive band (the conversion model's) alike."""
    rows = get(api, "score-calibration")["rows"]
    assert {row["base_rate"] for row in rows} == {0.2}
    assert [(row["label"], row["lift"]) for row in rows] == [("10 to 19", 0.0), ("40 to 49", 0.0), ("50 to 59", 0.0),
                                                           ("80 to 89", 5.0)]
    for name, band in (("l1", "A"), ("l2", "B"), ("l3", "B")):
        Lead.objects.filter(organization=org, first_name=name).update(predictive_band=band)
    body = get(api, "score-calibration", breakdown="predictive_band")
    assert [(r["key"], r["label"], r["leads"], r["won"], r["base_rate"], r["lift"]) for r in body["rows"]] == [
        ("A", "A", 1, 1, 0.2, 5.0), ("B", "B", 2, 0, 0.2, 0.0), ("", "No probability yet", 2, 0, 0.2, 0.0)]
    by_rule = get(api, "score-calibration", breakdown="rule")["rows"]
    assert by_rule and {row["base_rate"] for row in by_rule} == {0.2}


def test_the_date_range_filters(api, data):
    [row] = get(api, "funnel", start="2026-03-02", end="2026-03-03")["rows"]
    assert (row["leads"], row["sql"]) == (2, 1)  # L2 and L3
    [row] = get(api, "sales-cycle", start="2026-03-06", end="2026-03-06")["rows"]
    assert (row["won"], row["lost"]) == (1, 0)  # the deal won on 6 March


def test_default_range_is_the_last_ninety_days(api, org, data):
    make_lead(org, timezone.now() - timedelta(days=89), first_name="recent", source="fresh")
    make_lead(org, timezone.now() - timedelta(days=92), first_name="stale", source="fresh")
    body = api.get("/api/v1/reports/sources/").json()
    today = timezone.localdate()
    assert body["end"] == today.isoformat() and body["start"] == (today - timedelta(days=90)).isoformat()
    assert [(row["key"], row["leads"]) for row in body["rows"]] == [("fresh", 1)]  # not March's, not the stale one


@pytest.mark.parametrize("report", REPORTS)
@pytest.mark.parametrize(("params", "field"), [
    ({"start": "2026-13-01"}, "start"), ({"end": "yesterday"}, "end"),
    ({"start": "2026-03-10", "end": "2026-03-01"}, "end"), ({"end": "9999-12-31"}, "end"),
    ({"start": "0001-01-01", "end": "2026-03-01"}, "start")])
def test_bad_dates_are_400_with_field_messages(api, report, params, field):
    response = api.get(f"/api/v1/reports/{report}/", params)
    assert response.status_code == 400
    assert response.json()["errors"][field]


@pytest.mark.parametrize(("report", "allowed"), [
    ("funnel", "source_type, source, campaign, owner, team, segment"), ("speed-to-lead", "team, rep"),
    ("sales-cycle", "source, campaign, lost_reason"), ("sources", "source, source_type"),
    ("score-calibration", "band, grade, predictive_band, rule")])
def test_unknown_breakdown_lists_the_allowed_ones(api, report, allowed):
    response = api.get(f"/api/v1/reports/{report}/", {"breakdown": "planet", "format": "csv"})
    assert response.status_code == 400 and response["Content-Type"].startswith("application/json")
    assert response.json()["errors"]["breakdown"] == [f"Unknown breakdown; use one of: {allowed}."]


def _csv(response):
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8").lstrip("\ufeff")
    return list(csv.reader(io.StringIO(text)))


def test_csv_has_a_header_and_neutralises_formulas(api, data):
    lines = _csv(api.get("/api/v1/reports/sources/", {**RANGE, "format": "csv"}))
    assert lines[0] == ["key", "label", "leads", "mqls", "sqls", "deals", "won_revenue", "cost", "cost_per_lead",
                        "cost_per_mql", "roi"]
    formula = [line for line in lines if "HYPERLINK" in line[0]]
    assert formula == [["'" + FORMULA_SOURCE, "'" + FORMULA_SOURCE, "1", "1", "1", "1", "1000.00", "250.00", "250.00",
                        "250.00", "3.0"]]
    lines = _csv(api.get("/api/v1/reports/sales-cycle/", {**RANGE, "format": "csv", "breakdown": "source"}))
    assert [line[:4] for line in lines if "HYPERLINK" in line[0]] == [["'" + FORMULA_SOURCE, "'" + FORMULA_SOURCE,
                                                                       "1", "0"]]


def test_csv_neutralises_formulas_behind_spaces_and_quotes_but_keeps_numbers(api, org, data):
    from datetime import datetime

    hidden = ['"=HYPERLINK(""y"")"', " =1+1", "\u00a0@SUM(A1)", "' -2+3"]
    for n, source in enumerate(hidden):
        make_lead(org, datetime.fromisoformat("2026-03-10T10:00:00+00:00"), email=f"h{n}@acme.test", source=source)
    lines = _csv(api.get("/api/v1/reports/sources/", {**RANGE, "format": "csv", "breakdown": "source"}))
    labels = {line[1] for line in lines[1:]}
    assert {"'" + source for source in hidden} <= labels and not labels & set(hidden)
    # Numbers the report computes stay numbers a spreadsheet can add up: the webinar's ROI is -1 (cost, no revenue).
    lines = _csv(api.get("/api/v1/reports/campaigns/", {**RANGE, "format": "csv"}))
    roi = {line[1]: line[lines[0].index("roi")] for line in lines[1:]}
    assert roi["Webinar"] == "-1.0"


@pytest.mark.parametrize("report", REPORTS)
def test_every_report_downloads_as_csv(api, data, report):
    lines = _csv(api.get(f"/api/v1/reports/{report}/", {**RANGE, "format": "csv"}))
    assert lines[0][:2] == ["key", "label"] and len(lines) >= 2
    assert all(len(line) == len(lines[0]) for line in lines)


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MANAGER, Role.MARKETER])
def test_org_wide_members_read_reports(client, member, role, data):
    client.force_login(member(role, email=f"{role}-reader@acme.test"))
    assert client.get("/api/v1/reports/funnel/", RANGE).status_code == 200


def test_reps_and_strangers_cannot_read_reports(client, member, data):
    client.force_login(member(Role.REP, email="plain-rep@acme.test"))
    assert client.get("/api/v1/reports/reps/").status_code == 403
    client.logout()
    assert client.get("/api/v1/reports/reps/").status_code in (401, 403)


@pytest.mark.parametrize(("report", "params"), [
    ("funnel", {"breakdown": "team"}), ("speed-to-lead", {"breakdown": "team"}), ("sales-cycle", {}),
    ("reps", {}), ("sources", {}), ("campaigns", {"attribution": "linear"}),
    ("score-calibration", {"breakdown": "grade"})])
def test_query_count_does_not_grow_with_data(api, org, data, report, params, django_assert_max_num_queries):
    url = f"/api/v1/reports/{report}/"
    with CaptureQueriesContext(connection) as small:
        assert api.get(url, {**RANGE, **params}).status_code == 200
    grow(org, data, 15)
    with django_assert_max_num_queries(len(small.captured_queries)):
        body = api.get(url, {**RANGE, **params}).json()
    assert body["rows"]


def test_the_schema_describes_every_report():
    from rest_framework.test import APIClient

    schema = APIClient().get("/api/schema/?format=json").json()
    for report in REPORTS:
        assert f"/api/v1/reports/{report}/" in schema["paths"], report
    rows = schema["components"]["schemas"]["RepsRow"]["properties"]
    assert {"assigned", "within_sla", "close_rate", "revenue"} <= set(rows)
    names = {p["name"] for p in schema["paths"]["/api/v1/reports/funnel/"]["get"]["parameters"]}
    assert {"start", "end", "breakdown", "segment", "format"} <= names


def test_score_calibration_by_rule_counts_the_leads_each_rule_scores(api, org, other_org):
    from leads.models import Activity
    from scoring import services as scoring
    from scoring.models import ScoringRule

    from .conftest import T0, make_deal

    ScoringRule.objects.filter(organization__in=[org, other_org]).delete()
    software = scoring.save_rule(organization_id=org.pk, name="Software", kind="fit", points=20,
                                 condition={"field": "industry", "op": "eq", "value": "Software"})
    pricing = scoring.save_rule(organization_id=org.pk, name="Pricing page", kind="behavior", points=5,
                                condition={"activity_type": "page_view"})
    unused = scoring.save_rule(organization_id=org.pk, name="Student", kind="fit", points=-10,
                               condition={"field": "job_title", "op": "contains", "value": ["student"]})
    scoring.save_rule(organization_id=other_org.pk, name="Rival's rule", kind="fit", points=5,
                      condition={"field": "industry", "op": "eq", "value": "Software"})
    won = make_lead(org, T0, industry="Software", lifecycle_stage="customer", stages={"sql": T0, "customer": T0})
    make_deal(org, won, "100", "won", T0, T0)
    plain = make_lead(org, T0, industry="Software")
    viewer = make_lead(org, T0, industry="Retail", lifecycle_stage="sql", stages={"sql": T0})
    Activity.objects.create(organization=org, lead=viewer, type="page_view", properties={}, occurred_at=T0)
    make_lead(org, T0, industry="Retail")  # no rule scores it
    make_lead(org, T0 - timedelta(days=40), industry="Software")  # outside the range
    make_lead(other_org, T0, industry="Software")
    for organization in (org, other_org):
        scoring.recalculate_organization(organization_id=organization.pk)
    plain.refresh_from_db()
    assert plain.score_rules == [software.pk]

    rows = get(api, "score-calibration", breakdown="rule")["rows"]
    assert [(r["key"], r["label"], r["leads"], r["reached_sql"], r["won"], r["won_rate"]) for r in rows] == [
        (str(software.pk), "Software (fit, +20)", 2, 1, 1, 0.5),
        (str(unused.pk), "Student (fit, -10)", 0, 0, 0, None),
        (str(pricing.pk), "Pricing page (behavior, +5)", 1, 1, 0, 0.0),
    ]


def test_the_sources_report_counts_deals_in_whole_numbers(api, org):
    # The schema says integer; a sum of counts comes back from PostgreSQL as a decimal (found by tests/fuzz).
    Lead.objects.create(organization=org, email="whole@example.com", source="web")
    rows = api.get("/api/v1/reports/sources/?start=2000-01-01").json()["rows"]
    assert rows and all(type(row["deals"]) is int for row in rows)
