"""Keyset pagination for browser lists, reusing the API's cursor paginator."""

from rest_framework.request import Request

from .pagination import CreatedCursorPagination


def keyset_page(request, queryset, ordering: str, page_size: int = 50):
    """Returns (rows, next_url, previous_url) for `queryset` ordered by `ordering` (then by id)."""
    paginator = CreatedCursorPagination()
    paginator.ordering = ordering
    paginator.page_size = page_size
    rows = paginator.paginate_queryset(queryset, Request(request))
    return rows, paginator.get_next_link(), paginator.get_previous_link()
