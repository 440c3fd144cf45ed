"""Browser pages of tasks: plan one (from the lead page, a queue row, a deal), plan one per lead of a selection,
complete one (and schedule the next), snooze or move one, and the rep's today view. Thin: reads in selectors,
changes in services, roles from leadcrm.policy."""

import uuid
from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from leadcrm import policy
from leadcrm.errors import Invalid, add_to_form
from leadcrm.policy import Action, allowed
from leads import touches

from . import selectors, services
from .forms import CompleteForm, SnoozeForm, TaskForm, outcome_groups
from .models import TaskType

KINDS = ("lead", "deal", "account")


def _safe_next(request, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


def _uuid(value):
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def _home_of(kind, target) -> str:
    if kind == "lead":
        return reverse("leads:detail", args=[target.pk])
    if kind == "account":
        return reverse("leads:account-detail", args=[target.pk])
    return reverse("leads:deal-list")


def _target(request):
    """The lead, deal or account named by the request (?lead= …), if the member may plan tasks on it; else 404."""
    principal = policy.principal_of(request)
    for kind in KINDS:
        value = request.POST.get(kind) or request.GET.get(kind)
        if value:
            pk = _uuid(value)
            target = pk and selectors.targets(request.organization.pk, principal, kind).filter(pk=pk).first()
            if not target:
                raise Http404()
            return kind, target
    raise Http404()


def _task(request, pk):
    return get_object_or_404(
        selectors.visible(request.organization.pk, policy.principal_of(request)).select_related(
            "lead", "deal__lead", "account", "owner"
        ),
        pk=pk,
    )


def _owners(request, default_id):
    """Whom the member may give the task to; the target's owner is always one, as in the API."""
    assignable = selectors.assignable_owners(request.organization.pk, policy.principal_of(request))
    return list(get_user_model().objects.filter(Q(pk__in=assignable.values("pk")) | Q(pk=default_id)).order_by("email"))


def _tomorrow_same_time(moment, zone):
    local = (moment + timedelta(days=1)).astimezone(zone)
    return local.replace(minute=0, second=0, microsecond=0, tzinfo=None)


@allowed(Action.TASKS)
@require_http_methods(["GET", "POST"])
def task_new(request):
    """Plan a task on a lead, a deal or an account. After a completed one (?after=), this is "schedule the next
    one", with the same kind of task a day later already filled in."""
    organization_id = request.organization.pk
    kind, target = _target(request)
    default_owner = services.default_owner(**{kind: target}, actor=request.user)
    owners = _owners(request, default_owner)
    chosen = request.POST.get("owner") or default_owner
    zone = selectors.zone_of(organization_id, int(chosen) if str(chosen).isdigit() else default_owner)
    after = None
    if request.GET.get("after"):
        after = (
            selectors.visible(organization_id, policy.principal_of(request))
            .filter(pk=_uuid(request.GET["after"]), done_at__isnull=False)
            .first()
        )
    next_url = _safe_next(request, _home_of(kind, target))
    initial = {
        "owner": default_owner,
        "type": request.GET.get("type") if request.GET.get("type") in TaskType.values else TaskType.CALL,
        "due_at": _tomorrow_same_time(after.due_at if after else timezone.now(), zone),
    }
    form = TaskForm(request.POST or None, initial=initial, owners=owners, zone_name=str(zone))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            owner_id = data["owner"] or default_owner
            try:
                if owner_id not in {user.pk for user in owners}:
                    raise Invalid(errors={"owner": ["Choose a member you may give tasks to."]})
                task = services.create_task(
                    organization_id=organization_id,
                    type=data["type"],
                    note=data["note"],
                    owner_id=owner_id,
                    due_at=selectors.localize(organization_id, data["due_at"], owner_id),
                    actor=request.user,
                    **{kind: target},
                )
            except Invalid as exc:
                add_to_form(form, exc)
            else:
                local = task.due_at.astimezone(selectors.zone_of(organization_id, task.owner_id))
                messages.success(
                    request,
                    f"{task.get_type_display()} planned for {target}, due "
                    f"{local:%a %d %b %H:%M}" + (" (overdue)" if task.due_at < timezone.now() else "") + ".",
                )
                return redirect(next_url)
        status = 400
    return render(
        request,
        "agenda/task_form.html",
        {
            "form": form,
            "kind": kind,
            "target": target,
            "next": next_url,
            "after": after,
            "zone": zone,
            "after_outcome": touches.outcome_label(services.TOUCH_OF.get(after.type, ""), after.outcome)
            if after
            else "",
        },
        status=status,
    )


@allowed(Action.TASKS)
@require_http_methods(["GET", "POST"])
def task_done(request, pk):
    """Complete a task with how it went; then offer to schedule the next one."""
    task = _task(request, pk)
    form = CompleteForm(request.POST or None)
    next_url = _safe_next(request, reverse("agenda:today"))
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            services.complete_task(
                task=task, outcome=form.cleaned_data["outcome"], note=form.cleaned_data["note"], actor=request.user
            )
        except Invalid as exc:
            add_to_form(form, exc)
            status = 400
        else:
            # The next page says it is done (and what was logged), and offers to schedule the next one.
            kind, target = next((k, getattr(task, k)) for k in KINDS if getattr(task, f"{k}_id"))
            return redirect(
                f"{reverse('agenda:new')}?{kind}={target.pk}&type={task.type}&after={task.pk}&next={next_url}"
            )
    elif request.method == "POST":
        status = 400
    return render(
        request,
        "agenda/task_done.html",
        {"task": task, "form": form, "next": next_url, "outcomes": outcome_groups(), "zone": _zone(request, task)},
        status=status,
    )


def _zone(request, task):
    return selectors.zone_of(request.organization.pk, task.owner_id)


@allowed(Action.TASKS)
@require_POST
def task_snooze(request, pk):
    """Snooze an open task (an hour, three, a day, a week from now) or move it to a chosen time."""
    task = _task(request, pk)
    form = SnoozeForm(request.POST)
    next_url = _safe_next(request, reverse("agenda:today"))
    if form.is_valid():
        data = form.cleaned_data
        until = (
            timezone.now() + services.SNOOZES[data["snooze"]]
            if data["snooze"]
            else selectors.localize(request.organization.pk, data["due_at"], task.owner_id)
        )
        try:
            services.snooze(task=task, until=until)
        except Invalid as exc:
            messages.error(request, exc.message)
        else:
            local = task.due_at.astimezone(_zone(request, task))
            messages.success(request, f"{task} moved to {local:%a %d %b %H:%M}.")
            return redirect(next_url)
    else:
        messages.error(request, " ".join(str(m) for problems in form.errors.values() for m in problems))
    return render(
        request,
        "agenda/task_done.html",
        {
            "task": task,
            "form": CompleteForm(),
            "next": next_url,
            "outcomes": outcome_groups(),
            "zone": _zone(request, task),
            "snooze_form": form,
        },
        status=400,
    )


@allowed(Action.TASKS)
@require_POST
def task_delete(request, pk):
    task = _task(request, pk)
    services.delete_task(task=task)
    messages.success(request, f"Deleted: {task}.")
    return redirect(_safe_next(request, reverse("agenda:today")))


@allowed(Action.TASKS)
@require_GET
def lead_card(request, pk):
    """The lead page's Tasks card: the lead's open tasks (and the latest done) with Done and Snooze, and a link to
    plan one."""
    from leads.models import Lead

    lead = get_object_or_404(policy.visible_to(request, Lead.objects.for_org(request.organization)), pk=pk)
    tasks = selectors.for_target(request.organization.pk, policy.principal_of(request), lead=lead)
    template = "agenda/_lead_card.html" if request.htmx else "agenda/lead_tasks.html"
    return render(
        request,
        template,
        {
            "lead": lead,
            "tasks": tasks,
            "now": timezone.now(),
            "next": reverse("leads:detail", args=[lead.pk]),
            "outcomes": outcome_groups(),
        },
    )


@allowed(Action.TASKS)
@require_POST
def bulk(request):
    """A task for each ticked lead of the leads list: the first post (from the list) asks what and when; the second
    plans them, each for its lead's owner unless one is chosen."""
    organization_id = request.organization.pk
    principal = policy.principal_of(request)
    ids = [pk for pk in map(_uuid, request.POST.getlist("lead")) if pk]
    leads = list(selectors.targets(organization_id, principal, "lead").filter(pk__in=ids).order_by("created_at", "id"))
    next_url = _safe_next(request, reverse("leads:list"))
    if not ids:
        messages.error(request, "Tick the leads to plan a task for.")
        return redirect(next_url)
    if not leads:
        raise Http404()
    owners = list(selectors.assignable_owners(organization_id, principal).order_by("email"))
    zone = selectors.zone_of(organization_id, request.user.pk)
    asking = "due_at" not in request.POST
    form = TaskForm(
        None if asking else request.POST,
        owners=owners,
        zone_name=str(zone),
        initial={"due_at": _tomorrow_same_time(timezone.now(), zone)},
    )
    choices = [("", "Each lead's owner"), *((user.pk, user.email) for user in owners)]
    form.fields["owner"].choices = choices
    form.fields["owner"].widget = forms.Select(choices=choices)
    if not asking and form.is_valid():
        data = form.cleaned_data
        owner_id = data["owner"] or None
        try:
            if owner_id is not None and owner_id not in {user.pk for user in owners}:
                raise Invalid(errors={"owner": ["Choose a member you may give tasks to."]})
            tasks = services.create_for_leads(
                organization_id=organization_id,
                leads=leads,
                type=data["type"],
                note=data["note"],
                owner_id=owner_id,
                due_at=selectors.localize(organization_id, data["due_at"], owner_id or request.user.pk),
                actor=request.user,
            )
        except Invalid as exc:
            add_to_form(form, exc)
        else:
            messages.success(request, f"Planned {len(tasks)} task{'s' if len(tasks) != 1 else ''}.")
            return redirect(next_url)
    return render(
        request,
        "agenda/bulk.html",
        {"form": form, "leads": leads, "next": next_url, "zone": zone},
        status=200 if asking else 400,
    )


@allowed(Action.TASKS)
@require_GET
def today(request):
    """The signed-in member's day: overdue and due-today tasks, new leads with their first-touch time left, hot leads
    with recent activity, in one prioritised list with quick actions."""
    organization_id = request.organization.pk
    zone = selectors.zone_of(organization_id, request.user.pk)
    now = timezone.now()
    items = selectors.today(organization_id, request.user, now=now, zone=zone)
    return render(
        request,
        "agenda/today.html",
        {
            "items": items,
            "now": now,
            "zone": zone,
            "outcomes": outcome_groups(),
            "counts": {
                "overdue": sum(item.kind == "task" and item.overdue for item in items),
                "tasks": sum(item.kind == "task" for item in items),
                "new": sum(item.kind == "assignment" for item in items),
                "hot": sum(item.kind == "hot" for item in items),
                "rotting": sum(item.kind == "deal" for item in items),
            },
        },
    )
