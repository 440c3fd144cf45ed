"""The condition language shared by scoring rules, segments and routing rules.

A condition is JSON, checked by `validate_*` and turned into a boolean ORM expression by `*_q`, so it
always runs inside one SQL statement, never as a filter in Python:

    {"field": "industry", "op": "in", "value": ["Software", "Finance"]}              on a lead field
    {"field": "custom_fields.plan", "op": "eq", "value": "pro"}                        on a custom field
    {"activity_type": "page_view", "property": "url", "op": "contains", "value": "/pricing"}
    {"activity_type": "form_submission"}                                                any activity of a type

An activity condition may also list several property tests: `"where": [{"property", "op", "value"}, ...]`.

Semantics (also what the tests' reference implementation follows): text compares case-insensitively and a
missing custom field or property is empty text; numbers compare numerically, and a value that is not a number
matches no comparison (but does match `neq`/`not_in`); dates take ISO 8601 values.
"""

import datetime
import decimal
import re

from django.db.models import BooleanField, Case, DecimalField, F, Func, Q, TextField, Value, When
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Coalesce, Upper
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IContains,
    IExact,
    In,
    IStartsWith,
    LessThan,
    LessThanOrEqual,
)
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from leadcrm.errors import Invalid

from .models import ActivityType, Grade, LeadStatus, LifecycleStage, PredictiveBand, SourceType, Temperature

TEXT, CHOICE, NUMBER, BOOL, DATE = "text", "choice", "number", "bool", "date"
TAGS, OWNER, JSON = "tags", "owner", "json"

TEXT_OPS = ("eq", "neq", "in", "not_in", "contains", "starts_with", "is_empty", "is_not_empty")
NUMBER_OPS = ("eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_empty", "is_not_empty")
OPS_BY_KIND = {
    TEXT: TEXT_OPS,
    CHOICE: ("eq", "neq", "in", "not_in", "is_empty", "is_not_empty"),
    NUMBER: NUMBER_OPS,
    BOOL: ("eq", "neq"),
    DATE: ("gt", "gte", "lt", "lte", "between", "within_days", "is_empty", "is_not_empty"),
    TAGS: ("eq", "contains", "in", "not_in", "is_empty", "is_not_empty"),
    OWNER: ("eq", "neq", "in", "not_in", "is_empty", "is_not_empty"),
    JSON: tuple(dict.fromkeys(TEXT_OPS + NUMBER_OPS)),  # custom fields and activity properties
}
ALL_OPS = tuple(dict.fromkeys(op for ops in OPS_BY_KIND.values() for op in ops))
NO_VALUE_OPS = ("is_empty", "is_not_empty")
# How the browser says each operator.
OP_LABELS = {
    "eq": "is", "neq": "is not", "in": "is one of", "not_in": "is none of", "contains": "contains",
    "starts_with": "starts with", "gt": "is more than", "gte": "is at least", "lt": "is less than",
    "lte": "is at most", "between": "is between", "within_days": "is within the last … days",
    "is_empty": "is empty", "is_not_empty": "is not empty",
}
LIST_OPS = ("in", "not_in")

# Lead fields a condition may test, and what kind of value each holds.
LEAD_FIELDS = {
    **{name: TEXT for name in (
        "email", "first_name", "last_name", "phone", "job_title", "company", "industry", "website", "country",
        "region", "city", "timezone", "source", "utm_source", "utm_medium", "utm_campaign", "utm_term",
        "utm_content",
    )},
    "source_type": CHOICE, "lifecycle_stage": CHOICE, "status": CHOICE, "grade": CHOICE, "temperature": CHOICE,
    "company_size": NUMBER, "annual_revenue": NUMBER, "score": NUMBER, "fit_score": NUMBER, "behavior_score": NUMBER,
    # written by the org's conversion model: 0–1, empty until one is trained
    "conversion_probability": NUMBER, "predictive_band": CHOICE,
    "consent_opt_in": BOOL, "unsubscribed": BOOL, "do_not_contact": BOOL, "bounced": BOOL,
    "created_at": DATE, "updated_at": DATE, "last_activity_at": DATE, "consent_at": DATE,
    "tags": TAGS,
    "owner": OWNER,
}
CHOICES = {
    "source_type": SourceType.values, "lifecycle_stage": LifecycleStage.values, "status": LeadStatus.values,
    "grade": Grade.values, "temperature": Temperature.values, "predictive_band": PredictiveBand.values,
}
SCORE_FIELDS = ("score", "fit_score", "behavior_score", "grade", "temperature", "conversion_probability",
                "predictive_band")
CUSTOM_PREFIX = "custom_fields."
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,63}$")


class ConditionError(Invalid):
    """A condition that cannot be used; `errors` maps a key of the condition to messages."""

    default_code = "invalid_condition"

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors=errors)


class JsonNumber(Func):
    """A JSON value as a number: JSON numbers and numeric strings; anything else is NULL (never an error)."""

    output_field = DecimalField()

    def as_sql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        template = (
            "(CASE WHEN jsonb_typeof({0}) = 'number' THEN ({0})::text::numeric "
            "WHEN jsonb_typeof({0}) = 'string' AND ({0}) #>> '{{}}' ~ '^\\s*-?[0-9]+(\\.[0-9]+)?\\s*$' "
            "THEN (({0}) #>> '{{}}')::numeric END)"
        )
        # the key expression appears once per {0}, and so do its parameters
        return template.format(sql), tuple(params) * template.count("{0}")


def value_text(value) -> str:
    """A condition's value as a person types it in a text input (lists comma-separated)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value_text(item) for item in value)
    return str(value)


# ----------------------------------------------------------------------------------------------- checks


def field_kind(field: str, *, allow_score_fields: bool = True) -> str:
    if isinstance(field, str) and field.startswith(CUSTOM_PREFIX) and _KEY.match(field[len(CUSTOM_PREFIX):]):
        return JSON
    if field not in LEAD_FIELDS or (not allow_score_fields and field in SCORE_FIELDS):
        raise ConditionError({"field": [f"Unknown field {field!r}. Use a lead field or custom_fields.<key>."]})
    return LEAD_FIELDS[field]


def _number(value, key="value"):
    if isinstance(value, bool) or not isinstance(value, (int, float, str, decimal.Decimal)):
        raise ConditionError({key: ["Must be a number."]})
    try:
        number = decimal.Decimal(str(value).strip())
    except decimal.InvalidOperation:
        raise ConditionError({key: [f"{value!r} is not a number."]}) from None
    if not number.is_finite():
        raise ConditionError({key: [f"{value!r} is not a number."]})
    return number


def _date(value, key="value"):
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None and (day := parse_date(value)) is not None:
            parsed = datetime.datetime.combine(day, datetime.time.min)
        if parsed is not None:
            return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, datetime.UTC)
    raise ConditionError({key: [f"{value!r} is not a date; use ISO 8601 such as 2026-01-31."]})


def _text(value, key="value"):
    if isinstance(value, bool) or not isinstance(value, (str, int, float, decimal.Decimal)):
        raise ConditionError({key: ["Must be text."]})
    return str(value)


def _scalar(kind: str, field: str, value, key="value"):
    if kind == NUMBER:
        return _number(value, key)
    if kind == DATE:
        return _date(value, key)
    if kind == BOOL:
        if not isinstance(value, bool):
            raise ConditionError({key: ["Must be true or false."]})
        return value
    if kind == OWNER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConditionError({key: ["Must be a user id."]})
        return value
    if kind == CHOICE:
        if value not in CHOICES[field]:
            raise ConditionError({key: [f"{value!r} is not one of {', '.join(CHOICES[field])}."]})
        return value
    return _text(value, key)


def clean_test(kind: str, field: str, op, value):
    """Check one `op`/`value` pair for a field of `kind`; returns the value in its Python type."""
    if op not in ALL_OPS:
        raise ConditionError({"op": [f"Unknown operator {op!r}; use one of {', '.join(ALL_OPS)}."]})
    if op not in OPS_BY_KIND[kind]:
        raise ConditionError({"op": [f"{op!r} does not apply to {field}; use one of {', '.join(OPS_BY_KIND[kind])}."]})
    if op in NO_VALUE_OPS:
        return None
    if value is None:
        raise ConditionError({"value": ["This operator needs a value."]})
    if op in ("contains", "starts_with") and isinstance(value, list) and kind in (TEXT, JSON):
        # "job title contains one of several words"
        if not value or len(value) > 100:
            raise ConditionError({"value": ["Must be text or a list of 1 to 100 texts (any of them matches)."]})
        return [_text(item) for item in value]
    if op in LIST_OPS or (kind == TAGS and op == "in"):
        if not isinstance(value, list) or not value or len(value) > 1000:
            raise ConditionError({"value": ["Must be a list of 1 to 1,000 values."]})
        return [_scalar(kind if kind != JSON else TEXT, field, item) for item in value]
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise ConditionError({"value": ["Must be a list of two values: [low, high]."]})
        scalar_kind = DATE if kind == DATE else NUMBER
        low, high = (_scalar(scalar_kind, field, item) for item in value)
        if low > high:
            raise ConditionError({"value": ["The low end must not be above the high end."]})
        return [low, high]
    if op == "within_days":
        days = _number(value)
        if days < 0 or days != int(days) or days > 36500:
            raise ConditionError({"value": ["Must be a whole number of days, 0 to 36,500."]})
        return int(days)
    if op in ("gt", "gte", "lt", "lte"):
        return _scalar(DATE if kind == DATE else NUMBER, field, value)
    if kind == JSON:
        return _text(value)
    return _scalar(kind, field, value)


def validate_lead_condition(condition, *, allow_score_fields: bool = True) -> dict:
    if not isinstance(condition, dict):
        raise ConditionError({"condition": ["Must be an object with field, op and value."]})
    unknown = set(condition) - {"field", "op", "value"}
    if unknown:
        raise ConditionError({"condition": [f"Unknown keys: {', '.join(sorted(unknown))}."]})
    field = condition.get("field")
    kind = field_kind(field, allow_score_fields=allow_score_fields)
    clean_test(kind, field, condition.get("op"), condition.get("value"))
    return {key: condition[key] for key in ("field", "op", "value") if key in condition}


def _property_tests(condition) -> list[dict]:
    tests = list(condition.get("where") or [])
    if "property" in condition:
        tests.insert(0, {key: condition[key] for key in ("property", "op", "value") if key in condition})
    return tests


def validate_activity_condition(condition, types=None) -> dict:
    """`types`: the activity types the org may record (leads.activity_types.known); the built-in ones if None."""
    types = ActivityType.values if types is None else types
    if not isinstance(condition, dict):
        raise ConditionError({"condition": ["Must be an object with activity_type (and optional property tests)."]})
    unknown = set(condition) - {"activity_type", "property", "op", "value", "where"}
    if unknown:
        raise ConditionError({"condition": [f"Unknown keys: {', '.join(sorted(unknown))}."]})
    if condition.get("activity_type") not in types:
        raise ConditionError({"activity_type": [
            f"Unknown activity type {condition.get('activity_type')!r}; use one of {', '.join(types)}."]})
    if ("op" in condition or "value" in condition) and "property" not in condition:
        raise ConditionError({"property": ["Name the activity property that op and value test."]})
    if "where" in condition and not isinstance(condition["where"], list):
        raise ConditionError({"where": ["Must be a list of {property, op, value} tests."]})
    for test in _property_tests(condition):
        if not isinstance(test, dict) or not isinstance(test.get("property"), str) or not _KEY.match(test["property"]):
            raise ConditionError({"property": ["A property is a name of letters, digits, _ or -."]})
        clean_test(JSON, test["property"], test.get("op"), test.get("value"))
    return condition


# ----------------------------------------------------------------------------------------------- SQL


def _json_test(json_expr, op, value) -> Q:
    """A test on one key of a JSONB column (`json_expr` is a KeyTransform)."""
    text = Coalesce(KeyTextTransform(json_expr.key_name, *json_expr.source_expressions), Value(""),
                    output_field=TextField())
    number = JsonNumber(json_expr)
    if op in ("gt", "gte", "lt", "lte", "between"):
        return _compare(number, op, value)
    if op == "is_empty":
        return Q(Exact(text, ""))
    if op == "is_not_empty":
        return ~Q(Exact(text, ""))
    if op in ("eq", "neq"):
        test = Q(IExact(text, str(value)))
    elif op in ("in", "not_in"):
        test = Q(In(Upper(text), [str(item).upper() for item in value]))
    else:  # contains, starts_with
        return _any_text(text, op, value)
    return ~test if op in ("neq", "not_in") else test


def _any_text(expr, op: str, value) -> Q:
    """contains / starts_with one text, or any of a list of texts."""
    lookup = IContains if op == "contains" else IStartsWith
    q = Q()
    for item in value if isinstance(value, list) else [value]:
        q |= Q(lookup(expr, str(item)))
    return q


def _compare(expr, op, value) -> Q:
    """gt/gte/lt/lte/between; a NULL (missing or non-numeric) never matches."""
    lookups = {"gt": GreaterThan, "gte": GreaterThanOrEqual, "lt": LessThan, "lte": LessThanOrEqual}
    if op == "between":
        return Q(GreaterThanOrEqual(expr, value[0])) & Q(LessThanOrEqual(expr, value[1]))
    return Q(lookups[op](expr, value))


def _field_test(field: str, kind: str, op: str, value) -> Q:
    if kind == JSON:
        return _json_test(KeyTransform(field[len(CUSTOM_PREFIX):], "custom_fields"), op, value)
    column = "owner_id" if kind == OWNER else field
    expr = F(column)
    if op == "is_empty":
        return {TEXT: Q(**{column: ""}), CHOICE: Q(**{column: ""}), TAGS: Q(**{column: []})}.get(
            kind, Q(**{f"{column}__isnull": True}))
    if op == "is_not_empty":
        return ~_field_test(field, kind, "is_empty", None)
    if kind == TAGS:
        if op == "not_in":
            return ~Q(**{f"{column}__overlap": value})
        return Q(**{f"{column}__overlap": value}) if op == "in" else Q(**{f"{column}__contains": [value]})
    if kind == DATE and op == "within_days":
        return Q(**{f"{column}__gte": timezone.now() - datetime.timedelta(days=value)})
    if op in ("gt", "gte", "lt", "lte", "between"):
        return _compare(expr, op, value)
    if kind == TEXT:
        if op in ("contains", "starts_with"):
            return _any_text(expr, op, value)
        if op in ("in", "not_in"):
            test = Q(In(Upper(expr), [item.upper() for item in value]))
        else:
            test = Q(IExact(expr, value))
    elif kind == NUMBER:
        # Compare as numbers: `company_size=2.5` or `__in=[2.5]` would cut 2.5 to the column's integer 2.
        if op in ("in", "not_in"):
            test = Q(In(expr, [Value(item) for item in value]))
        else:
            test = Q(Exact(expr, value))
    elif op in ("in", "not_in"):
        test = Q(**{f"{column}__in": value})
    else:
        test = Q(**{column: value})
    if op in ("neq", "not_in"):
        # NULL (no owner, no size) is "not equal" too.
        return ~test | Q(**{f"{column}__isnull": True}) if kind in (NUMBER, OWNER, DATE) else ~test
    return test


def lead_q(condition: dict) -> Q:
    """The lead rows a (validated) field condition matches, as a Q on Lead."""
    field, op = condition["field"], condition["op"]
    kind = field_kind(field)
    return _field_test(field, kind, op, clean_test(kind, field, op, condition.get("value")))


def activity_q(condition: dict) -> Q:
    """The activity rows a (validated) activity condition matches, as a Q on Activity."""
    q = Q(type=condition["activity_type"])
    for test in _property_tests(condition):
        value = clean_test(JSON, test["property"], test["op"], test.get("value"))
        q &= _json_test(KeyTransform(test["property"], "properties"), test["op"], value)
    return q


def as_boolean(q: Q) -> Case:
    """A Q as a boolean column, for annotating one flag per rule in a single query. A CASE, because Django
    compiles a test it knows matches nothing (an owner id beyond the column's range) to no SQL, which
    a bare wrapper would select as the integer 0."""
    return Case(When(q, then=Value(True)), default=Value(False), output_field=BooleanField())

