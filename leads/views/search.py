"""The header's search: leads (name, email, company), accounts and deals (name) of the member's org that they may
see, grouped, each linking to its page; as a page (/search/?q=) and as the top hits under the box as one types."""

from django.shortcuts import render
from django.views.decorators.http import require_GET

from leadcrm.policy import Action, allowed

from .. import selectors
from .conversion import visible_accounts, visible_deals
from .leads import visible_leads

MIN_LENGTH = 2
MAX_LENGTH = 200
PAGE_HITS = 20  # per group on the results page
SUGGEST_HITS = 5  # per group under the box


def _term(request) -> str:
    return request.GET.get("q", "").replace("\x00", "").strip()[:MAX_LENGTH]


def _groups(request, term: str, limit: int) -> list[dict]:
    """Up to `limit` hits of each kind (one query each, with what the rows show), and whether there are more."""
    found = [
        ("leads", "Leads", selectors.search_leads(visible_leads(request), term).order_by("-created_at", "-pk")),
        ("accounts", "Accounts", selectors.search_text(visible_accounts(request), term).order_by("name", "pk")),
        ("deals", "Deals", selectors.search_text(visible_deals(request), term).select_related("account")
         .order_by("-created_at", "-pk")),
    ]
    groups = []
    for kind, label, rows in found:
        hits = list(rows[:limit + 1])
        groups.append({"kind": kind, "label": label, "hits": hits[:limit], "more": len(hits) > limit})
    return groups


def _context(request, limit: int) -> dict:
    term = _term(request)
    groups = _groups(request, term, limit) if len(term) >= MIN_LENGTH else []
    return {"q": term, "groups": groups, "too_short": 0 < len(term) < MIN_LENGTH, "min_length": MIN_LENGTH,
            "found": any(group["hits"] for group in groups)}


@allowed(Action.WORK_LEADS)
@require_GET
def search(request):
    return render(request, "leads/search.html", _context(request, PAGE_HITS))


@allowed(Action.WORK_LEADS)
@require_GET
def suggest(request):
    """The top hits under the header's box (htmx): empty until the term is long enough."""
    return render(request, "leads/_search_suggest.html", _context(request, SUGGEST_HITS))
