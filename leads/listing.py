"""The leads list's reads: its rows for a query string (filters, search, sort), the columns it shows, the same rows
as a CSV, and the leads a bulk action on it acts on.

The page, its Export and its bulk actions ("all that match") share `list_rows`, so a download or a bulk change
holds exactly the leads the list shows, on every page. This module is the one home of the list's query string:
its keys (`LIST_KEYS`), its filters (filters.LeadFilter), its search, its sort and its `columns`.
"""

import uuid
from dataclasses import dataclass

from django.db.models.functions import Coalesce
from django.http import QueryDict
from django.utils import timezone

from leadcrm.errors import Invalid

from .filters import LeadFilter
from .models import likelihood
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
    "-conversion_probability": "Likeliest to convert",
    "conversion_probability": "Least likely to convert",
    "-last_activity_at": "Recently active",
    "last_activity_at": "Least recently active",
    "-updated_at": "Recently updated",
}


@dataclass(frozen=True)
class Column:
    """One column the list can show: its key (in `?columns=`), heading, the field a click on the heading sorts by
    (None: not sortable) with the direction of a first click, and the CSV columns it exports as."""

    key: str
    label: str
    sort: str | None
    first: str
    export: tuple[str, ...]


# Every column the list can show, in the order it shows them: the fixed whitelist `?columns=` is checked against.
# Names and text sort A–Z first; numbers and dates biggest and newest first, as people look for them.
COLUMNS = [
    Column("name", "Name", "first_name", "", ("first_name", "last_name")),
    Column("email", "Email", "email", "", ("email",)),
    Column("phone", "Phone", None, "", ("phone",)),
    Column("company", "Company", "company", "", ("company",)),
    Column("job_title", "Job title", None, "", ("job_title",)),
    Column("stage", "Stage", None, "", ("lifecycle_stage",)),
    Column("score", "Score", "score", "-", ("score",)),
    Column("grade", "Grade", "grade", "", ("grade",)),
    Column("temperature", "Temperature", None, "", ("temperature",)),
    Column("probability", "Conversion probability", "conversion_probability", "-",
           ("conversion_probability", "predictive_band")),
    Column("owner", "Owner", None, "", ("owner",)),
    Column("source", "Source", None, "", ("source_type", "source")),
    Column("country", "Country", None, "", ("country",)),
    Column("created", "Created", "created_at", "-", ("created_at",)),
    Column("last_activity", "Last activity", "last_activity_at", "-", ("last_activity_at",)),
    Column("tags", "Tags", None, "", ("tags",)),
]
COLUMNS_BY_KEY = {column.key: column for column in COLUMNS}
DEFAULT_COLUMNS = ("name", "email", "company", "stage", "score", "grade", "owner", "created")
# The name links to the lead's page: it is always shown.
REQUIRED_COLUMNS = ("name",)

# The list's own query keys: the search, every filter, the sort and the columns. Saved views and the "all that
# match" of bulk actions keep these and drop anything else (a page cursor, a stray parameter).
LIST_KEYS = ("search", *LeadFilter.base_filters, "ordering", "columns")

# The keyset pager orders by a field and compares the last row's value with it; a lead never active has no
# last_activity_at, so it is ranked by when it arrived instead (a NULL has no place in a keyset comparison).
# Likewise a lead the org's model has not scored has no probability: it ranks below every scored one.
_ANNOTATED = {"last_activity_at": ("active_at", lambda: Coalesce("last_activity_at", "created_at")),
              "conversion_probability": ("likelihood", likelihood)}


def clean_columns(values) -> list[str]:
    """The column keys named in `values` (repeated or comma-separated), in the list's order, with the required
    ones; Invalid naming any key that is not a column."""
    named = [part.strip() for value in values for part in str(value).split(",") if part.strip()]
    unknown = sorted({key for key in named if key not in COLUMNS_BY_KEY})
    if unknown:
        raise Invalid(errors={"columns": [
            f"Unknown column{'s' if len(unknown) > 1 else ''}: {', '.join(unknown[:5])[:200]}. "
            f"Choose from {', '.join(COLUMNS_BY_KEY)}."]})
    chosen = set(named) | set(REQUIRED_COLUMNS)
    return [column.key for column in COLUMNS if column.key in chosen]


def visible_columns(params, remembered=()) -> list[str]:
    """The columns the list shows: those its query names, else the member's remembered choice, else the default
    ones. Invalid for a query naming a column that does not exist."""
    if params.getlist("columns"):
        return clean_columns(params.getlist("columns"))
    try:
        return clean_columns(remembered) if remembered else list(DEFAULT_COLUMNS)
    except Invalid:  # a column dropped since it was remembered
        return list(DEFAULT_COLUMNS)


def clean_query(raw) -> str:
    """The list's query string (text or a QueryDict) with only its own keys, no empty values, and its columns (if
    it names any) checked and written out one by one. Invalid for an unknown column."""
    given = raw if isinstance(raw, QueryDict) else QueryDict(raw or "")
    kept = QueryDict(mutable=True)
    for key in LIST_KEYS:
        values = [value for value in given.getlist(key) if value.strip()]
        if key == "columns" and values:
            values = clean_columns(values)
        if values:
            kept.setlist(key, values)
    return kept.urlencode()


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


def sort_headers(params, sort, columns=DEFAULT_COLUMNS) -> list[dict]:
    """Each shown column's heading, and for a sortable one the link that sorts by it (the other way round when it
    is the current sort), keeping the filters, search and columns; a new sort starts again at the first page."""
    headers = []
    for key in columns:
        column = COLUMNS_BY_KEY[key]
        header = {"key": key, "label": column.label, "url": "", "state": ""}
        if column.sort:
            field = column.sort
            if sort.lstrip("-") == field:
                header["state"] = "descending" if sort.startswith("-") else "ascending"
                target = field if sort.startswith("-") else f"-{field}"
            else:
                target = f"{column.first}{field}"
            query = params.copy()
            query.pop("cursor", None)
            query["ordering"] = target
            header["url"] = "?" + query.urlencode()
        headers.append(header)
    return headers


# --------------------------------------------------------------------------------------------- the CSV


def export_header(columns) -> list[str]:
    """The CSV's header for the shown columns: the lead's id, then each column's fields."""
    return ["id", *(field for key in columns for field in COLUMNS_BY_KEY[key].export)]


_EXPORT_VALUES = {"owner": "owner__email"}  # a CSV column → what it is read from, where that is not its name


def _cell(field, value):
    if value is None:
        return ""
    if field in ("created_at", "last_activity_at"):
        return timezone.localtime(value).isoformat(timespec="seconds")
    if field == "tags":
        return "; ".join(value)
    return value


def export_rows(rows, ordering, columns=DEFAULT_COLUMNS):
    """The CSV's rows for the list's leads and shown columns, in the list's order, fetched in chunks (one query per
    2,000 rows). Each row matches export_header(columns)."""
    fields = export_header(columns)
    tie_break = "-pk" if ordering.startswith("-") else "pk"
    values = rows.order_by(ordering, tie_break).values_list(*(_EXPORT_VALUES.get(name, name) for name in fields))
    for row in values.iterator(chunk_size=2000):
        yield [str(row[0]), *(_cell(field, value) for field, value in zip(fields[1:], row[1:], strict=True))]


# --------------------------------------------------------------------------------------------- bulk selection

MAX_TICKED = 500  # leads ticked one by one in one request: a page of the list is far less
MATCHING = "matching"


@dataclass
class Selection:
    """The leads a bulk action on the list acts on: `leads`, a queryset (unordered, set-based); `matching` when
    they are every lead that matches the list's `query`, else the ticked ones (`ids`)."""

    leads: object
    matching: bool
    query: str
    ids: list


def matching_leads(queryset, query) -> object:
    """Every lead of `queryset` (what the member may see) that the list's query string matches: its filters and
    search, as the list and its Export read them; its sort, page and columns play no part. Invalid for filters
    the list would refuse."""
    filterset, rows, _sort, _ordering = list_rows(queryset, QueryDict(clean_query(query)))
    if not filterset.is_valid():
        raise Invalid(errors={name: [str(problem) for problem in problems]
                              for name, problems in filterset.errors.items()})
    return rows.order_by()


def selection(queryset, data) -> Selection:
    """The leads a bulk action posted from the list names: `scope=matching` with the list's `query` for all that
    match it, else the ticked `lead` ids. Only leads of `queryset` (the member's visible leads of their org) are
    ever selected; Invalid when nothing is selected or an id is malformed."""
    if data.get("scope") == MATCHING:
        query = clean_query(data.get("query", ""))
        return Selection(leads=matching_leads(queryset, query), matching=True, query=query, ids=[])
    ids = []
    for value in data.getlist("lead"):
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            raise Invalid(errors={"lead": ["Unknown lead."]}) from None
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise Invalid(errors={"lead": ["Select at least one lead."]})
    if len(ids) > MAX_TICKED:
        raise Invalid(errors={"lead": [f"Tick at most {MAX_TICKED} leads, or select all that match."]})
    return Selection(leads=queryset.filter(pk__in=ids).order_by(), matching=False, query="", ids=ids)


_LABELS = {"search": "Search", "lifecycle_stage": "Stage", "source_type": "Source type", "score_min": "Min score",
           "score_max": "Max score", "created_after": "Created from", "created_before": "Created before"}


def describe(query) -> list[str]:
    """The list query's search and filters in words ("Stage: Lead, Sales qualified"), for people to check what
    "all that match" means before a bulk change."""
    given = QueryDict(clean_query(query))
    words = []
    for key in LIST_KEYS:
        if key in ("ordering", "columns") or not given.getlist(key):
            continue
        choices = dict(getattr(LeadFilter.base_filters.get(key), "extra", {}).get("choices", ()))
        label = _LABELS.get(key, key.replace("_", " ").capitalize())
        words.append(f"{label}: {', '.join(str(choices.get(value, value)) for value in given.getlist(key))}")
    return words
