"""Lean read path for big lists: PostgreSQL writes each page's JSON, as the serializer would, and the page is sent
as it comes, with no model instance or serializer field per value.

An integration copying a million leads reads 2,000 pages of 500; through the serializer each page cost ~200 ms of
Python (54 fields × 500 rows of to_representation, and as many model attributes). Here the page is one statement:
the same keyset query as ever picks the rows, PostgreSQL writes each row's JSON and joins the page's rows into one
text, and hands back that text with the cursor keys of the page's first and last rows only, so Python handles no
value per row at all. The serializer stays the one definition of the output: the SQL is derived from its fields,
field class by field class, and a serializer with a field this module does not know is simply served the ordinary
way (tests/leadcrm/test_jsonrows.py checks both ways agree).

Each row's JSON is spelled out as text (the field names as constants, each value as its JSON), which PostgreSQL
writes in about half the time row_to_json takes for the same row: row_to_json looks up every column's type and
escapes every key again for each row. bench/README.md ("Sync") has the measurements.
"""

import json
from decimal import Decimal
from functools import cache

from django.db import connections, models
from django.db.models import F, Window
from django.db.models.expressions import RawSQL
from django.db.models.functions import RowNumber
from django.http import HttpResponse
from django.utils import timezone
from rest_framework import relations, serializers
from rest_framework.settings import ISO_8601, api_settings

# DRF writes an aware datetime as isoformat() in the current zone, with "Z" for UTC and the microseconds only when
# there are some. This is the same for UTC, which is the zone of every API-key request (no browser cookie).
_DATETIME = "replace(to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '.000000Z', 'Z')"

# Field classes whose output is the stored value itself, as JSON.
_AS_STORED = (serializers.UUIDField, serializers.CharField, serializers.ChoiceField, serializers.BooleanField,
              serializers.IntegerField, serializers.JSONField, serializers.DictField)

# A lean page stops at the row that takes its JSON past this many bytes (and always holds at least one row), so a
# request's memory does not grow with the page size times the largest custom fields a lead may carry.
PAGE_BYTES = 4 * 1024 * 1024

_TEXT_COLUMNS = (models.CharField, models.TextField)  # EmailField, URLField, SlugField… are CharFields
_INTEGER_COLUMNS = models.IntegerField  # and Small-, Big-, Positive…IntegerField, the AutoFields


class Unsupported(Exception):
    """A field whose output this module cannot write in SQL: that serializer is served the ordinary way."""


def _quoted(text: str) -> str:
    """A JSON string of SQL text that needs no escaping (digits, dashes, colons: ids, times, numbers)."""
    return f"""'"' || {text} || '"'"""


def _json_value(field, model, table: str) -> str:
    """SQL writing the JSON text of the field's value for the row (NULL for a null value)."""
    if isinstance(field, (serializers.SerializerMethodField, serializers.MultipleChoiceField)) or (
            field.source == "*" or "." in field.source):
        raise Unsupported(field.field_name)
    model_field = model._meta.get_field(field.source)
    column = f'"{table}"."{model_field.column}"'
    if isinstance(field, relations.PrimaryKeyRelatedField) and field.pk_field is None:
        return _as_stored_value(model_field.target_field, column)  # the foreign key's value is the related row's id
    if isinstance(field, serializers.DateTimeField):
        if getattr(field, "format", api_settings.DATETIME_FORMAT) != ISO_8601 or getattr(field, "timezone", None):
            raise Unsupported(field.field_name)
        return _quoted(_DATETIME.format(c=column))
    if isinstance(field, serializers.DateField):
        if getattr(field, "format", api_settings.DATE_FORMAT) != ISO_8601:
            raise Unsupported(field.field_name)
        return _quoted(f"to_char({column}, 'YYYY-MM-DD')")
    if isinstance(field, serializers.DecimalField):
        if (not getattr(field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING) or field.localize
                or getattr(field, "normalize_output", False) or model_field.decimal_places != field.decimal_places):
            raise Unsupported(field.field_name)
        return _quoted(f"{column}::text")  # numeric(p, s) prints its s decimals, as DRF quantizes to them
    if isinstance(field, serializers.FloatField):
        if not isinstance(model_field, (models.DecimalField, models.FloatField)):
            raise Unsupported(field.field_name)
        return f"{column}::float8::text"  # DRF writes float() of it: both print the shortest exact digits
    if isinstance(field, serializers.UUIDField) and field.uuid_format != "hex_verbose":
        raise Unsupported(field.field_name)
    if isinstance(field, serializers.JSONField) and field.binary:
        raise Unsupported(field.field_name)
    if isinstance(field, serializers.ListField) and isinstance(field.child, _AS_STORED):
        return f"to_json({column})::text"
    if type(field) is serializers.CharField and not isinstance(model_field, _TEXT_COLUMNS):
        raise Unsupported(field.field_name)  # DRF writes str() of a number; the column would give the number
    if isinstance(field, serializers.IntegerField) and not isinstance(model_field, _INTEGER_COLUMNS):
        raise Unsupported(field.field_name)  # DRF writes int() of a float or decimal
    if isinstance(field, _AS_STORED) and not isinstance(field, (serializers.ListField, serializers.DecimalField)):
        return _as_stored_value(model_field, column)
    raise Unsupported(field.field_name)


def _as_stored_value(model_field, column: str) -> str:
    """The stored value as JSON: ids and numbers as they print, flags as true/false, JSON as stored, text escaped."""
    if isinstance(model_field, models.UUIDField):
        return _quoted(f"{column}::text")
    if isinstance(model_field, _INTEGER_COLUMNS):
        return f"{column}::text"
    if isinstance(model_field, models.BooleanField):
        return f"CASE WHEN {column} THEN 'true' WHEN NOT {column} THEN 'false' END"
    if isinstance(model_field, models.JSONField):
        return f"{column}::text"  # jsonb prints as JSON (to_json of it prints the same, after a type lookup)
    if isinstance(model_field, _TEXT_COLUMNS):
        # to_json looks up the value's type on every call; an empty string, common in optional fields, needs none.
        return f"""CASE WHEN {column} = '' THEN '""' ELSE to_json({column})::text END"""
    return f"to_json({column})::text"


def _concat(parts: list[str]) -> str:
    """concat() of any number of SQL texts (a function takes at most 100 arguments): one allocation per call
    instead of one per `||`."""
    if len(parts) <= 100:
        return f"concat({', '.join(parts)})"
    return _concat([_concat(parts[start:start + 100]) for start in range(0, len(parts), 100)])


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


def row_json_sql(serializer_class, context=None) -> str:
    """SQL writing one row's JSON object after `serializer_class`: its readable fields, in their order."""
    serializer = serializer_class(context=context or {})
    if type(serializer).to_representation is not serializers.ModelSerializer.to_representation:
        raise Unsupported("to_representation")
    model = serializer.Meta.model
    table = model._meta.db_table
    parts = []
    for name, field in serializer.fields.items():
        if field.write_only:
            continue
        key = ("," if parts else "{") + json.dumps(name) + ":"
        value = _json_value(field, model, table)
        if model._meta.get_field(field.source).null:
            value = f"coalesce({value}, 'null')"
        parts += [_literal(key), value]
    return _concat([*parts, "'}'"])


class Keys:
    """The values of the columns a cursor is made of, for one row at an end of the page."""

    def __init__(self, keys: dict):
        for name, value in keys.items():
            setattr(self, name, value)


class LeanPage:
    """A page PostgreSQL wrote: its rows' JSON array as one text, its size, and the cursor keys of its first and
    last rows — all a paginator takes from a page (`len(page)`, `page[0]`, `page[-1]`)."""

    def __init__(self, json_text: str = "[]", size: int = 0, first: Keys | None = None, last: Keys | None = None):
        self.json, self.size, self.first, self.last = json_text, size, first, last

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Keys:
        if self.size and index == 0:
            return self.first
        if self.size and index == -1:
            return self.last
        raise IndexError(index)


# The page around the keyset query, whose rows come numbered in their order (at most size + 1 of them): the page keeps
# the first `size`, up to the one that takes its JSON past the byte budget, joins their JSON into one text, and
# returns it with the cursor keys of its first and last rows and whether rows follow it. One row, whatever the size.
_PAGE_SQL = """
SELECT fetched > kept, page_json, kept, {ends}
FROM (
    SELECT count(*) AS fetched, count(*) FILTER (WHERE within) AS kept,
           '[' || string_agg(_row_json, ',' ORDER BY _row_number {direction}) FILTER (WHERE within) || ']' AS page_json,
           {key_arrays}
    FROM (
        SELECT page_rows.*, _row_number <= %s AND sum(octet_length(_row_json))
               OVER (ORDER BY _row_number ROWS UNBOUNDED PRECEDING) - octet_length(_row_json) < %s AS within
        FROM ({rows}) page_rows
    ) numbered
) page
"""


class JsonRows:
    """Loads pages as JSON written by PostgreSQL after `serializer_class` (see the module docstring)."""

    def __init__(self, serializer_class, context=None):
        # Written in the same statement as the page's keyset query, for the rows it returns only.
        self.annotation = RawSQL(row_json_sql(serializer_class, context), [])

    def load_page(self, queryset, key_fields, size: int, *, backwards: bool = False) -> tuple[LeanPage, bool]:
        """The first `size` rows of the ordered `queryset` (fewer if their JSON passes PAGE_BYTES), in display
        order (reversed when going `backwards`), and whether rows follow them. `key_fields` is the ordering, which
        ends with the primary key: the page keeps their values for its first and last rows, for the cursors."""
        names = [name.lstrip("-") for name in key_fields]
        keys = {f"_key_{number}": F("pk" if name in ("pk", "id") else name) for number, name in enumerate(names)}
        number = Window(RowNumber(), order_by=list(queryset.query.order_by))
        rows = (queryset.select_related(None).annotate(_row_json=self.annotation, _row_number=number, **keys)
                .values_list("_row_json", "_row_number", *keys)[:size + 1])
        sql, params = rows.query.sql_with_params()
        statement = _PAGE_SQL.format(
            rows=sql, direction="DESC" if backwards else "ASC",
            key_arrays=", ".join(f"array_agg({key} ORDER BY _row_number) AS {key}" for key in keys),
            ends=", ".join(f"{key}[1], {key}[kept]" for key in keys))
        with connections[queryset.db].cursor() as cursor:
            cursor.execute(statement, [size, PAGE_BYTES, *params])
            more, json_text, kept, *ends = cursor.fetchone()
        if not kept:
            return LeanPage(), False
        first, last = Keys(dict(zip(names, ends[0::2], strict=True))), Keys(dict(zip(names, ends[1::2], strict=True)))
        if backwards:
            first, last = last, first
        return LeanPage(json_text, kept, first, last), more


def usable(request) -> bool:
    """The lean path answers plain JSON in UTC; the browsable API and a browser's own time zone get the
    ordinary one."""
    renderer = getattr(request, "accepted_renderer", None)
    return getattr(renderer, "format", None) == "json" and timezone.get_current_timezone_name() in ("UTC", "Etc/UTC")


def response(envelope: dict, results: str) -> HttpResponse:
    """The page as one JSON document: the paginator's envelope (next, previous, …) and the rows' JSON array."""
    head = json.dumps({key: value for key, value in envelope.items() if key != "results"}, cls=_Encoder,
                      separators=(",", ":"))
    body = f'{head[:-1]}{"," if len(head) > 2 else ""}"results":{results}}}'
    return HttpResponse(body.encode(), content_type="application/json")


class _Encoder(json.JSONEncoder):
    def default(self, value):
        return str(value) if isinstance(value, Decimal) else super().default(value)


class LeanListMixin:
    """For a viewset: `list` answers plain-JSON requests by the lean path when its serializer allows it."""

    def list(self, request, *args, **kwargs):
        rows = lean_rows(self.get_serializer_class()) if usable(request) else None
        if rows is None:
            return super().list(request, *args, **kwargs)
        queryset = self.filter_queryset(self.get_queryset())
        self.paginator.page_loader = rows.load_page
        page = self.paginate_queryset(queryset)
        return response(self.paginator.get_paginated_response([]).data, page.json)


@cache
def lean_rows(serializer_class):
    """The serializer's JsonRows, once per process; None when it has a field the SQL cannot write."""
    try:
        return JsonRows(serializer_class)
    except Unsupported:
        return None
