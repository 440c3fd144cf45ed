"""The report pages in the browser: the dashboard and a page per report, on the data set of conftest.py."""

import csv
import html
import io
import json
import re
from datetime import date

import pytest

from leadcrm.models import Role

from .conftest import FORMULA_SOURCE, RANGE, T0, grow, make_lead

pytestmark = pytest.mark.django_db

RANGE_DAY = date(2026, 3, 15)

REPORTS = ["funnel", "speed-to-lead", "sales-cycle", "reps", "sources", "campaigns", "score-calibration"]


def page(client, path, **params):
    response = client.get(path, {**RANGE, **params})
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def rows(content):
    """The report table as lists of cell texts (header row first)."""
    table = re.search(r'<table class="data report-table">(.*?)</table>', content, re.S).group(1)
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
             for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", line, re.S)]
            for line in re.findall(r"<tr>(.*?)</tr>", table, re.S)]


def card(content, label):
    found = re.search(rf">{re.escape(label)}</a></header>\s*<p class=\"report-number\"><strong>([^<]*)</strong>",
                      content)
    assert found, label
    return found.group(1)


def test_dashboard_shows_the_key_numbers_with_links_and_charts(browser, data, noise, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        content = page(browser, "/reports/")
    assert card(content, "Leads created") == "5"
    assert card(content, "MQLs") == "4"
    assert card(content, "SQLs") == "2"
    assert card(content, "Won revenue") == "$1,000.00"  # the rival's 9999.00 deal is not counted
    assert card(content, "Speed to lead (median time to first touch)") == "1 h 40 min"
    assert 'href="/reports/funnel/?start=2026-03-01&amp;end=2026-03-31"' in content
    assert 'href="/reports/speed-to-lead/?start=2026-03-01&amp;end=2026-03-31"' in content
    assert 'data-chart="funnel-chart"' in content and 'id="funnel-chart"' in content
    assert '"data": [5, 4, 3, 2, 1, 1]' in content
    top = re.search(r'<table class="data top-sources">(.*?)</table>', content, re.S).group(1)
    assert top.index(">blog<") < top.index(">ads<")  # two leads before one
    assert "9999" not in content and "rival" not in content


def test_dashboard_query_count_does_not_grow_with_data(browser, org, data, django_assert_max_num_queries):
    with django_assert_max_num_queries(10) as few:
        page(browser, "/reports/")
    grow(org, data, 15)
    with django_assert_max_num_queries(len(few.captured_queries)):
        content = page(browser, "/reports/")
    assert card(content, "Leads created") == "20"


def test_funnel_page_shows_the_rows_and_breakdowns(browser, data, noise, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        content = page(browser, "/reports/funnel/")
    header, row = rows(content)
    assert header[:5] == ["Group", "Leads", "MQL", "Lead → MQL", "SAL"]
    assert row[:4] == ["All", "5", "4", "80.0%"]
    table = rows(page(browser, "/reports/funnel/", breakdown="source_type"))
    assert table[0][0] == "Source type"
    assert {line[0]: line[1] for line in table[1:]} == {"Organic": "2", "Paid": "2", "Referral": "1"}
    assert '<option value="source_type" selected>Source type</option>' in page(
        browser, "/reports/funnel/", breakdown="source_type")


@pytest.mark.parametrize("name", REPORTS)
def test_each_report_page_renders_its_numbers(browser, data, noise, name, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        content = page(browser, f"/reports/{name}/")
    table = {line[0]: line[1:] for line in rows(content)[1:]}
    assert table, name
    expected = {
        "funnel": ("All", 0, "5"),
        "speed-to-lead": ("All", 0, "4"),  # routed leads created in March
        "sales-cycle": ("All", 0, "2"),  # won in March (one of a February lead)
        "reps": ("anna@acme.test", 0, "3"),  # assigned in March
        "sources": ("blog", 0, "2"),
        "campaigns": ("Spring", 0, "2"),
        "score-calibration": ("50 to 59", 0, "2"),
    }[name]
    label, index, value = expected
    assert table[label][index] == value
    assert "rival" not in content and "9999" not in content
    assert f'href="/api/v1/reports/{name}/?start=2026-03-01&amp;end=2026-03-31&amp;format=csv"' in content


@pytest.mark.parametrize("path", ["/reports/", "/reports/funnel/", "/reports/campaigns/"])
@pytest.mark.parametrize(("params", "field"), [({"start": "2026-13-01"}, "start"), ({"end": "yesterday"}, "end"),
                                                ({"start": "2026-03-10", "end": "2026-03-01"}, "end")])
def test_bad_dates_show_a_form_error_with_400(browser, path, params, field):
    response = browser.get(path, params)
    assert response.status_code == 400
    content = response.content.decode()
    assert f'id="report-{field}-error"' in content
    assert 'aria-invalid="true"' in content


def test_bad_breakdown_and_segment_are_400_with_field_messages(browser, org, other_org):
    response = browser.get("/reports/funnel/", {"breakdown": "planet"})
    assert response.status_code == 400 and "Unknown breakdown" in response.content.decode()
    response = browser.get("/reports/funnel/", {"breakdown": "segment"})
    assert response.status_code == 400 and "Name the segment" in response.content.decode()
    response = browser.get("/reports/campaigns/", {"attribution": "magic"})
    assert response.status_code == 400 and "Unknown attribution" in response.content.decode()


def test_unknown_report_is_404(browser):
    assert browser.get("/reports/nothing/").status_code == 404


@pytest.mark.parametrize(("role", "home"), [
    (Role.ADMIN, "/reports/"), (Role.MANAGER, "/reports/sales/"), (Role.MARKETER, "/reports/marketing/")])
def test_org_wide_roles_see_the_pages_and_land_on_their_home(client, member, role, home):
    client.force_login(member(role, email=f"{role}-x@acme.test"))
    for path in ("/reports/", "/reports/marketing/", "/reports/sales/"):
        assert client.get(path).status_code == 200
    assert client.get("/")["Location"] == home  # where signing in lands
    assert f'<a href="{home}">Reports</a>' in client.get("/leads/").content.decode()


def test_reps_get_404_and_no_nav_item(client, member, org):
    client.force_login(member(Role.REP))
    for path in ("/reports/", "/reports/marketing/", "/reports/sales/"):
        assert client.get(path).status_code == 403
    for name in REPORTS:
        assert client.get(f"/reports/{name}/").status_code == 403
    assert client.get("/")["Location"] == "/queue/"
    assert ">Reports</a>" not in client.get("/leads/").content.decode()


def test_marketing_home_shows_campaign_spend_return_and_calibration(browser, data, noise,
                                                                    django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        content = page(browser, "/reports/marketing/")
    assert (card(content, "Leads created"), card(content, "MQLs"), card(content, "Lead to MQL")) == ("5", "4", "80.0%")
    # Spring cost 400 and Webinar 100; first-touch credit gives Spring the won 1000; four campaign MQLs
    assert (card(content, "Campaign spend"), card(content, "Cost per campaign MQL"),
            card(content, "Campaign ROI")) == ("$500.00", "$125.00", "100.0%")
    assert 'href="/reports/campaigns/?start=2026-03-01&amp;end=2026-03-31"' in content
    top = re.search(r'<table class="data top-campaigns">(.*?)</table>', content, re.S).group(1)
    assert top.index(">Spring<") < top.index(">Webinar<") and "150%" in top and "-100%" in top
    assert ">Old<" not in top  # no members and no cost in the range
    assert 'data-chart="calibration-chart"' in content and '"labels": ["10 to 19", "40 to 49", "50 to 59"' in content
    assert "9999" not in content and "rival" not in content


def test_sales_home_shows_speed_deals_and_the_rep_leaderboard(browser, data, noise, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        content = page(browser, "/reports/sales/")
    assert (card(content, "Median time to first touch"), card(content, "Touched within SLA")) == ("1 h 40 min", "33.3%")
    assert (card(content, "Deals won"), card(content, "Deals lost"), card(content, "Median time to win")) == (
        "2", "2", "21 d 12 h")
    assert card(content, "Close rate") == "20.0%"  # one won of five assignments
    leaders = re.search(r'<table class="data rep-leaders">(.*?)</table>', content, re.S).group(1)
    assert leaders.index("anna@acme.test") < leaders.index("bert@acme.test")
    assert '"labels": ["No budget", "Too expensive"]' in content  # the lost-reasons chart
    assert 'href="/reports/sales-cycle/?start=2026-03-01&amp;end=2026-03-31&amp;breakdown=lost_reason"' in content


@pytest.mark.parametrize("path", ["/reports/marketing/", "/reports/sales/"])
def test_home_pages_refuse_a_bad_range_with_the_form(browser, path):
    response = browser.get(path, {"start": "2026-03-10", "end": "2026-03-01"})
    assert response.status_code == 400 and "The end date is before the start date." in response.content.decode()


def test_signed_out_is_sent_to_log_in(client):
    response = client.get("/reports/funnel/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_csv_link_downloads_the_report_with_formulas_neutralised(browser, data):
    content = page(browser, "/reports/sources/")
    url = html.unescape(re.search(r'href="(/api/v1/reports/sources/\?[^"]+)"', content).group(1))
    response = browser.get(url)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    table = list(csv.DictReader(io.StringIO(body)))
    labels = {row["label"]: row for row in table}
    assert "'" + FORMULA_SOURCE in labels and FORMULA_SOURCE not in labels
    assert labels["blog"]["leads"] == "2"


def test_lead_supplied_source_is_escaped(browser, org, data):
    make_lead(org, T0, first_name="x", source="<script>alert(1)</script>")
    for path in ("/reports/", "/reports/sources/"):
        content = page(browser, path)
        assert "<script>alert(1)" not in content
        assert "alert(1)" in content  # shown, as text


def test_another_orgs_user_sees_only_their_own_numbers(client, other_org, data):
    from leadcrm.models import Membership

    client.force_login(Membership.objects.get(organization=other_org, role=Role.ADMIN).user)
    content = page(client, "/reports/")
    assert card(content, "Leads created") == "0"
    content = page(client, "/reports/sources/")
    assert "blog" not in content and "partner" not in content
    assert "No leads were created in this range." in content and 'href="/forms/"' in content


def test_report_pages_read_as_a_person_would(browser, org, data):
    data["spring"].costs.create(organization=org, date=RANGE_DAY, amount="2150.50")
    speed = rows(page(browser, "/reports/speed-to-lead/"))
    header, row = speed[0], dict(zip(speed[0], speed[1], strict=True))
    assert "Capture → MQL, 90th percentile" in header and "Share within SLA" in header
    assert row["Capture → first touch, median"] == "1 h 40 min"  # 100 minutes
    cycle = dict(zip(*rows(page(browser, "/reports/sales-cycle/"))[:2], strict=True))
    assert cycle["Created → won, median"] == "21 d 12 h"  # 10 and 33 days
    campaigns = {line[0]: line for line in rows(page(browser, "/reports/campaigns/"))}
    header = campaigns["Campaign"]
    spring = dict(zip(header, campaigns["Spring"], strict=True))
    assert (spring["Cost"], spring["Won revenue"], spring["ROI"]) == ("$2,550.50", "$1,000.00", "−60.8%")
    content = page(browser, "/reports/campaigns/")
    assert '<option value="first_touch" selected>First touch</option>' in content
    sources = {line[0]: line for line in rows(page(browser, "/reports/sources/"))}
    cost = sources["Source"].index("Campaign cost (shared)")
    assert sources["ads"][cost] == "$1,275.25" and sources[FORMULA_SOURCE][cost] == "$1,325.25"
    assert "in proportion to how many members each source brought" in page(browser, "/reports/sources/")
    calibration = page(browser, "/reports/score-calibration/")
    assert "<option value=\"band\" selected>Score band</option>" in calibration
    assert rows(calibration)[0][:2] == ["Score band", "Leads"]


@pytest.mark.parametrize("name", REPORTS)
def test_each_report_has_its_chart_beside_the_table(browser, data, name):
    content = page(browser, f"/reports/{name}/")
    assert 'data-chart="report-chart"' in content and 'id="report-chart"' in content
    assert "vendor/chartjs/chart.umd.min.js" in content
    spec = json.loads(re.search(r'<script id="report-chart" type="application/json">(.*?)</script>', content,
                                re.S).group(1))
    assert spec["labels"] and all(dataset["data"] for dataset in spec["datasets"])


@pytest.mark.parametrize(("name", "says", "link"), [
    ("funnel", "No leads were created in this range.", "/imports/"),
    ("speed-to-lead", "No routed leads were created in this range.", "/team/"),
    ("sales-cycle", "No deals were won or lost in this range.", "/deals/"),
    ("reps", "There are no reps yet.", "/team/"),
    ("sources", "No leads were created in this range.", "/forms/"),
    ("campaigns", "There are no campaigns yet.", "/campaigns/"),
    ("score-calibration", "No leads were created in this range.", "/forms/"),
])
def test_empty_reports_say_what_to_do(browser, name, says, link):
    content = page(browser, f"/reports/{name}/")
    assert says in content and f'href="{link}"' in content
    assert "report-table" not in content and 'data-chart="report-chart"' not in content


def test_reports_that_list_reps_or_campaigns_keep_them_when_nothing_happened(browser, data):
    content = page(browser, "/reports/reps/", start="2025-01-01", end="2025-01-31")
    assert "No leads were assigned to reps in this range." in content
    assert [line[0] for line in rows(content)[1:]] == ["anna@acme.test", "bert@acme.test", "cleo@acme.test"]
    content = page(browser, "/reports/campaigns/", start="2025-01-01", end="2025-01-31")
    assert "No campaign had members or costs in this range." in content
    assert [line[0] for line in rows(content)[1:]] == ["Old", "Spring", "Webinar"]
    content = page(browser, "/reports/funnel/", start="2025-01-01", end="2025-01-31")
    assert "No leads were created in this range." in content and "report-table" not in content


def test_calibration_by_predictive_band_shows_lift_over_the_base_rate(browser, org, data):
    from leads.models import Lead

    Lead.objects.filter(organization=org, first_name="l1").update(predictive_band="A")
    content = page(browser, "/reports/score-calibration/", breakdown="predictive_band")
    assert '<option value="predictive_band" selected>Predictive band</option>' in content
    table = rows(content)
    assert table[0][0] == "Predictive band" and table[0][-2:] == ["Base win rate", "Lift (× base)"]
    by_band = {line[0]: line for line in table[1:]}
    assert set(by_band) == {"A", "No probability yet"}
    assert by_band["A"][-2] == "20.0%" and by_band["A"][-1].startswith("5")
