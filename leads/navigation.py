"""Stepping through a list from the lead page: ← Previous, Next → and Back to the list.

A link from a list into the lead page carries the list in `?from=<kind>[:<argument>]` — `list:<the leads list's
query string>`, `queue`, or `queue:<rep id>` for a rep's queue opened by their manager. The list's owner says which
leads come just before and after the one shown, in the list's own order (`leadcrm.paging.neighbours`: by keyset, never
by loading the list). The leads app answers for its list; the apps built on it register theirs in
AppConfig.ready() (routing: the queue), as they subscribe to events, so `leads` imports none of them.
"""

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from django.http import QueryDict
from django.urls import reverse

from leadcrm import policy
from leadcrm.pagination import total_ordering
from leadcrm.paging import neighbours

from . import listing, selectors

MAX_ORIGIN = 2000  # characters of `from`: a list's query string is far shorter; a longer one is ignored


@dataclass(frozen=True)
class Steps:
    back_label: str  # "Back to list"
    back_url: str
    previous: object | None  # the lead before the one shown, or None at the top
    next: object | None
    origin: str  # the `from` value, carried on by the step links

    def _url(self, lead) -> str:
        return f"{reverse('leads:detail', args=[lead.pk])}?{urlencode({'from': self.origin})}"

    @property
    def previous_url(self) -> str:
        return self._url(self.previous) if self.previous is not None else ""

    @property
    def next_url(self) -> str:
        return self._url(self.next) if self.next is not None else ""

    @property
    def query(self) -> str:
        """`from=…`, for links and forms of the lead page that should keep the list."""
        return urlencode({"from": self.origin})


# kind -> resolver(request, lead, argument, origin) -> Steps | None (None: the list is not one this member may see)
Resolver = Callable[..., "Steps | None"]
_resolvers: dict[str, Resolver] = {}


def register(kind: str, resolver: Resolver) -> None:
    _resolvers[kind] = resolver


def origin_of(request) -> str:
    """The list the lead page was opened from (`from`), or "" when none or not one of ours."""
    origin = request.GET.get("from") or request.POST.get("from") or ""
    kind = origin.partition(":")[0]
    return origin if kind in _resolvers and len(origin) <= MAX_ORIGIN else ""


def steps(request, lead) -> Steps | None:
    origin = origin_of(request)
    if not origin:
        return None
    kind, _, argument = origin.partition(":")
    return _resolvers[kind](request, lead, argument, origin)


def detail_url(request, lead) -> str:
    """The lead page, keeping the list it was opened from (after a form posted from it)."""
    origin = origin_of(request)
    url = reverse("leads:detail", args=[lead.pk])
    return f"{url}?{urlencode({'from': origin})}" if origin else url


def list_steps(request, lead, argument: str, origin: str) -> Steps:
    """The leads list, searched, filtered and sorted by `argument` (its query string), of the leads the member
    sees. A lead that no longer matches the list (edited, moved on) is placed by its sort key all the same."""
    params = QueryDict(argument, mutable=True)
    params.pop("cursor", None)
    visible = policy.visible_to(request, selectors.leads_for(request.organization))
    _filterset, rows, sort, ordering = listing.list_rows(visible, params)
    _, anchor, _, _ = listing.list_rows(visible, QueryDict(urlencode({"ordering": sort})))
    previous, following = neighbours(rows.order_by(*total_ordering(ordering)), lead.pk, anchor=anchor)
    query = params.urlencode()
    return Steps(back_label="Back to list", back_url=reverse("leads:list") + (f"?{query}" if query else ""),
                 previous=previous, next=following, origin=origin)


register("list", list_steps)
