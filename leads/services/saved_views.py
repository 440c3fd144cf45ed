"""Saved views of the leads list: a member's named search, filters, sort and columns, optionally shared with the
org; and the columns a member last chose to see."""

from ..listing import clean_columns, clean_query
from ..models import ListPreference, SavedView


def save_view(*, organization_id, owner, name: str, query: str, shared: bool) -> SavedView:
    """Saves the view under `name`, replacing the owner's view of that name (saving again updates it). The query
    keeps only the list's own keys (listing.clean_query); an unknown column is Invalid."""
    view, _ = SavedView.objects.update_or_create(
        organization_id=organization_id, owner=owner, name=name.strip(),
        defaults={"query": clean_query(query), "shared": shared},
    )
    return view


def delete_view(*, view: SavedView) -> None:
    view.delete()


def remember_columns(*, organization_id, user, columns) -> list[str]:
    """Keeps the member's choice of list columns (checked against the fixed list; Invalid otherwise)."""
    chosen = clean_columns(columns)
    ListPreference.objects.update_or_create(organization_id=organization_id, user=user,
                                            defaults={"columns": chosen})
    return chosen
