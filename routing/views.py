"""Browser pages of distribution: the rep's queue with its quick actions, the badge and notifications, the team
pools, the managers' team load, the Distribution card of the lead page and the bulk actions of the lead list."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from leadcrm import policy
from leadcrm.paging import keyset_page, neighbours
from leadcrm.policy import Action, allowed
from leads import navigation
from leads import services as lead_services
from leads.lifecycle_forms import TouchForm
from leads.models import ALLOWED_MOVES, STAGES_WITH_REASON, Lead, LifecycleStage
from leads.selectors import leads_for
from leads.services.conversion import CONVERTIBLE_STAGES
from leads.touches import TOUCH_CHOICES

from . import selectors, services
from .forms import QUEUE_MOVES, BulkForm, RepChoiceForm, StageForm
from .models import AssignmentReason, LeadRouting, TeamMember
from .services.notify import mark_read

POOL_LIMIT = 200
NOTIFICATIONS_PAGE_SIZE = 20
HISTORY_LIMIT = 50
# Sent with every answer that changes someone's queue, so the badge in the navigation asks for news at once.
QUEUE_EVENT = "queue-changed"
# htmx's answer code that stops a poll: the badge of a signed-out page stops asking.
STOP_POLLING = 286

def _visible_leads(request):
    """As on the lead pages (policy.visible): reps work on their own leads, the other roles on the whole org's."""
    return policy.visible_to(request, leads_for(request.organization))


def _first_error(form) -> str:
    return " ".join(str(message) for problems in form.errors.values() for message in problems)


def _safe_next(request, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


# --------------------------------------------------------------------------------------------- the queue


def _queue_owner(request, value):
    """Whose queue is shown: the member's own, or (`?rep=<user id>`) another's as selectors.queue_owner allows —
    the same rule as the API's. Anyone else's is a 404, as for a lead of another org."""
    if value in (None, ""):
        return request.user
    try:
        user_id = int(value)
    except (TypeError, ValueError):
        raise Http404() from None
    owner = selectors.queue_owner(request.organization.pk, policy.principal_of(request), user_id)
    if owner is None:
        raise Http404()
    return owner


def _queue_url(owner_id=None) -> str:
    url = reverse("routing:queue")
    return f"{url}?rep={owner_id}" if owner_id else url


def queue_steps(request, lead, argument: str, origin: str):
    """The lead page's Previous / Next through a queue, in its order: the member's own (`from=queue`), or the queue
    of a rep they oversee (`from=queue:<user id>`, as `_queue_owner` allows; any other gives no steps)."""
    owner = request.user
    if argument:
        try:
            user_id = int(argument)
        except ValueError:
            return None
        owner = selectors.queue_owner(request.organization.pk, policy.principal_of(request), user_id)
        if owner is None:
            return None
    organization_id, now = request.organization.pk, timezone.now()
    previous, following = neighbours(selectors.queue(organization_id, owner, now=now), lead.pk,
                                     anchor=selectors.queue_order(Lead.objects.for_org(organization_id), now=now))
    other = owner.pk != request.user.pk
    return navigation.Steps(back_label="Back to queue", back_url=_queue_url(owner.pk if other else None),
                            previous=previous, next=following, origin=origin)


def _reasons(organization_id) -> dict[str, list[str]]:
    return {str(stage): lead_services.reasons(organization_id, stage) for stage in STAGES_WITH_REASON}


REASON_MOVE_LABELS = {LifecycleStage.DISQUALIFIED.value: "Disqualify", LifecycleStage.RECYCLED.value: "Recycle"}


def _with_actions(lead, reasons, error=""):
    """The queue's quick actions the lifecycle allows from the lead's stage, and a refused action's message."""
    allowed = {str(stage) for stage in ALLOWED_MOVES.get(lead.lifecycle_stage, ())}
    lead.moves = {str(stage) for stage in QUEUE_MOVES if str(stage) in allowed}
    lead.reason_moves = [{"stage": stage, "label": label, "reasons": reasons.get(stage, [])}
                         for stage, label in REASON_MOVE_LABELS.items() if stage in lead.moves]
    lead.can_convert = lead.lifecycle_stage in CONVERTIBLE_STAGES
    lead.row_error = error
    return lead


def _row_context(request, owner) -> dict:
    other = owner.pk != request.user.pk
    return {
        "touch_choices": TOUCH_CHOICES, "outcome_groups": TouchForm().outcome_groups(),
        "queue_rep": owner.pk if other else None,
        "can_reassign": policy.can(request, Action.REASSIGN),
    }


def _queue_page(request, owner, *, row_errors=None, status=200):
    organization_id = request.organization.pk
    row_errors = row_errors or {}
    reasons = _reasons(organization_id)
    leads = [_with_actions(lead, reasons, row_errors.get(lead.pk, ""))
             for lead in selectors.queue(organization_id, owner)[:selectors.QUEUE_LIMIT]]
    shown = {lead.pk for lead in leads}
    context = {
        **_row_context(request, owner), "leads": leads, "owner": owner, "row_errors": row_errors,
        "other_errors": [error for pk, error in row_errors.items() if pk not in shown],
        "limit": selectors.QUEUE_LIMIT, "now": timezone.now(),
    }
    if context["can_reassign"]:
        context["reassign_form"] = RepChoiceForm(reps=selectors.assignable_reps(organization_id))
    return render(request, "routing/queue.html", context, status=status)


@allowed(Action.WORK_LEADS)
@require_GET
def queue(request):
    return _queue_page(request, _queue_owner(request, request.GET.get("rep")))


def _queue_row(request, lead, *, error="", notice="", status=200):
    """After a quick action: the lead's row again (htmx), or the queue page (a form posted without scripts)."""
    owner = _queue_owner(request, request.POST.get("rep"))
    if not request.htmx:
        if error:
            return _queue_page(request, owner, row_errors={lead.pk: error}, status=status)
        messages.success(request, notice)
        return redirect(_queue_url(owner.pk if owner.pk != request.user.pk else None))
    row = None
    if lead.owner_id is not None:
        row = selectors.queue(request.organization.pk, lead.owner_id).filter(pk=lead.pk).first()
    context = {**_row_context(request, owner), "error": error, "notice": notice}
    if row is None:  # the lead left the queue (closed, moved on, handed to someone else)
        response = render(request, "routing/_queue_gone.html", {**context, "lead": lead}, status=status)
    else:
        row = _with_actions(row, _reasons(request.organization.pk), error)
        response = render(request, "routing/_queue_row.html", {**context, "lead": row}, status=status)
    if not error:
        response["HX-Trigger"] = QUEUE_EVENT
    return response


@allowed(Action.WORK_LEADS)
@require_POST
def lead_touch(request, pk):
    """Log a call, email, meeting or note from the queue: the first one stops the lead's SLA clock."""
    lead = get_object_or_404(_visible_leads(request), pk=pk)
    form = TouchForm(request.POST)
    if not form.is_valid():
        return _queue_row(request, lead, error=_first_error(form), status=400)
    lead_services.log_touch(organization_id=request.organization.pk, lead=lead, actor=request.user,
                            **form.service_arguments())
    return _queue_row(request, lead, notice=f"{dict(TOUCH_CHOICES)[form.cleaned_data['type']]} logged for {lead}.")


@allowed(Action.WORK_LEADS)
@require_POST
def lead_stage(request, pk):
    """Accept (SAL), qualify (SQL), disqualify or recycle from the queue; a refused move says why in the row."""
    lead = get_object_or_404(_visible_leads(request), pk=pk)
    form = StageForm(request.POST)
    if not form.is_valid():
        return _queue_row(request, lead, error=_first_error(form), status=400)
    stage = form.cleaned_data["stage"]
    reason = form.cleaned_data["reason"] if stage in STAGES_WITH_REASON else ""
    try:
        lead = lead_services.move_stage(lead=lead, to_stage=stage, reason=reason, actor=request.user)
    except lead_services.StageMoveRefused as exc:
        lead.refresh_from_db()
        return _queue_row(request, lead, error=str(exc), status=400)
    suffix = f" ({reason})" if reason else ""
    return _queue_row(request, lead, notice=f"{lead} moved to {LifecycleStage(stage).label}{suffix}.")


# --------------------------------------------------------------------------------------------- badge, notifications


def badge(request):
    """The navigation's queue badge, polled by htmx: open leads, and unread notifications when there are any."""
    if not request.user.is_authenticated or getattr(request, "organization", None) is None:
        return HttpResponse(status=STOP_POLLING)
    counts = selectors.queue_counts(request.organization.pk, request.user)
    return render(request, "routing/_badge.html", {"counts": counts})


@allowed(Action.WORK_LEADS)
@require_GET
def notifications(request):
    """The member's notifications, newest first, in keyset pages; the ones shown are read from now on (they keep
    their "new" mark on this showing only), so paging back through them brings the badge down."""
    items, next_url, previous_url = keyset_page(
        request, selectors.notifications(request.organization.pk, request.user), "-created_at",
        page_size=NOTIFICATIONS_PAGE_SIZE)
    mark_read(request.organization.pk, request.user, [item.pk for item in items if item.read_at is None])
    unread_left = selectors.queue_counts(request.organization.pk, request.user)["unread"]
    return render(request, "routing/notifications.html", {
        "notifications": items, "next_url": next_url, "previous_url": previous_url, "unread_left": unread_left})


@allowed(Action.WORK_LEADS)
@require_POST
def notifications_read(request):
    """Mark every notification of the member as read (the badge goes to zero)."""
    count = mark_read(request.organization.pk, request.user)
    messages.success(request, f"{count} notification{'' if count == 1 else 's'} marked as read." if count
                     else "Every notification was already read.")
    return redirect("routing:notifications")


# --------------------------------------------------------------------------------------------- pool


def _pool_teams(request):
    """The pools a member sees and claims from: their teams' and those they oversee (admins: every team)."""
    return selectors.pool_teams(request.organization.pk, policy.principal_of(request))


@allowed(Action.WORK_LEADS)
@require_GET
def pool(request):
    leads = list(selectors.pool(request.organization.pk, _pool_teams(request))[:POOL_LIMIT])
    return render(request, "routing/pool.html", {
        "leads": leads, "limit": POOL_LIMIT, "can_claim": policy.can(request, Action.CLAIM),
    })


@allowed(Action.CLAIM)
@require_POST
def claim(request, pk):
    """Take a lead from a pool. Of two reps clicking at once one gets it; the other is told who did (409)."""
    lead = get_object_or_404(Lead.objects.for_org(request.organization.pk), pk=pk)
    try:
        services.claim(organization_id=request.organization.pk, lead_id=lead.pk, user=request.user,
                       teams=_pool_teams(request))
    except services.ClaimRefused as exc:
        if request.htmx:
            return render(request, "routing/_pool_done.html", {"lead": lead, "error": str(exc)}, status=409)
        messages.error(request, f"{lead}: {exc}")
        return redirect("routing:pool")
    if request.htmx:
        response = render(request, "routing/_pool_done.html", {"lead": lead})
        response["HX-Trigger"] = QUEUE_EVENT
        return response
    messages.success(request, f"{lead} is yours: it is in your queue.")
    return redirect("routing:queue")


# --------------------------------------------------------------------------------------------- team


def _team_context(request) -> dict:
    organization_id = request.organization.pk
    teams = list(selectors.teams_for(organization_id, policy.principal_of(request)))
    rows = selectors.team_load(organization_id, teams)
    groups = [{"team": team, "rows": [row for row in rows if row["team"].pk == team.pk]} for team in teams]
    return {"groups": groups, "is_admin": policy.can(request, Action.ALL_QUEUES)}


@allowed(Action.TEAM_QUEUES)
@require_GET
def team(request):
    return render(request, "routing/team.html", _team_context(request))


@allowed(Action.TEAM_QUEUES)
@require_POST
def rep_availability(request, user_id):
    """Pause a rep (no new leads) or let them take leads again."""
    teams = selectors.teams_for(request.organization.pk, policy.principal_of(request))
    member = (TeamMember.objects.for_org(request.organization.pk).filter(team__in=teams, rep__user_id=user_id)
              .select_related("rep__user").first())
    if member is None:
        raise Http404()
    available = request.POST.get("available") == "1"
    services.set_available(profile=member.rep, available=available, actor=request.user)
    notice = f"{member.rep.user.email} {'takes leads again' if available else 'is paused: no new leads'}."
    if request.htmx:
        return render(request, "routing/_team_load.html", {**_team_context(request), "notice": notice})
    messages.success(request, notice)
    return redirect("routing:team")


# --------------------------------------------------------------------------------------------- bulk actions


@allowed(Action.REASSIGN)
@require_POST
def bulk(request):
    """Leads ticked in a list (the lead list, a rep's queue): route them by the rules now, or re-assign them.
    "Re-assign to…" without a rep chosen yet asks for one on a page of its own."""
    organization_id = request.organization.pk
    reps = selectors.assignable_reps(organization_id)
    form = BulkForm(request.POST, reps=reps)
    valid = form.is_valid()
    context = {"form": form, "leads": [], "next": _safe_next(request, reverse("leads:list"))}
    if "lead" in form.errors:  # nothing ticked, or not lead ids at all
        return render(request, "routing/bulk.html", context, status=400)
    leads = list(Lead.objects.for_org(organization_id).filter(pk__in=form.cleaned_data["lead"])
                 .order_by("created_at", "id"))
    if not leads:
        raise Http404()
    context["leads"] = leads
    if not valid:
        asking = request.POST.get("action") == "reassign" and "rep" not in request.POST
        if asking:
            context["form"] = BulkForm(initial={"action": "reassign", "lead": [str(lead.pk) for lead in leads]},
                                       reps=reps)
        return render(request, "routing/bulk.html", context, status=200 if asking else 400)
    found = [lead.pk for lead in leads]
    if form.cleaned_data["action"] == "route":
        routed = services.route_leads(organization_id=organization_id, lead_ids=found,
                                      reason=AssignmentReason.ROUTE_NOW, actor=request.user)
        skipped = len(found) - routed
        messages.success(request, f"Routed {routed} of {len(found)} leads."
                         + (f" {skipped} could not be routed (closed, or no rule places them)." if skipped else ""))
    else:
        rep_id = form.cleaned_data["rep"]
        for lead_id in found:
            services.reassign(organization_id=organization_id, lead_id=lead_id, rep_id=rep_id, actor=request.user)
        email = next((profile.user.email for profile in reps if profile.user_id == rep_id), "")
        messages.success(request, f"Re-assigned {len(found)} lead{'s' if len(found) != 1 else ''} to {email}.")
    return redirect(context["next"])


# --------------------------------------------------------------------------------------------- lead page card


def _duration(start, end) -> str:
    seconds = max(int((end - start).total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def speed_to_lead(lead, routing) -> list[dict]:
    """Captured -> MQL -> assigned -> first touch, each with the time since the step before it."""
    steps = [("Captured", lead.created_at)]
    if routing is not None:
        steps += [("MQL", routing.mql_at), ("Assigned", routing.first_assigned_at),
                  ("First touch", routing.first_touch_at)]
    rows, previous = [], None
    for label, at in steps:
        rows.append({"label": label, "at": at, "after": _duration(previous, at) if previous and at else ""})
        previous = at or previous
    return rows


def _card_context(request, lead) -> dict:
    organization_id = request.organization.pk
    routing = (LeadRouting.objects.for_org(organization_id).filter(lead=lead).select_related("team", "rule")
               .first())
    context = {
        "lead": lead, "routing": routing, "speed": speed_to_lead(lead, routing),
        "history": list(selectors.history(organization_id, lead)[:HISTORY_LIMIT]),
        "can_route": policy.can(request, Action.ROUTE_LEADS) and lead.lifecycle_stage in services.OPEN_STAGES,
        "can_reassign": policy.can(request, Action.REASSIGN), "now": timezone.now(),
    }
    if context["can_reassign"]:
        context["reassign_form"] = RepChoiceForm(reps=selectors.assignable_reps(organization_id),
                                                 initial={"rep": lead.owner_id})
    return context


def _card(request, lead, *, status=200, error="", notice="", form=None):
    context = {**_card_context(request, lead), "error": error, "notice": notice}
    if form is not None:
        context["reassign_form"] = form
    template = "routing/_lead_card.html" if request.htmx else "routing/lead_routing.html"
    response = render(request, template, context, status=status)
    if notice and request.htmx:
        response["HX-Trigger"] = QUEUE_EVENT
    return response


def _card_lead(request, pk, queryset=None):
    queryset = queryset if queryset is not None else _visible_leads(request)
    return get_object_or_404(queryset.select_related("owner"), pk=pk)


@allowed(Action.WORK_LEADS)
@require_GET
def lead_card(request, pk):
    """The lead page's Distribution card: owner, pool, SLA, speed to lead and the assignment history."""
    return _card(request, _card_lead(request, pk))


def _after_card_action(request, lead, notice):
    if request.htmx:
        return _card(request, _card_lead(request, lead.pk), notice=notice)
    messages.success(request, notice)
    return redirect("leads:detail", pk=lead.pk)


@allowed(Action.ROUTE_LEADS)
@require_POST
def lead_route(request, pk):
    lead = _card_lead(request, pk)
    assignment = services.route_lead(organization_id=request.organization.pk, lead_id=lead.pk,
                                     reason=AssignmentReason.ROUTE_NOW, actor=request.user)
    if assignment is None:
        error = ("Not routed: the lead is closed, or no active assignment rule places it."
                 if lead.lifecycle_stage in services.OPEN_STAGES else
                 f"Not routed: a lead in stage {lead.get_lifecycle_stage_display()} is not routed.")
        if request.htmx:
            return _card(request, lead, status=409, error=error)
        messages.error(request, error)
        return redirect("leads:detail", pk=lead.pk)
    if assignment.rep_id is None:
        where = assignment.team.name if assignment.team else "a team"
        return _after_card_action(request, lead, f"Routed: {lead} waits in the pool of {where}.")
    owner = get_user_model().objects.filter(pk=assignment.rep_id).values_list("email", flat=True).first()
    return _after_card_action(request, lead, f"Routed: {lead} goes to {owner}.")


@allowed(Action.REASSIGN)
@require_POST
def lead_reassign(request, pk):
    lead = _card_lead(request, pk)
    reps = selectors.assignable_reps(request.organization.pk)
    form = RepChoiceForm(request.POST, reps=reps)
    if not form.is_valid():
        return _card(request, lead, status=400, error=_first_error(form), form=form)
    rep_id = form.cleaned_data["rep"]
    services.reassign(organization_id=request.organization.pk, lead_id=lead.pk, rep_id=rep_id, actor=request.user)
    email = next((profile.user.email for profile in reps if profile.user_id == rep_id), "")
    return _after_card_action(request, lead, f"Re-assigned {lead} to {email}.")
