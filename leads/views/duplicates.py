"""The duplicates page: groups of likely duplicate leads side by side, and merging a group into one lead."""

import uuid
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Count
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from leadcrm.policy import Action, allowed

from .. import selectors, services
from ..models import Activity, Lead

REASONS = {"email": "Same Gmail address", "phone": "Same phone", "name_company": "Same name and company"}

org_wide = allowed(Action.MANAGE_LEADS)


def _activity_counts(organization_id, leads) -> dict:
    """How many timeline entries each lead has, for all leads on the page in one query."""
    rows = (Activity.objects.for_org(organization_id).filter(lead__in=[lead.pk for lead in leads])
            .order_by().values("lead_id").annotate(n=Count("pk")).values_list("lead_id", "n"))
    return dict(rows)


def _with_counts(organization_id, leads):
    counts = _activity_counts(organization_id, leads)
    for lead in leads:
        lead.activity_count = counts.get(lead.pk, 0)
    return leads


def _page_url(after: str = "") -> str:
    url = reverse("leads:duplicates")
    return f"{url}?{urlencode({'after': after})}" if after else url


def _page(request, *, after: str, status=200, error=""):
    groups = selectors.duplicate_groups(request.organization.pk, after=after)
    _with_counts(request.organization.pk, [lead for group in groups for lead in group["leads"]])
    for group in groups:
        group["label"] = REASONS.get(group["reason"], group["reason"])
    full = len(groups) == selectors.DUPLICATES_PAGE
    next_url = _page_url(f"{groups[-1]['reason']}:{groups[-1]['key']}") if full else None
    return render(request, "leads/duplicate_list.html", {
        "groups": groups, "after": after, "error": error,
        "next_url": next_url, "previous_url": _page_url() if after else None,
    }, status=status)


@org_wide
@require_GET
def duplicate_list(request):
    return _page(request, after=request.GET.get("after", "").replace("\x00", ""))


def _ids(values) -> list | None:
    try:
        return list(dict.fromkeys(uuid.UUID(value) for value in values))
    except ValueError:
        return None


@org_wide
@require_POST
def duplicate_merge(request):
    """First post: a page to confirm the merge. Second post (confirm=yes): merge, back to the duplicates."""
    after = request.POST.get("after", "").replace("\x00", "")
    keep_id = (_ids([request.POST.get("keep", "")]) or [None])[0]
    group = _ids(request.POST.getlist("lead"))
    if keep_id is None or not group or keep_id not in group:
        return _page(request, after=after, status=400, error="Choose the lead to keep, then merge.")
    merge_ids = [pk for pk in group if pk != keep_id]
    leads = {lead.pk: lead for lead in selectors.leads_for(request.organization).filter(pk__in=group)}
    if len(leads) != len(group) or not merge_ids:
        return _page(request, after=after, status=400,
                     error="Some of those leads no longer exist (merged or deleted); here is the list as it is now.")
    if request.POST.get("confirm") != "yes":
        ordered = _with_counts(request.organization.pk, [leads[keep_id], *(leads[pk] for pk in merge_ids)])
        return render(request, "leads/duplicate_confirm.html", {
            "keep": leads[keep_id], "others": ordered[1:], "leads": ordered, "after": after,
            "back_url": _page_url(after),
        })
    try:
        kept = services.merge_leads(organization_id=request.organization.pk, keep_id=keep_id, merge_ids=merge_ids,
                                    actor=request.user)
    except services.MergeRefused as exc:
        return _page(request, after=after, status=400, error=str(exc))
    except Lead.DoesNotExist:
        return _page(request, after=after, status=400,
                     error="Some of those leads no longer exist (merged or deleted); here is the list as it is now.")
    count = len(merge_ids)
    messages.success(request, f"Merged {count} lead{'s' if count != 1 else ''} into {kept}.")
    return redirect(_page_url(after))
