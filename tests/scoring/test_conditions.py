"""The condition language: every operator on each kind of lead field and on activity properties, both as a
filter (segments) and as a boolean column (scoring), and the refusals of bad conditions."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from leads.conditions import (
    LEAD_FIELDS,
    OPS_BY_KIND,
    ConditionError,
    activity_q,
    as_boolean,
    lead_q,
    validate_activity_condition,
    validate_lead_condition,
)
from leads.models import Activity, Lead

from . import (
    add_activity,
    make_lead,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def _day(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat()


@pytest.fixture
def users(db):
    user_model = get_user_model()
    return [user_model.objects.create_user(username=f"owner{n}", email=f"owner{n}@example.test") for n in (1, 2)]


@pytest.fixture
def leads(org, users):
    """Three leads, named a, b and c, that differ in every field the conditions below test."""
    a = make_lead(
        org, first_name="a", industry="Software", job_title="Head of Sales", company="Acme", company_size=120,
        annual_revenue="1000000.00", country="US", source_type="paid", consent_opt_in=True,
        consent_at=datetime(2026, 1, 15, 12, tzinfo=UTC), tags=["vip", "beta"], owner=users[0],
        custom_fields={"plan": "Pro", "seats": "12", "tier": 3, "hint": "-1.5"},
        last_activity_at=NOW - timedelta(days=1),
    )
    b = make_lead(
        org, first_name="b", industry="FINANCE", job_title="VP Marketing", company="", company_size=None,
        source_type="organic", consent_opt_in=False, tags=[],
        custom_fields={"plan": "free", "seats": 3, "tier": "n/a", "hint": " 7 "},
    )
    c = make_lead(
        org, first_name="c", industry="", job_title="Engineer", company="Initech", company_size=10,
        annual_revenue="5000.00", source_type="", tags=["beta"], owner=users[1],
        custom_fields={"seats": "lots", "plan": "", "hint": "1e3", "flag": None},
    )
    for lead, days_ago in ((a, 2), (b, 40), (c, 400)):
        Lead.objects.filter(pk=lead.pk).update(created_at=NOW - timedelta(days=days_ago))
    return {"a": a, "b": b, "c": c}


def case_id(value) -> str:
    """A stable test id (dates in the cases depend on the clock, and xdist workers must agree on ids)."""
    if isinstance(value, dict):
        return "-".join(str(value.get(key)) for key in ("field", "activity_type", "property", "op") if key in value)
    return ""


def matching(org, condition) -> set[str]:
    """Names of the leads a condition matches; the filter and the boolean column must agree."""
    validate_lead_condition(condition)
    leads = Lead.objects.for_org(org)
    filtered = set(leads.filter(lead_q(condition)).values_list("first_name", flat=True))
    flagged = set(leads.annotate(hit=as_boolean(lead_q(condition))).filter(hit=True)
                  .values_list("first_name", flat=True))
    assert filtered == flagged, condition
    return filtered


# ----------------------------------------------------------------------------------------------- lead fields

LEAD_CASES = [
    # text: case-insensitive
    ({"field": "industry", "op": "eq", "value": "software"}, "a"),
    ({"field": "industry", "op": "neq", "value": "SOFTWARE"}, "bc"),
    ({"field": "industry", "op": "in", "value": ["software", "finance"]}, "ab"),
    ({"field": "industry", "op": "not_in", "value": ["Finance"]}, "ac"),
    ({"field": "industry", "op": "contains", "value": "OFT"}, "a"),
    ({"field": "industry", "op": "starts_with", "value": "fin"}, "b"),
    ({"field": "industry", "op": "is_empty"}, "c"),
    ({"field": "company", "op": "is_not_empty"}, "ac"),
    ({"field": "job_title", "op": "contains", "value": ["vp", "HEAD"]}, "ab"),  # any of
    ({"field": "job_title", "op": "starts_with", "value": ["eng", "vp"]}, "bc"),
    ({"field": "job_title", "op": "contains", "value": "_"}, ""),  # a literal, not a LIKE wildcard
    ({"field": "job_title", "op": "contains", "value": "%"}, ""),
    ({"field": "country", "op": "eq", "value": "us"}, "a"),
    # choice
    ({"field": "source_type", "op": "eq", "value": "paid"}, "a"),
    ({"field": "source_type", "op": "neq", "value": "paid"}, "bc"),
    ({"field": "source_type", "op": "in", "value": ["paid", "organic"]}, "ab"),
    ({"field": "source_type", "op": "not_in", "value": ["paid"]}, "bc"),
    ({"field": "source_type", "op": "is_empty"}, "c"),
    ({"field": "source_type", "op": "is_not_empty"}, "ab"),
    ({"field": "lifecycle_stage", "op": "eq", "value": "lead"}, "abc"),
    # number, with b's company_size NULL: no comparison matches it, but "not equal" does
    ({"field": "company_size", "op": "eq", "value": 120}, "a"),
    ({"field": "company_size", "op": "neq", "value": 120}, "bc"),
    ({"field": "company_size", "op": "in", "value": [10, 120]}, "ac"),
    ({"field": "company_size", "op": "not_in", "value": [10]}, "ab"),
    ({"field": "company_size", "op": "gt", "value": 10}, "a"),
    ({"field": "company_size", "op": "gt", "value": "50"}, "a"),  # a numeric string is a number
    ({"field": "company_size", "op": "gte", "value": 120}, "a"),
    ({"field": "company_size", "op": "lt", "value": 120}, "c"),
    ({"field": "company_size", "op": "lte", "value": 10}, "c"),
    ({"field": "company_size", "op": "lt", "value": 1}, ""),
    ({"field": "company_size", "op": "between", "value": [10, 120]}, "ac"),
    ({"field": "company_size", "op": "between", "value": [11, 119]}, ""),
    ({"field": "company_size", "op": "eq", "value": 10.5}, ""),  # not cut to the column's integer 10
    ({"field": "company_size", "op": "eq", "value": "10.0"}, "c"),
    ({"field": "company_size", "op": "in", "value": [10.5, 11]}, ""),
    ({"field": "company_size", "op": "neq", "value": 10.5}, "abc"),
    ({"field": "company_size", "op": "not_in", "value": [10.5]}, "abc"),
    ({"field": "company_size", "op": "gte", "value": 10.5}, "a"),
    ({"field": "company_size", "op": "lt", "value": 10.5}, "c"),
    ({"field": "company_size", "op": "eq", "value": -3}, ""),  # out of the column's range: matches nothing
    ({"field": "company_size", "op": "eq", "value": 10**12}, ""),
    ({"field": "company_size", "op": "neq", "value": -3}, "abc"),
    ({"field": "company_size", "op": "is_empty"}, "b"),
    ({"field": "company_size", "op": "is_not_empty"}, "ac"),
    ({"field": "annual_revenue", "op": "gt", "value": 5000.5}, "a"),
    ({"field": "annual_revenue", "op": "lte", "value": "5000"}, "c"),
    # bool
    ({"field": "consent_opt_in", "op": "eq", "value": True}, "a"),
    ({"field": "consent_opt_in", "op": "eq", "value": False}, "bc"),
    ({"field": "consent_opt_in", "op": "neq", "value": True}, "bc"),
    # date
    ({"field": "created_at", "op": "within_days", "value": 30}, "a"),
    ({"field": "created_at", "op": "within_days", "value": 365}, "ab"),
    ({"field": "created_at", "op": "within_days", "value": 1}, ""),
    ({"field": "created_at", "op": "gt", "value": _day(100)}, "ab"),
    ({"field": "created_at", "op": "lt", "value": _day(100)}, "c"),
    ({"field": "created_at", "op": "between", "value": [_day(50), _day(1)]}, "ab"),
    ({"field": "created_at", "op": "gte", "value": "2000-01-01"}, "abc"),  # a date alone is midnight UTC
    ({"field": "consent_at", "op": "gte", "value": "2026-01-15"}, "a"),
    ({"field": "consent_at", "op": "lte", "value": "2026-01-15"}, ""),
    ({"field": "consent_at", "op": "is_empty"}, "bc"),
    ({"field": "last_activity_at", "op": "is_not_empty"}, "a"),
    # tags
    ({"field": "tags", "op": "eq", "value": "vip"}, "a"),
    ({"field": "tags", "op": "contains", "value": "beta"}, "ac"),
    ({"field": "tags", "op": "in", "value": ["vip", "nope"]}, "a"),
    ({"field": "tags", "op": "not_in", "value": ["beta"]}, "b"),
    ({"field": "tags", "op": "is_empty"}, "b"),
    ({"field": "tags", "op": "is_not_empty"}, "ac"),
    # custom fields: text case-insensitively, a missing key (or JSON null) is empty text
    ({"field": "custom_fields.plan", "op": "eq", "value": "pro"}, "a"),
    ({"field": "custom_fields.plan", "op": "neq", "value": "PRO"}, "bc"),
    ({"field": "custom_fields.plan", "op": "in", "value": ["PRO", "Free"]}, "ab"),
    ({"field": "custom_fields.plan", "op": "not_in", "value": ["free"]}, "ac"),
    ({"field": "custom_fields.plan", "op": "contains", "value": "R"}, "ab"),
    ({"field": "custom_fields.plan", "op": "contains", "value": ["zz", "FR"]}, "b"),
    ({"field": "custom_fields.plan", "op": "starts_with", "value": "f"}, "b"),
    ({"field": "custom_fields.plan", "op": "is_empty"}, "c"),
    ({"field": "custom_fields.plan", "op": "is_not_empty"}, "ab"),
    ({"field": "custom_fields.missing", "op": "is_empty"}, "abc"),
    ({"field": "custom_fields.flag", "op": "is_empty"}, "abc"),
    ({"field": "custom_fields.missing", "op": "neq", "value": "x"}, "abc"),
    # custom fields as numbers: JSON numbers and numeric strings; other values match no comparison
    ({"field": "custom_fields.seats", "op": "gt", "value": 5}, "a"),
    ({"field": "custom_fields.seats", "op": "lt", "value": 5}, "b"),
    ({"field": "custom_fields.seats", "op": "gte", "value": "3"}, "ab"),
    ({"field": "custom_fields.seats", "op": "lte", "value": 12}, "ab"),
    ({"field": "custom_fields.seats", "op": "between", "value": [3, 12]}, "ab"),
    ({"field": "custom_fields.seats", "op": "between", "value": [4, 11]}, ""),
    ({"field": "custom_fields.seats", "op": "eq", "value": 12}, "a"),
    ({"field": "custom_fields.seats", "op": "neq", "value": 3}, "ac"),
    ({"field": "custom_fields.seats", "op": "not_in", "value": ["lots"]}, "ab"),
    ({"field": "custom_fields.seats", "op": "in", "value": [3, "lots"]}, "bc"),
    ({"field": "custom_fields.tier", "op": "gt", "value": 2}, "a"),
    ({"field": "custom_fields.tier", "op": "lt", "value": 100}, "a"),
    ({"field": "custom_fields.hint", "op": "gt", "value": -2}, "ab"),  # "-1.5", " 7 " yes; "1e3" is no number
    ({"field": "custom_fields.hint", "op": "lt", "value": 0}, "a"),
    ({"field": "custom_fields.missing", "op": "gt", "value": -1000}, ""),
    ({"field": "custom_fields.missing", "op": "lt", "value": 1000}, ""),
]


@pytest.mark.parametrize(("condition", "expected"), LEAD_CASES, ids=case_id)
def test_lead_condition(org, other_org, leads, condition, expected):
    make_lead(other_org, first_name="a", industry="Software", company_size=120, tags=["vip"],
              custom_fields={"plan": "Pro", "seats": 12})  # never seen from org
    assert matching(org, condition) == set(expected)


def test_owner_conditions(org, leads, users):
    first, second = (user.pk for user in users)
    assert matching(org, {"field": "owner", "op": "eq", "value": first}) == {"a"}
    assert matching(org, {"field": "owner", "op": "neq", "value": first}) == {"b", "c"}  # no owner is not first
    assert matching(org, {"field": "owner", "op": "in", "value": [first, second]}) == {"a", "c"}
    assert matching(org, {"field": "owner", "op": "not_in", "value": [first]}) == {"b", "c"}
    assert matching(org, {"field": "owner", "op": "is_empty"}) == {"b"}
    assert matching(org, {"field": "owner", "op": "is_not_empty"}) == {"a", "c"}
    # an id beyond the column's range: Django turns the test into "nothing" / "everything" without SQL
    assert matching(org, {"field": "owner", "op": "eq", "value": 2**40}) == set()
    assert matching(org, {"field": "owner", "op": "neq", "value": 2**40}) == {"a", "b", "c"}


def test_every_operator_of_every_kind_is_covered():
    covered = {(LEAD_FIELDS.get(c["field"], "json"), c["op"]) for c, _ in LEAD_CASES}
    covered |= {("owner", op) for op in OPS_BY_KIND["owner"]}
    wanted = {(kind, op) for kind, ops in OPS_BY_KIND.items() for op in ops}
    assert wanted - covered == set()


# ----------------------------------------------------------------------------------------------- activities


@pytest.fixture
def activities(org):
    lead = make_lead(org)
    other = make_lead(org)
    add_activity(lead, "page_view", properties={"n": "p1", "url": "https://example.test/Pricing", "seconds": "45"})
    add_activity(lead, "page_view", properties={"n": "p2", "url": "/blog"})
    add_activity(lead, "page_view", properties={"n": "p3", "seconds": 5})
    add_activity(other, "page_view", properties={"n": "p4", "seconds": "soon"})
    add_activity(lead, "email_click", properties={"n": "e1", "url": "/pricing", "campaign": "Spring"})
    add_activity(other, "form_submission", properties={"n": "f1"})


def activity_matching(org, condition) -> set[str]:
    validate_activity_condition(condition)
    rows = Activity.objects.for_org(org)
    filtered = set(rows.filter(activity_q(condition)).values_list("properties__n", flat=True))
    flagged = set(rows.annotate(hit=as_boolean(activity_q(condition))).filter(hit=True)
                  .values_list("properties__n", flat=True))
    assert filtered == flagged, condition
    return filtered


ACTIVITY_CASES = [
    ({"activity_type": "page_view"}, {"p1", "p2", "p3", "p4"}),
    ({"activity_type": "form_submission"}, {"f1"}),
    ({"activity_type": "download"}, set()),
    ({"activity_type": "page_view", "property": "url", "op": "contains", "value": "/pricing"}, {"p1"}),
    ({"activity_type": "page_view", "property": "url", "op": "contains", "value": ["BLOG", "pricing"]}, {"p1", "p2"}),
    ({"activity_type": "page_view", "property": "url", "op": "eq", "value": "/BLOG"}, {"p2"}),
    ({"activity_type": "page_view", "property": "url", "op": "neq", "value": "/blog"}, {"p1", "p3", "p4"}),
    ({"activity_type": "page_view", "property": "url", "op": "in", "value": ["/blog", "/x"]}, {"p2"}),
    ({"activity_type": "page_view", "property": "url", "op": "not_in", "value": ["/blog"]}, {"p1", "p3", "p4"}),
    ({"activity_type": "page_view", "property": "url", "op": "starts_with", "value": "HTTPS"}, {"p1"}),
    ({"activity_type": "page_view", "property": "url", "op": "is_empty"}, {"p3", "p4"}),
    ({"activity_type": "page_view", "property": "url", "op": "is_not_empty"}, {"p1", "p2"}),
    ({"activity_type": "page_view", "property": "seconds", "op": "gt", "value": 10}, {"p1"}),
    ({"activity_type": "page_view", "property": "seconds", "op": "gte", "value": "5"}, {"p1", "p3"}),
    ({"activity_type": "page_view", "property": "seconds", "op": "lt", "value": 10}, {"p3"}),
    ({"activity_type": "page_view", "property": "seconds", "op": "lte", "value": 45}, {"p1", "p3"}),
    ({"activity_type": "page_view", "property": "seconds", "op": "between", "value": [1, 100]}, {"p1", "p3"}),
    ({"activity_type": "page_view", "property": "seconds", "op": "neq", "value": 45}, {"p2", "p3", "p4"}),
    ({"activity_type": "email_click", "property": "url", "op": "contains", "value": "pricing"}, {"e1"}),
    ({"activity_type": "page_view", "where": [
        {"property": "url", "op": "contains", "value": "pricing"},
        {"property": "seconds", "op": "gte", "value": 45},
    ]}, {"p1"}),
    ({"activity_type": "page_view", "property": "url", "op": "contains", "value": "pricing",
      "where": [{"property": "seconds", "op": "gt", "value": 50}]}, set()),
]


@pytest.mark.parametrize(("condition", "expected"), ACTIVITY_CASES,
                         ids=case_id)
def test_activity_condition(org, activities, condition, expected):
    assert activity_matching(org, condition) == expected


# ----------------------------------------------------------------------------------------------- refusals

LEAD_REFUSALS = [
    ({"field": "nope", "op": "eq", "value": 1}, "field"),
    ({"field": "custom_fields.bad key!", "op": "eq", "value": 1}, "field"),
    ({"field": "custom_fields.", "op": "eq", "value": 1}, "field"),
    ({"field": None, "op": "eq", "value": 1}, "field"),
    ({"field": "industry", "op": "like", "value": "x"}, "op"),
    ({"field": "industry"}, "op"),
    ({"field": "industry", "op": "gt", "value": 1}, "op"),
    ({"field": "company_size", "op": "contains", "value": "1"}, "op"),
    ({"field": "consent_opt_in", "op": "gt", "value": 1}, "op"),
    ({"field": "tags", "op": "gt", "value": 1}, "op"),
    ({"field": "source_type", "op": "contains", "value": "pa"}, "op"),
    ({"field": "created_at", "op": "eq", "value": "2026-01-01"}, "op"),
    ({"field": "owner", "op": "gt", "value": 1}, "op"),
    ({"field": "company_size", "op": "gt", "value": "ten"}, "value"),
    ({"field": "company_size", "op": "gt", "value": True}, "value"),
    ({"field": "company_size", "op": "eq", "value": "NaN"}, "value"),
    ({"field": "company_size", "op": "between", "value": [1, "x"]}, "value"),
    ({"field": "company_size", "op": "between", "value": [100, 10]}, "value"),
    ({"field": "company_size", "op": "between", "value": [1]}, "value"),
    ({"field": "company_size", "op": "between", "value": 5}, "value"),
    ({"field": "custom_fields.seats", "op": "gt", "value": "abc"}, "value"),
    ({"field": "custom_fields.seats", "op": "between", "value": [5, 1]}, "value"),
    ({"field": "created_at", "op": "gt", "value": "yesterday"}, "value"),
    ({"field": "created_at", "op": "between", "value": ["2026-02-01", "2026-01-01"]}, "value"),
    ({"field": "created_at", "op": "within_days", "value": -1}, "value"),
    ({"field": "created_at", "op": "within_days", "value": 1.5}, "value"),
    ({"field": "industry", "op": "in", "value": []}, "value"),
    ({"field": "industry", "op": "in", "value": "Software"}, "value"),
    ({"field": "industry", "op": "contains", "value": []}, "value"),
    ({"field": "industry", "op": "eq"}, "value"),
    ({"field": "industry", "op": "eq", "value": {"a": 1}}, "value"),
    ({"field": "source_type", "op": "eq", "value": "billboard"}, "value"),
    ({"field": "consent_opt_in", "op": "eq", "value": "true"}, "value"),
    ({"field": "owner", "op": "eq", "value": "5"}, "value"),
    ({"field": "industry", "op": "eq", "value": "x", "extra": 1}, "condition"),
    (["industry", "eq", "x"], "condition"),
]


@pytest.mark.parametrize(("condition", "key"), LEAD_REFUSALS, ids=case_id)
def test_bad_lead_condition_is_refused(condition, key):
    with pytest.raises(ConditionError) as refused:
        validate_lead_condition(condition)
    assert set(refused.value.errors) == {key}
    assert all(refused.value.errors[key])


@pytest.mark.parametrize("field", ["score", "fit_score", "behavior_score", "grade", "temperature"])
def test_score_fields_can_be_refused(field):
    op, value = ("eq", "A") if field == "grade" else ("eq", "hot") if field == "temperature" else ("gt", 1)
    validate_lead_condition({"field": field, "op": op, "value": value})  # allowed for segments
    with pytest.raises(ConditionError) as refused:
        validate_lead_condition({"field": field, "op": op, "value": value}, allow_score_fields=False)
    assert set(refused.value.errors) == {"field"}


ACTIVITY_REFUSALS = [
    ({"activity_type": "telepathy"}, "activity_type"),
    ({}, "activity_type"),
    ({"activity_type": "page_view", "property": "bad name", "op": "eq", "value": "x"}, "property"),
    ({"activity_type": "page_view", "property": "", "op": "eq", "value": "x"}, "property"),
    ({"activity_type": "page_view", "property": 5, "op": "eq", "value": "x"}, "property"),
    ({"activity_type": "page_view", "op": "eq", "value": "x"}, "property"),
    ({"activity_type": "page_view", "property": "url", "op": "like", "value": "x"}, "op"),
    ({"activity_type": "page_view", "property": "url", "op": "within_days", "value": 3}, "op"),
    ({"activity_type": "page_view", "property": "url"}, "op"),
    ({"activity_type": "page_view", "property": "seconds", "op": "gt", "value": "abc"}, "value"),
    ({"activity_type": "page_view", "property": "seconds", "op": "between", "value": [9, 1]}, "value"),
    ({"activity_type": "page_view", "where": {"property": "url"}}, "where"),
    ({"activity_type": "page_view", "where": ["url"]}, "property"),
    ({"activity_type": "page_view", "where": [{"property": "u rl", "op": "eq", "value": "x"}]}, "property"),
    ({"activity_type": "page_view", "where": [{"property": "url", "op": "nope", "value": "x"}]}, "op"),
    ({"activity_type": "page_view", "url": "/pricing"}, "condition"),
    ("page_view", "condition"),
]


@pytest.mark.parametrize(("condition", "key"), ACTIVITY_REFUSALS, ids=case_id)
def test_bad_activity_condition_is_refused(condition, key):
    with pytest.raises(ConditionError) as refused:
        validate_activity_condition(condition)
    assert set(refused.value.errors) == {key}
