"""The leads list's reads: its rows for a query string (filters, search, sort) and the same rows as a CSV.

The page and its Export share `list_rows`, so a download holds exactly the leads the list shows, on every page.
"""

from django.db.models.functions import Coalesce
from django.utils import timezone

from .filters import LeadFilter
from .selectors import search_leads

DEFAULT_SORT = "-created_at"

# `?ordering=` value → its name in the Sort select. Column headers use the same values.
SORTS = {
    "-created_at": "Newest",
    "created_at": "Oldest",
    "-score": "Highest score",
    "score": "Lowest score",
    "first_name": "Name A–Z",
    "-first_name": "Name Z–A",
    "email": "Email A–Z",
    "-email": "Email Z–A",
    "company": "Company A–Z",
    "-company": "Company Z–A",
    "grade": "Grade A–F",
    "-grade": "Grade F–A",
    "-last_activity_at": "Recently active",
    "-updated_at": "Recently updated",
}

# The table's columns: (heading, field sorted by or None, the direction of a first click). Names and text sort
# A–Z first; numbers and dates biggest and newest first, as people look for them.
COLUMNS = [
    ("Name", "first_name", ""), ("Email", "email", ""), ("Company", "company", ""), ("Stage", None, ""),
    ("Score", "score", "-"), ("Grade", "grade", ""), ("Owner", None, ""), ("Created", "created_at", "-"),
]

# The keyset pager orders by a field and compares the last row's value with it; a lead never active has no
# last_activity_at, so it is ranked by when it arrived instead (a NULL has no place in a keyset comparison).
_ANNOTATED = {"last_activity_at": ("active_at", lambda: Coalesce("last_activity_at", "created_at"))}


def list_rows(queryset, params):
    """(filterset, rows, sort, ordering) for the list's query string: `sort` is the `?ordering=` value shown,
    `ordering` what the rows are ordered by. Invalid filters give no rows: the page shows the filterset's errors."""
    filterset = LeadFilter(params, queryset=queryset)
    rows = filterset.qs if filterset.is_valid() else queryset.none()
    rows = search_leads(rows, params.get("search", ""))
    sort = params.get("ordering", DEFAULT_SORT)
    if sort not in SORTS:
        sort = DEFAULT_SORT
    field = sort.lstrip("-")
    if field in _ANNOTATED:
        name, expression = _ANNOTATED[field]
        rows = rows.annotate(**{name: expression()})
        ordering = sort.replace(field, name)
    else:
        ordering = sort
    return filterset, rows, sort, ordering


def sort_headers(params, sort) -> list[dict]:
    """Each column's heading, and for a sortable one the link that sorts by it (the other way round when it is
    the current sort), keeping the filters and search; a new sort starts again at the first page."""
    headers = []
    for label, field, first in COLUMNS:
        header = {"label": label, "url": "", "state": ""}
        if field:
            if sort.lstrip("-") == field:
                header["state"] = "descending" if sort.startswith("-") else "ascending"
                target = field if sort.startswith("-") else f"-{field}"
            else:
                target = f"{first}{field}"
            query = params.copy()
            query.pop("cursor", None)
            query["ordering"] = target
            header["url"] = "?" + query.urlencode()
        headers.append(header)
    return headers


EXPORT_HEADER = ["id", "first_name", "last_name", "email", "phone", "company", "job_title", "country",
                 "lifecycle_stage", "score", "grade", "temperature", "source_type", "source", "owner", "created_at"]


def export_rows(rows, ordering):
    """The CSV's rows for the list's leads, in the list's order, fetched in chunks (one query per 2,000 rows)."""
    fields = [name for name in EXPORT_HEADER if name not in ("owner",)]
    tie_break = "-pk" if ordering.startswith("-") else "pk"
    values = rows.order_by(ordering, tie_break).values_list(*fields, "owner__email")
    for row in values.iterator(chunk_size=2000):
        lead = dict(zip([*fields, "owner"], row, strict=True))
        yield [str(lead["id"]), *(lead[name] for name in EXPORT_HEADER[1:-2]), lead["owner"] or "",
               timezone.localtime(lead["created_at"]).isoformat(timespec="seconds")]
