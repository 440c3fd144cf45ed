from rest_framework.pagination import CursorPagination


def total_ordering(ordering) -> tuple:
    """An ordering every row has one place in: the given fields, ended with the primary key in the direction of the
    first field (unless it already holds the key). A keyset (a cursor, a row's neighbours) needs one."""
    ordering = (ordering,) if isinstance(ordering, str) else tuple(ordering)
    if any(field.lstrip("-") in ("pk", "id") for field in ordering):
        return ordering
    return (*ordering, "-pk" if ordering[0].startswith("-") else "pk")


class CreatedCursorPagination(CursorPagination):
    """Keyset pagination: pages cost the same at row 10 and row 1,000,000."""

    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_ordering(self, request, queryset, view):
        # The cursor skips rows that tie with the last one seen, which is only right when the order is total.
        return total_ordering(super().get_ordering(request, queryset, view))
