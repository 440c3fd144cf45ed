"""The leads list and the lead page, with its stage moves and BANT answers."""

import json

from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from leadcrm import policy, replica
from leadcrm.csvutil import csv_response
from leadcrm.errors import Invalid
from leadcrm.paging import keyset_page
from leadcrm.policy import Action, allowed

from .. import listing, navigation, selectors, services
from ..lifecycle_forms import LoseDealForm, QualificationForm, SavedViewForm, TouchForm, bant_label
from ..models import (
    ALLOWED_MOVES,
    STAGES_WITH_REASON,
    Activity,
    ConsentRecord,
    Deal,
    DealStatus,
    Grade,
    LifecycleStage,
    ListPreference,
    ReasonKind,
    SavedView,
    SourceType,
    Temperature,
)
from ..services.conversion import offers_conversion


def visible_leads(request):
    """The leads the signed-in member may see and work on (policy.visible)."""
    return policy.visible_to(request, selectors.leads_for(request.organization))


def _columns(request, params) -> list[str]:
    """The columns the list (and its export) shows for the query: those it names, else the member's remembered
    choice (one query), else the default ones. Invalid for an unknown column."""
    if params.getlist("columns"):
        return listing.visible_columns(params)
    remembered = (ListPreference.objects.for_org(request.organization).filter(user=request.user)
                  .values_list("columns", flat=True).first()) or []
    return listing.visible_columns(params, remembered=remembered)


def _list_params(request, views):
    """(the list's query, the saved view open): the query string, or the saved view's that `?view=` names, with
    `?columns=` chosen since the view was opened (not saved yet) in place of its own."""
    if not request.GET.get("view"):  # "All leads" sends an empty one
        return request.GET, None
    current = next((view for view in views if str(view.pk) == request.GET["view"]), None)
    if current is None:
        raise Http404("No such view.")
    params = QueryDict(current.query, mutable=True)
    if request.GET.getlist("columns"):
        params.setlist("columns", request.GET.getlist("columns"))
    return params, current


def _list_page(request, *, status=200, save_form=None, params=None):
    """The leads list for the query string, or for the saved view `?view=` names (its query, this URL's page)."""
    views = list(selectors.saved_views_for(request.organization, request.user))
    given, current = _list_params(request, views)
    params = given if params is None else params
    problems = []
    try:
        columns = _columns(request, params)
    except Invalid as exc:
        columns, problems = list(listing.DEFAULT_COLUMNS), exc.messages
    filterset, rows, sort, ordering = listing.list_rows(visible_leads(request), params)
    leads, next_url, previous_url = keyset_page(request, rows, ordering)
    list_query = params.copy()
    list_query.pop("cursor", None)  # the download and a saved view hold every page of the list
    list_query.setlist("columns", columns)  # and the columns shown
    filter_query = list_query.copy()
    filter_query.pop("columns")
    bulk = _bulk_actions(request)
    # "Select all N that match" is offered when the list runs past this page: counted once, for those who can act.
    with replica.reading():
        total = rows.order_by().count() if bulk and (next_url or previous_url) else len(leads)
    return render(request, "leads/lead_list.html", {
        "leads": leads, "filterset": filterset, "search": params.get("search", "").strip(),
        "sort": sort, "sorts": listing.SORTS, "headers": listing.sort_headers(params, sort, columns),
        "columns": columns, "column_choices": listing.COLUMNS, "required_columns": listing.REQUIRED_COLUMNS,
        "column_problems": problems, "filter_query": filter_query.urlencode(),
        "chosen": {name: params.getlist(name) for name in ("lifecycle_stage", "grade", "source_type", "temperature")},
        "list_query": list_query.urlencode(), "saved_views": views, "current_view": current,
        "save_form": save_form or SavedViewForm(initial={"name": current.name if current else ""}),
        "next_url": next_url, "previous_url": previous_url, "stages": LifecycleStage.choices,
        "grades": Grade.choices, "source_types": SourceType.choices, "temperatures": Temperature.choices,
        "can_see_duplicates": policy.can(request, Action.MANAGE_LEADS),
        "bulk": bulk, "total": total,
    }, status=status if filterset.is_valid() and not problems else 400)


def _bulk_actions(request) -> set[str]:
    """The bulk actions of the list's bar the member may use (each is refused again where it is posted)."""
    offered = {"tag": Action.MANAGE_LEADS, "list": Action.SEGMENTS, "campaign": Action.CAMPAIGNS,
               "route": Action.REASSIGN, "task": Action.TASKS}
    return {name for name, action in offered.items() if policy.can(request, action)}


@allowed(Action.WORK_LEADS)
def lead_list(request):
    return _list_page(request)


@allowed(Action.WORK_LEADS)
@require_POST
def saved_view_save(request):
    form = SavedViewForm(request.POST)
    if not form.is_valid():
        return _list_page(request, status=400, save_form=form, params=QueryDict(request.POST.get("query", "")))
    view = services.save_view(organization_id=request.organization.pk, owner=request.user,
                              name=form.cleaned_data["name"], query=form.cleaned_data["query"],
                              shared=form.cleaned_data["shared"])
    messages.success(request, f"Saved the view “{view.name}”{' for everyone in the org' if view.shared else ''}.")
    return redirect(f"{reverse('leads:list')}?view={view.pk}")


@allowed(Action.WORK_LEADS)
@require_POST
def list_columns(request):
    """The Columns control: remember the member's choice, and show the list again with it (a saved view that is
    open keeps showing, with these columns until it is saved again or left)."""
    columns = services.remember_columns(organization_id=request.organization.pk, user=request.user,
                                        columns=request.POST.getlist("columns"))
    target = QueryDict(mutable=True)
    view = request.POST.get("view", "")
    if view and selectors.saved_views_for(request.organization, request.user).filter(
            pk=int(view) if view.isdigit() else None).exists():
        target["view"] = view
        target.setlist("columns", columns)
    else:
        target = QueryDict(listing.clean_query(request.POST.get("query", "")), mutable=True)
        target.pop("columns", None)  # the remembered choice shows
    return redirect(f"{reverse('leads:list')}?{target.urlencode()}" if target else reverse("leads:list"))


@allowed(Action.WORK_LEADS)
@require_POST
def saved_view_delete(request, pk):
    view = get_object_or_404(SavedView.objects.for_org(request.organization), pk=pk, owner=request.user)
    services.delete_view(view=view)
    messages.success(request, f"Deleted the view “{view.name}”.")
    return redirect("leads:list")


@allowed(Action.EXPORT_LIST)
def lead_list_export(request):
    """The list as it is filtered, searched and sorted, every page of it and the columns it shows (the Export link
    names them), as a streamed CSV."""
    try:
        columns = _columns(request, request.GET)
    except Invalid:
        columns = None
    filterset, rows, _sort, ordering = listing.list_rows(visible_leads(request), request.GET)
    if columns is None or not filterset.is_valid():  # the list shows what is wrong
        return redirect(f"{reverse('leads:list')}?{request.GET.urlencode()}")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return csv_response(f"leads-{stamp}.csv", listing.export_header(columns),
                        listing.export_rows(rows, ordering, columns))


def _stage_history(lead) -> list[tuple[str, object]]:
    """(stage label, when entered) for each stage the lead has been in, oldest first."""
    entered = []
    for stage, at in (lead.stage_entered_at or {}).items():
        when = parse_datetime(at) if isinstance(at, str) else None
        if stage in LifecycleStage.values and when is not None:
            entered.append((LifecycleStage(stage).label, when))
    return sorted(entered, key=lambda row: row[1])


def _stage_moves(lead, required, reasons_by_stage) -> dict:
    """What the Stage card offers: moves that need nothing, and the reason-taking ones with their reasons."""
    allowed = ALLOWED_MOVES[lead.lifecycle_stage]
    missing = [bant_label(field).lower() for field in required if not getattr(lead, field)]
    plain = [{"value": stage, "label": LifecycleStage(stage).label,
              "needs": missing if stage == LifecycleStage.SQL else []}
             for stage in allowed if stage not in STAGES_WITH_REASON]
    with_reason = [{"value": stage, "label": LifecycleStage(stage).label, "reasons": reasons_by_stage[stage]}
                   for stage in allowed if stage in STAGES_WITH_REASON]
    return {"plain_moves": plain, "reason_moves": with_reason}


TIMELINE_LIMIT = 100


def timeline(organization_id, lead):
    """The lead's latest activities, newest first, with who did them."""
    return (Activity.objects.for_org(organization_id).filter(lead=lead).select_related("actor")
            .order_by("-occurred_at")[:TIMELINE_LIMIT])


def lead_page(request, lead, *, status=200, stage_error="", qualification_form=None, touch_form=None):
    """The lead page, also shown again (with the problem on it) when a stage move, a BANT answer or a touch is
    refused. Opened from a list (`?from=`), it steps through that list (leads.navigation)."""
    organization_id = request.organization.pk
    activities = timeline(organization_id, lead)
    required = services.required_bant(organization_id)
    reasons_by_stage = {stage: services.reasons(organization_id, stage)
                        for stage in ALLOWED_MOVES[lead.lifecycle_stage] if stage in STAGES_WITH_REASON}
    deals = list(Deal.objects.for_org(organization_id).filter(lead=lead).select_related("account")
                 .order_by("-created_at", "-pk"))
    lost_reasons = (services.reasons(organization_id, ReasonKind.LOST)
                    if any(deal.status == DealStatus.OPEN for deal in deals) else [])
    return render(request, "leads/lead_detail.html", {
        "lead": lead, "activities": activities,
        "stage_history": _stage_history(lead), "stage_error": stage_error,
        **_stage_moves(lead, required, reasons_by_stage),
        "qualification_form": qualification_form or QualificationForm.for_lead(lead, required),
        "required_bant": [bant_label(field) for field in required],
        "can_convert": offers_conversion(lead, deals),
        "deals": deals, "lose_form": LoseDealForm(reasons=lost_reasons),
        "consents": ConsentRecord.objects.for_org(organization_id).filter(lead=lead).order_by("-given_at")[:20],
        "can_export": policy.can(request, Action.EXPORT), "can_erase": policy.can(request, Action.ERASE),
        "can_edit": policy.can(request, Action.EDIT_LEADS) and lead.erased_at is None,
        "touch_form": touch_form or TouchForm(auto_id="log-%s"),
        "steps": navigation.steps(request, lead), "origin": navigation.origin_of(request),
    }, status=status)


@allowed(Action.WORK_LEADS)
def lead_detail(request, pk):
    return lead_page(request, get_object_or_404(visible_leads(request).select_related("account"), pk=pk))


@allowed(Action.WORK_LEADS)
@require_POST
def lead_stage(request, pk):
    lead = get_object_or_404(visible_leads(request), pk=pk)
    stage = request.POST.get("stage", "")
    # Only the moves that take a reason get one; it must then be one of the org's (the service checks).
    reason = request.POST.get("reason", "") if stage in STAGES_WITH_REASON else ""
    try:
        lead = services.move_stage(lead=lead, to_stage=stage, reason=reason, actor=request.user)
    except services.StageMoveRefused as exc:
        lead.refresh_from_db()
        return lead_page(request, lead, status=400, stage_error=str(exc))
    reason = f" ({lead.stage_reason})" if stage in STAGES_WITH_REASON and lead.stage_reason else ""
    messages.success(request, f"Moved to {lead.get_lifecycle_stage_display()}{reason}.")
    return redirect(navigation.detail_url(request, lead))


@allowed(Action.WORK_LEADS)
@require_POST
def lead_qualification(request, pk):
    lead = get_object_or_404(visible_leads(request), pk=pk)
    form = QualificationForm(request.POST, required_for_sql=services.required_bant(request.organization.pk))
    if not form.is_valid():
        return lead_page(request, lead, status=400, qualification_form=form)
    services.update_qualification(lead=lead, data=form.cleaned_data, actor=request.user)
    messages.success(request, "Qualification saved.")
    return redirect(navigation.detail_url(request, lead))


# Who may take a lead's data out or erase it: a privacy request is handled by admins; marketers, who own consent
# and email, may export too.
@allowed(Action.EXPORT)
def lead_export(request, pk):
    lead = get_object_or_404(selectors.leads_for(request.organization), pk=pk)
    body = json.dumps(services.export_lead(lead=lead), cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="lead-{lead.pk}.json"'
    return response


@allowed(Action.ERASE)
def lead_erase(request, pk):
    """GET asks for confirmation; POST with confirm=erase removes the person's data for good."""
    lead = get_object_or_404(selectors.leads_for(request.organization), pk=pk)
    if request.method == "POST":
        if request.POST.get("confirm", "").strip().lower() != "erase":
            return render(request, "leads/lead_erase.html", {"lead": lead, "error": True}, status=400)
        services.erase_lead(lead=lead, actor=request.user)
        messages.success(request, "The lead's personal data was erased. Its anonymous row stays in reports.")
        return redirect("leads:detail", pk=lead.pk)
    return render(request, "leads/lead_erase.html", {"lead": lead})
