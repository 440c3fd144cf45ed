"""Keyset pagination for browser lists, reusing the API's cursor paginator; and a row's neighbours in a list."""

from dataclasses import dataclass

from django.core.exceptions import BadRequest
from django.db.models import F, OrderBy, Q
from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from .pagination import CreatedCursorPagination


def keyset_page(request, queryset, ordering: str, page_size: int = 50):
    """Returns (rows, next_url, previous_url) for `queryset` ordered by `ordering` (then by id)."""
    paginator = CreatedCursorPagination()
    paginator.ordering = ordering
    paginator.page_size = page_size
    try:
        rows = paginator.paginate_queryset(queryset, Request(request))
    except NotFound as exc:  # a cursor edited or cut short: the page's answer to bad input is a 400
        raise BadRequest("This page link is not valid; start again from the first page.") from exc
    return rows, paginator.get_next_link(), paginator.get_previous_link()


@dataclass(frozen=True)
class _Key:
    alias: str
    expression: object
    descending: bool
    nulls_last: bool  # where NULLs sort in this key's direction

    def flipped(self) -> "_Key":
        return _Key(self.alias, self.expression, not self.descending, not self.nulls_last)

    def order(self) -> OrderBy:
        nulls = {"nulls_last": True} if self.nulls_last else {"nulls_first": True}
        return OrderBy(F(self.alias), descending=self.descending, **nulls)


def _keys(rows) -> list[_Key]:
    """The keys `rows` is ordered by (field names, annotations or expressions), which must end with the pk."""
    keys = []
    for index, item in enumerate(rows.query.order_by):
        nulls_first = nulls_last = None
        if isinstance(item, str):
            descending, name = item.startswith("-"), item.lstrip("-")
            if name == "?":
                raise ValueError("A random order has no neighbours.")
            expression = F(name)
        elif isinstance(item, OrderBy):
            expression, descending = item.expression, item.descending
            nulls_first, nulls_last = item.nulls_first, item.nulls_last
        else:
            expression, descending = item, False
        # PostgreSQL sorts NULLs last going up and first going down, unless told otherwise.
        last = True if nulls_last else False if nulls_first else not descending
        keys.append(_Key(f"neighbour_key_{index}", expression, descending, last))
    last_key = keys[-1].expression if keys else None
    if not (isinstance(last_key, F) and last_key.name in ("pk", "id")):
        raise ValueError("Order the rows by a unique key last (the pk), so each row has one place.")
    return keys


def _beyond(keys: list[_Key], current: dict) -> Q:
    """Rows after `current` in the order of `keys`: equal on the keys before one, and past it on that one."""
    after, equal = Q(pk__in=[]), Q()
    for key in keys:
        value = current[key.alias]
        if value is None:
            past = None if key.nulls_last else Q(**{f"{key.alias}__isnull": False})
            same = Q(**{f"{key.alias}__isnull": True})
        else:
            past = Q(**{f"{key.alias}__{'lt' if key.descending else 'gt'}": value})
            if key.nulls_last:
                past |= Q(**{f"{key.alias}__isnull": True})
            same = Q(**{key.alias: value})
        if past is not None:
            after |= equal & past
        equal &= same
    return after


def neighbours(rows, pk, *, anchor=None):
    """(previous, next): the rows just before and just after the row `pk` in `rows`' own ordering, which must end
    with the pk. Found by keyset — two one-row queries, whatever the list's length — so the row need not be in the
    list any more (a lead moved on from a queue): `anchor`, a queryset of the same annotations that holds it, places
    it. (None, None) when it cannot be placed."""
    keys = _keys(rows)
    expressions = {key.alias: key.expression for key in keys}
    source = rows if anchor is None else anchor
    current = source.filter(pk=pk).annotate(**expressions).values(*expressions).first()
    if current is None:
        return None, None
    marked = rows.alias(**expressions)
    flipped = [key.flipped() for key in keys]
    following = marked.filter(_beyond(keys, current)).order_by(*(key.order() for key in keys)).first()
    preceding = marked.filter(_beyond(flipped, current)).order_by(*(key.order() for key in flipped)).first()
    return preceding, following
