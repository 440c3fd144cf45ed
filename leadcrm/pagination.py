"""Keyset pagination on a unique key: the ordering's columns plus the primary key.

DRF's CursorPagination keeps only the first ordering column in its cursor and skips rows that tie with it by an
offset it caps at 1,000, so a page of 500 after an import where thousands of leads share one `created_at` returns
the same rows forever. Here the cursor holds the value of every ordering column and the id of the last row seen,
and the next page is the rows strictly after that tuple — every row once, whatever the ties.
"""

import base64
import binascii
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import reduce
from operator import and_, or_
from uuid import UUID

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import DateTimeField, Q
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.utils.urls import replace_query_param


def _value_of(instance, field: str):
    value = instance
    for part in field.split("__"):
        value = getattr(value, part, None) if value is not None else None
    if hasattr(value, "pk") and not isinstance(value, (date, datetime, Decimal, UUID)):
        value = value.pk  # ordering by a foreign key orders by its id
    return value


def _cursor_text(value):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)  # Decimal, UUID


class _Key:
    """One column of the ordering: its name, direction and whether it may hold NULL (PostgreSQL sorts NULL last
    ascending and first descending)."""

    def __init__(self, term: str, model):
        self.descending = term.startswith("-")
        self.name = term.lstrip("-")
        name = "pk" if self.name in ("pk", "id") else self.name
        self.lookup = name
        try:
            self.field = model._meta.pk if name == "pk" else model._meta.get_field(name)
            self.nullable = self.field.null
        except FieldDoesNotExist:  # an annotation or a related path: assume the worst
            self.field, self.nullable = None, True

    def prepared(self, value):
        """A cursor's value as this column compares it: a time in UTC (an offset PostgreSQL refuses, such as +20:00,
        is still a time Python reads), else as it came. ValueError for a value that is no time."""
        if value is not None and isinstance(self.field, DateTimeField):
            moment = parse_datetime(value) if isinstance(value, str) else None
            if moment is None or moment.tzinfo is None:
                raise ValueError(value)
            return moment.astimezone(UTC)
        return value

    def beyond(self, value, *, backwards: bool) -> Q | None:
        """Rows strictly past `value` in this column's order (before it when going backwards); None if none are."""
        descending = self.descending != backwards
        if value is None:  # NULL is last ascending: nothing is past it; first descending: every value is
            return Q(**{f"{self.lookup}__isnull": False}) if descending else None
        past = Q(**{f"{self.lookup}__{'lt' if descending else 'gt'}": value})
        if self.nullable and not descending:
            past |= Q(**{f"{self.lookup}__isnull": True})
        return past

    def equal(self, value) -> Q:
        return Q(**{f"{self.lookup}__isnull": True}) if value is None else Q(**{self.lookup: value})


def keyset_filter(keys: list[_Key], position: list, *, backwards: bool) -> Q:
    """(k1, k2, …) after (p1, p2, …) spelled out column by column: k1 past p1, or k1 = p1 and k2 past p2, …"""
    branches = []
    for index, key in enumerate(keys):
        past = key.beyond(position[index], backwards=backwards)
        if past is not None:
            branches.append(reduce(and_, [k.equal(position[i]) for i, k in enumerate(keys[:index])], Q()) & past)
    if not branches:
        return Q(pk__in=[])
    first, value = keys[0], position[0]
    if first.nullable or value is None:
        return reduce(or_, branches)
    # The same bound on the first column alone lets PostgreSQL start its index scan there, not at the top.
    bound = "lte" if first.descending != backwards else "gte"
    return Q(**{f"{first.lookup}__{bound}": value}) & reduce(or_, branches)


def total_ordering(ordering) -> tuple:
    """An ordering every row has one place in: the given fields, ended with the primary key in the direction of the
    first field (unless it already holds the key). A keyset (a cursor, a row's neighbours) needs one."""
    ordering = (ordering,) if isinstance(ordering, str) else tuple(ordering)
    if any(field.lstrip("-") in ("pk", "id") for field in ordering):
        return ordering
    return (*ordering, "-pk" if ordering[0].startswith("-") else "pk")


class CreatedCursorPagination(CursorPagination):
    """Keyset pagination: pages cost the same at row 10 and row 1,000,000, and reach every row exactly once."""

    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_ordering(self, request, queryset, view):
        # The cursor is a unique position only when the order is total.
        return total_ordering(super().get_ordering(request, queryset, view))

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.page_size = self.get_page_size(request)
        if not self.page_size:
            return None
        self.base_url = request.build_absolute_uri()
        self.ordering = self.get_ordering(request, queryset, view)
        keys = [_Key(term, queryset.model) for term in self.ordering]
        position, backwards = self.decode_cursor(request) or (None, False)
        if position is not None and len(position) != len(keys):
            raise NotFound(self.invalid_cursor_message)  # a cursor made for another ordering

        terms = [term[1:] if term.startswith("-") else f"-{term}" for term in self.ordering] if backwards \
            else list(self.ordering)
        if position is not None:
            try:
                position = [key.prepared(value) for key, value in zip(keys, position, strict=True)]
                queryset = queryset.filter(keyset_filter(keys, position, backwards=backwards))
            except (ValidationError, ValueError, TypeError):  # a value edited into the cursor
                raise NotFound(self.invalid_cursor_message) from None
        return self.take_page(queryset.order_by(*terms), from_cursor=position is not None, backwards=backwards)

    def take_page(self, ordered, *, from_cursor: bool, backwards: bool) -> list:
        """One page of `ordered` (in reverse order when going backwards), and whether pages lie either side."""
        self.page, more = self.load_page(ordered, backwards=backwards)
        # Going forwards there is a previous page when we came from a cursor; going backwards, a next one.
        self.has_next = more if not backwards else True
        self.has_previous = from_cursor if not backwards else more
        return self.page

    # A view may load its pages its own way (leadcrm/jsonrows.py): page_loader(queryset, ordering, page_size,
    # backwards=) returns the page in display order (anything with len(), [0] and [-1]) and whether rows follow it.
    page_loader = None

    def load_page(self, ordered, *, backwards: bool) -> tuple[list, bool]:
        if self.page_loader is not None:
            return self.page_loader(ordered, self.ordering, self.page_size, backwards=backwards)
        rows = list(ordered[:self.page_size + 1])
        page = rows[:self.page_size]
        if backwards:
            page.reverse()
        return page, len(rows) > self.page_size

    def get_next_link(self):
        if not self.has_next or not self.page:
            return None
        return self._link(self.page[-1], backwards=False)

    def get_previous_link(self):
        if not self.has_previous or not self.page:
            return None
        return self._link(self.page[0], backwards=True)

    def _link(self, row, *, backwards: bool) -> str:
        position = [_cursor_text(_value_of(row, term.lstrip("-"))) for term in self.ordering]
        return self.encode_cursor((position, backwards))

    def encode_cursor(self, cursor):
        position, backwards = cursor
        text = json.dumps({"p": position, "r": int(backwards)}, separators=(",", ":"))
        token = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
        return replace_query_param(self.base_url, self.cursor_query_param, token)

    def decode_cursor(self, request):
        token = request.query_params.get(self.cursor_query_param)
        if not token:
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            position, backwards = data["p"], bool(data.get("r"))
            if not isinstance(position, list) or not all(
                    value is None or isinstance(value, (bool, int, str)) for value in position):
                raise ValueError
        except (TypeError, ValueError, KeyError, binascii.Error, UnicodeDecodeError):
            raise NotFound(self.invalid_cursor_message) from None
        return position, backwards

    def get_html_context(self):
        return {"previous_url": self.get_previous_link(), "next_url": self.get_next_link()}
