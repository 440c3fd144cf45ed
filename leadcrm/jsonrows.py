"""Lean read path for big lists: PostgreSQL writes each row's JSON, as the serializer would, and the page is sent
as it comes, with no model instance or serializer field per value.

An integration copying a million leads reads 2,000 pages of 500; through the serializer each page cost ~200 ms of
Python (54 fields × 500 rows of to_representation, and as many model attributes); here the page's ids come from the
same keyset query as ever, which also writes their JSON. The serializer stays the one definition of the
output: the SQL is derived from its fields, field class by field class, and a serializer with a field this module
does not know is simply served the ordinary way (tests/leadcrm/test_jsonrows.py checks both ways agree).
"""

import json
from decimal import Decimal
from functools import cache

from django.db.models import F
from django.db.models.expressions import RawSQL
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


class Unsupported(Exception):
    """A field whose output this module cannot write in SQL: that serializer is served the ordinary way."""


def _expression(field, model, table: str) -> str:
    if isinstance(field, (serializers.SerializerMethodField, serializers.MultipleChoiceField)) or (
            field.source == "*" or "." in field.source):
        raise Unsupported(field.field_name)
    model_field = model._meta.get_field(field.source)
    column = f'"{table}"."{model_field.column}"'
    if isinstance(field, relations.PrimaryKeyRelatedField) and field.pk_field is None:
        return column  # the foreign key's value is the related row's id
    if isinstance(field, serializers.DateTimeField):
        if getattr(field, "format", api_settings.DATETIME_FORMAT) != ISO_8601 or getattr(field, "timezone", None):
            raise Unsupported(field.field_name)
        return _DATETIME.format(c=column)
    if isinstance(field, serializers.DateField):
        if getattr(field, "format", api_settings.DATE_FORMAT) != ISO_8601:
            raise Unsupported(field.field_name)
        return f"to_char({column}, 'YYYY-MM-DD')"
    if isinstance(field, serializers.DecimalField):
        if (not getattr(field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING) or field.localize
                or getattr(field, "normalize_output", False) or model_field.decimal_places != field.decimal_places):
            raise Unsupported(field.field_name)
        return f"{column}::text"  # numeric(p, s) prints its s decimals, as DRF quantizes to them
    if isinstance(field, serializers.UUIDField) and field.uuid_format != "hex_verbose":
        raise Unsupported(field.field_name)
    if isinstance(field, serializers.JSONField) and field.binary:
        raise Unsupported(field.field_name)
    if isinstance(field, serializers.ListField) and isinstance(field.child, _AS_STORED):
        return column
    if isinstance(field, _AS_STORED) and not isinstance(field, (serializers.ListField, serializers.DecimalField)):
        return column
    raise Unsupported(field.field_name)


class JsonRow:
    """A row of the page: its JSON, and the values of the columns its cursor is made of."""

    def __init__(self, json_text: str, keys: dict):
        self.json = json_text
        for name, value in keys.items():
            setattr(self, name, value)


class JsonRows:
    """Loads a page's rows as JSON written by PostgreSQL after `serializer_class` (see the module docstring)."""

    def __init__(self, serializer_class, context=None):
        serializer = serializer_class(context=context or {})
        if type(serializer).to_representation is not serializers.ModelSerializer.to_representation:
            raise Unsupported("to_representation")
        model = serializer.Meta.model
        table = model._meta.db_table
        columns = [f'{_expression(field, model, table)} AS "{name}"'
                   for name, field in serializer.fields.items() if not field.write_only]
        # Written in the same statement as the page's keyset query, for the rows it returns only.
        self.annotation = RawSQL(f"(SELECT row_to_json(j)::text FROM (SELECT {', '.join(columns)}) j)", [])

    def load(self, queryset, key_fields, limit: int) -> list:
        """The first `limit` rows of the ordered `queryset`, each its JSON and the values of `key_fields` (the
        ordering, which ends with the primary key) for the cursor."""
        names = [name.lstrip("-") for name in key_fields]
        keys = {f"_key_{number}": F("pk" if name in ("pk", "id") else name) for number, name in enumerate(names)}
        rows = (queryset.select_related(None).annotate(_row_json=self.annotation, **keys)
                .values_list("_row_json", *keys)[:limit])
        return [JsonRow(row[0], dict(zip(names, row[1:], strict=True))) for row in rows]

    @staticmethod
    def page(rows: list) -> str:
        """The JSON array of the page's rows, in their order."""
        return f"[{','.join(row.json for row in rows)}]"


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
        self.paginator.row_loader = rows.load
        page = self.paginate_queryset(queryset)
        return response(self.paginator.get_paginated_response([]).data, rows.page(page))


@cache
def lean_rows(serializer_class):
    """The serializer's JsonRows, once per process; None when it has a field the SQL cannot write."""
    try:
        return JsonRows(serializer_class)
    except Unsupported:
        return None
