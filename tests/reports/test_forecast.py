"""The forecast and pipeline-stage reports on a small data set whose every number is worked out by hand below.

Forecast, January–February 2030, default pipeline (probabilities: qualification 10, needs analysis 25, proposal 50,
negotiation 75):

deal  owner  stage           amount        expected close   weighted
D1    anna   Proposal        1,000.00 EUR  15 Jan           500.00
D2    anna   Negotiation     2,000.00 EUR  20 Jan           1,500.00
D3    ben    Qualification     333.33 EUR  31 Jan           33.333
D4    anna   Needs analysis    400.00 USD   1 Feb           100.00
D5    ben    Won               700.00 EUR  (won 10 Jan)
D6    anna   Lost              900.00 EUR  (lost 12 Jan)    left out
D7    anna   Proposal        5,000.00 EUR   5 Mar           left out (after the range)

So by owner: Jan·anna EUR 2 deals 3,000.00 weighted 2,000.00; Jan·ben EUR 1 deal 333.33 weighted 33.33, won 1
700.00; Feb·anna USD 1 deal 400.00 weighted 100.00. By month, January EUR: 3 deals 3,333.33, weighted 2,033.33
(33.333 is rounded once, in the sum), won 700.00.
"""

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from leadcrm.models import Role
from leads import services
from leads.models import Deal, DealStageChange
from tests.leads.deals import default_pipeline, make_deal, stage

pytestmark = pytest.mark.django_db

RANGE = {"start": "2030-01-01", "end": "2030-02-28"}


@pytest.fixture
def forecast_data(org, member):
    anna, ben = member(Role.REP, email="anna@acme.test"), member(Role.REP, email="ben@acme.test")
    make_deal(org, owner=anna, stage_name="Proposal", amount="1000.00", expected_close=date(2030, 1, 15))
    make_deal(org, owner=anna, stage_name="Negotiation", amount="2000.00", expected_close=date(2030, 1, 20))
    make_deal(org, owner=ben, stage_name="Qualification", amount="333.33", expected_close=date(2030, 1, 31))
    make_deal(
        org, owner=anna, stage_name="Needs analysis", amount="400.00", currency="USD", expected_close=date(2030, 2, 1)
    )
    won = make_deal(org, owner=ben, stage_name="Won", amount="700.00")
    lost = make_deal(org, owner=anna, stage_name="Lost", amount="900.00")
    Deal.objects.filter(pk=won.pk).update(closed_at=datetime(2030, 1, 10, 12, tzinfo=UTC))
    Deal.objects.filter(pk=lost.pk).update(closed_at=datetime(2030, 1, 12, 12, tzinfo=UTC))
    make_deal(org, owner=anna, stage_name="Proposal", amount="5000.00", expected_close=date(2030, 3, 5))
    return anna, ben


def _rows(answer):
    assert answer.status_code == 200, answer.content
    return [
        {k: row[k] for k in ("label", "currency", "open_deals", "pipeline", "weighted", "won_deals", "won")}
        for row in answer.json()["rows"]
    ]


def test_forecast_by_owner_and_month_against_won(api, org, other_org, forecast_data):
    make_deal(other_org, stage_name="Proposal", amount="99999.00", expected_close=date(2030, 1, 15))
    by_owner = _rows(api.get("/api/v1/reports/forecast/", RANGE))
    assert by_owner == [
        {
            "label": "2030-01 · anna@acme.test",
            "currency": "EUR",
            "open_deals": 2,
            "pipeline": "3000.00",
            "weighted": "2000.00",
            "won_deals": 0,
            "won": "0.00",
        },
        {
            "label": "2030-01 · ben@acme.test",
            "currency": "EUR",
            "open_deals": 1,
            "pipeline": "333.33",
            "weighted": "33.33",
            "won_deals": 1,
            "won": "700.00",
        },
        {
            "label": "2030-02 · anna@acme.test",
            "currency": "USD",
            "open_deals": 1,
            "pipeline": "400.00",
            "weighted": "100.00",
            "won_deals": 0,
            "won": "0.00",
        },
    ]
    by_month = _rows(api.get("/api/v1/reports/forecast/", {**RANGE, "breakdown": "month"}))
    assert by_month == [
        {
            "label": "2030-01",
            "currency": "EUR",
            "open_deals": 3,
            "pipeline": "3333.33",
            "weighted": "2033.33",
            "won_deals": 1,
            "won": "700.00",
        },
        {
            "label": "2030-02",
            "currency": "USD",
            "open_deals": 1,
            "pipeline": "400.00",
            "weighted": "100.00",
            "won_deals": 0,
            "won": "0.00",
        },
    ]


def test_forecast_csv_and_bad_input(api, org, other_org, forecast_data):
    answer = api.get("/api/v1/reports/forecast/", {**RANGE, "format": "csv"})
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    body = b"".join(answer.streaming_content) if answer.streaming else answer.content
    table = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))  # with a BOM, for spreadsheets
    assert table[0][:6] == ["key", "label", "month", "owner", "currency", "open_deals"]
    assert table[1][7] == "2000.00"  # anna's January weighted pipeline
    for params, field in (
        ({"breakdown": "planet"}, "breakdown"),
        ({"pipeline": "nope"}, "pipeline"),
        ({"pipeline": str(default_pipeline(other_org).pk)}, "pipeline"),
        ({"start": "2030-03-01", "end": "2030-01-01"}, "end"),
    ):
        refused = api.get("/api/v1/reports/forecast/", {**RANGE, **params})
        assert refused.status_code == 400 and field in refused.json()["errors"], params


def test_stage_conversion_and_days_in_stage(api, org):
    """Four deals entered Qualification 10 days ago: two moved on to Needs analysis, one was lost, one stays."""
    deals = [make_deal(org, days_in_stage=10) for _ in range(4)]
    qualification = stage(org, "Qualification")
    for deal in deals[:2]:
        services.move_deal(deal=deal, stage_id=stage(org, "Needs analysis").pk, expected_stage_id=qualification.pk)
    services.move_deal(
        deal=deals[2], stage_id=stage(org, "Lost").pk, expected_stage_id=qualification.pk, reason="No budget"
    )
    today = date.today()
    answer = api.get("/api/v1/reports/pipeline/", {"start": str(today - timedelta(days=30)), "end": str(today)})
    rows = {row["label"]: row for row in answer.json()["rows"]}
    assert list(rows) == ["Qualification", "Needs analysis", "Proposal", "Negotiation", "Won", "Lost"]
    q = rows["Qualification"]
    assert (q["deals_now"], q["entered"], q["moved_on"], q["conversion_rate"], q["lost"]) == (1, 4, 2, 0.5, 1)
    assert 9.99 <= q["avg_days_in_stage"] <= 10.01  # each of the four stayed ten days (one is still there)
    n = rows["Needs analysis"]
    assert (n["deals_now"], n["entered"], n["moved_on"], n["conversion_rate"]) == (2, 2, 0, 0.0)
    assert n["avg_days_in_stage"] < 0.01
    assert rows["Lost"]["entered"] == 1 and rows["Lost"]["conversion_rate"] is None
    assert DealStageChange.objects.filter(deal__in=deals).count() == 7


def test_the_report_pages_draw_a_chart_beside_the_table(org, forecast_data, django_assert_max_num_queries):
    client = APIClient()
    client.force_login(org.memberships.get(role=Role.ADMIN).user)
    with django_assert_max_num_queries(12):
        page = client.get("/reports/forecast/", RANGE).content.decode()
    assert 'data-chart="report-chart"' in page and "Weighted pipeline" in page
    assert "2,000.00" in page and "anna@acme.test" in page
    assert 'href="/api/v1/reports/forecast/?start=2030-01-01&amp;end=2030-02-28&amp;format=csv"' in page
    stages = client.get("/reports/pipeline/").content.decode()
    assert "Stage conversion" in stages and "Qualification" in stages


def test_reps_do_not_read_the_reports(org, member):
    client = APIClient()
    client.force_login(member(Role.REP))
    assert client.get("/api/v1/reports/forecast/").status_code == 403
    assert client.get("/reports/pipeline/").status_code == 403
