"""Bulk actions of the leads list: the leads ticked on a page, or every lead that matches the list's search and
filters ("Select all N that match"). Each app that acts on a selection (tags and lists here, campaigns in theirs)
reads it with `selected` and asks to confirm with `ask`, so every bulk door selects the same way.

A selection of all that match is applied set-based (one statement over the matching query), and is shown with its
count to confirm before anything changes.
"""

import uuid

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from leadcrm import policy
from leadcrm.errors import Invalid
from leadcrm.policy import Action, allowed

from .. import listing, services
from ..models import Segment, SegmentKind
from .leads import visible_leads

TAG_ACTIONS = {"tag_add": "Add tag", "tag_remove": "Remove tag"}


def back(request) -> str:
    """Where a bulk action returns to: the list it was started from (`next`), else the leads list."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return reverse("leads:list")


def selected(request) -> listing.Selection:
    """The leads the posted bulk action names, among those the member may see in their org: all that match the
    list's query (`scope=matching`; Invalid when none does), or the ticked ones (404 when none of them is such a
    lead)."""
    picked = listing.selection(visible_leads(request), request.POST)
    if not picked.leads.exists():
        if not picked.matching:
            raise Http404("No such leads.")
        raise Invalid(errors={"query": ["No leads match the list's search and filters: nothing changed."]})
    return picked


def confirmed(request) -> bool:
    return request.POST.get("confirm") == "yes"


def ask(request, picked, *, title: str, action_url: str, button: str, keep=(), choice=None, problems=(),
        status=200):
    """The page that asks before a bulk change: how many leads (and, for all that match, which search and
    filters), a choice still to make (a list, a campaign) and the button that applies it. It posts the selection
    and the fields named in `keep` again, with confirm=yes."""
    count = picked.leads.count() if picked is not None else 0
    return render(request, "leads/bulk_confirm.html", {
        "title": title, "action_url": action_url, "button": button, "count": count, "picked": picked,
        "filters": listing.describe(picked.query) if picked is not None and picked.matching else [],
        "keep": [(name, request.POST.get(name, "")) for name in keep], "choice": choice, "problems": problems,
        "next": back(request),
    }, status=status)


def _problem_page(request, exc: Invalid):
    return ask(request, None, title="Nothing changed", action_url="", button="", problems=exc.messages, status=400)


def _clean_tag(value: str) -> str:
    tag = value.replace("\x00", "").strip()
    if not tag or len(tag) > 64:
        raise Invalid(errors={"tag": ["Give a tag of 1 to 64 characters."]})
    return tag


def _static_lists(request):
    return Segment.objects.for_org(request.organization).filter(kind=SegmentKind.STATIC).order_by("name", "pk")


def uuid_or_none(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@allowed(Action.MANAGE_LEADS)
@require_POST
def lead_bulk(request):
    """Tag or untag the selected leads, or put them in a static list."""
    action = request.POST.get("action", "")
    try:
        if action not in (*TAG_ACTIONS, "list_add"):
            raise Invalid(errors={"action": ["Choose what to do with the selected leads."]})
        picked = selected(request)
        if action == "list_add":
            return _add_to_list(request, picked)
        tag = _clean_tag(request.POST.get("tag", ""))
    except Invalid as exc:
        return _problem_page(request, exc)
    adding = action == "tag_add"
    if picked.matching and not confirmed(request):
        return ask(request, picked, title=f"{TAG_ACTIONS[action]} “{tag}”", action_url=reverse("leads:bulk"),
                   button=f"{'Add' if adding else 'Remove'} the tag", keep=("action", "tag"))
    changed = services.tag_leads(organization_id=request.organization.pk, leads=picked.leads,
                                 add=[tag] if adding else [], remove=[] if adding else [tag])
    verb = "added to" if adding else "removed from"
    messages.success(request, f"Tag “{tag}” {verb} {changed:,} lead{'s' * (changed != 1)}.")
    return redirect(back(request))


def _add_to_list(request, picked):
    if not policy.can(request, Action.SEGMENTS):
        return policy.refused(request, Action.SEGMENTS)
    lists = _static_lists(request)
    target = lists.filter(pk=uuid_or_none(request.POST.get("list"))).first() if request.POST.get("list") else None
    if target is None or not confirmed(request):
        problems = ["Choose a list."] if request.POST.get("list") is not None and target is None else []
        if not lists.exists():
            problems = ["There is no static list yet: make one on the Segments page first."]
        return ask(request, picked, title="Add to a list", action_url=reverse("leads:bulk"), button="Add to the list",
                   keep=("action",), problems=problems, status=400 if problems else 200,
                   choice={"name": "list", "label": "List", "options": [(str(s.pk), s.name) for s in lists],
                           "value": request.POST.get("list", "")})
    added = services.add_to_list(segment=target, leads=picked.leads)
    messages.success(request, f"{added:,} lead{'s' * (added != 1)} added to “{target.name}”.")
    return redirect(back(request))
