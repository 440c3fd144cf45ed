"""Keyset pagination for browser lists, reusing the API's cursor paginator."""

from django.core.exceptions import BadRequest
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
