from rest_framework.pagination import CursorPagination


class CreatedCursorPagination(CursorPagination):
    """Keyset pagination: pages cost the same at row 10 and row 1,000,000."""

    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_ordering(self, request, queryset, view):
        # The cursor skips rows that tie with the last one seen, which is only right when the order is
        # total: end every ordering with the primary key, in the direction of its first field.
        ordering = tuple(super().get_ordering(request, queryset, view))
        if any(field.lstrip("-") in ("pk", "id") for field in ordering):
            return ordering
        return (*ordering, "-pk" if ordering[0].startswith("-") else "pk")
