"""Saved views of the leads list: a member's named search, filters and sort, optionally shared with the org."""

from django.http import QueryDict

from ..models import SavedView

# The list's own query keys: anything else in a submitted query (a page cursor, a stray parameter) is dropped.
LIST_KEYS = ("search", "lifecycle_stage", "grade", "source_type", "temperature", "country", "score_min", "ordering")


def clean_query(raw: str) -> str:
    """The list's query string with only its own keys, and no empty values."""
    given = QueryDict(raw or "")
    kept = QueryDict(mutable=True)
    for key in LIST_KEYS:
        values = [value for value in given.getlist(key) if value.strip()]
        if values:
            kept.setlist(key, values)
    return kept.urlencode()


def save_view(*, organization_id, owner, name: str, query: str, shared: bool) -> SavedView:
    """Saves the view under `name`, replacing the owner's view of that name (saving again updates it)."""
    view, _ = SavedView.objects.update_or_create(
        organization_id=organization_id, owner=owner, name=name.strip(),
        defaults={"query": clean_query(query), "shared": shared},
    )
    return view


def delete_view(*, view: SavedView) -> None:
    view.delete()
