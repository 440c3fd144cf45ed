"""Reads of tasks: who may see which, a member's time zone, the today view and the team page's overdue counts."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth import get_user_model
from django.db.models import Count, F, Q
from django.utils import timezone

from leadcrm import policy
from leadcrm.policy import Action, Principal
from leads.models import Account, Deal, Lead, Temperature
from leads.selectors import rotting_deals
from routing.models import RepProfile, TeamMember
from routing.selectors import teams_for
from routing.services import OPEN_STAGES

from .models import Task

HOT_WITHIN = timedelta(days=3)  # a hot lead touched (by anyone, or by itself) this recently is worth a look today
TODAY_LIMIT = 100  # of each kind: a longer day is a planning problem, not a list to scroll


def visible(organization_id, principal: Principal):
    """The tasks a principal may see and change: every task of the org with ALL_TASKS; else their own, those on
    the leads, deals and accounts they own, and (with TEAM_QUEUES) those of the reps of the teams they manage."""
    tasks = Task.objects.for_org(organization_id)
    if principal.can(Action.ALL_TASKS):
        return tasks
    if principal.user is None or not principal.can(Action.TASKS):
        return tasks.none()
    user = principal.user
    mine = Q(owner=user) | Q(lead__owner=user) | Q(deal__owner=user) | Q(account__owner=user)
    if principal.can(Action.TEAM_QUEUES):
        reps = TeamMember.objects.for_org(organization_id).filter(team__in=teams_for(organization_id, principal))
        mine |= Q(owner_id__in=reps.values("rep__user_id"))
    return tasks.filter(mine)


def assignable_owners(organization_id, principal: Principal):
    """The members a principal may give a task to: anyone of the org with ALL_TASKS, oneself and the reps of the
    teams one manages with TEAM_QUEUES, else only oneself."""
    members = get_user_model().objects.filter(memberships__organization_id=organization_id)
    if principal.can(Action.ALL_TASKS):
        return members
    if principal.user is None:
        return members.none()
    if principal.can(Action.TEAM_QUEUES):
        reps = TeamMember.objects.for_org(organization_id).filter(team__in=teams_for(organization_id, principal))
        return members.filter(Q(pk=principal.user.pk) | Q(pk__in=reps.values("rep__user_id")))
    return members.filter(pk=principal.user.pk)


def zone_of(organization_id, user_id):
    """The member's time zone (their working hours' zone, set under Settings → Routing), else the viewer's."""
    hours = (
        RepProfile.objects.for_org(organization_id)
        .filter(user_id=user_id)
        .values_list("working_hours", flat=True)
        .first()
    ) or {}
    try:
        return ZoneInfo(hours["timezone"]) if hours.get("timezone") else timezone.get_current_timezone()
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.get_current_timezone()


def zones(organization_id, user_ids) -> dict:
    """{user id: time zone} for several members in one query (the viewer's zone for those with none set)."""
    found = dict(
        RepProfile.objects.for_org(organization_id)
        .filter(user_id__in=list(user_ids))
        .values_list("user_id", "working_hours")
    )
    result = {}
    for user_id in user_ids:
        name = (found.get(user_id) or {}).get("timezone")
        try:
            result[user_id] = ZoneInfo(name) if name else timezone.get_current_timezone()
        except (ZoneInfoNotFoundError, ValueError):
            result[user_id] = timezone.get_current_timezone()
    return result


def end_of_day(moment, zone):
    local = moment.astimezone(zone)
    return datetime.combine(local.date() + timedelta(days=1), time(0, 0), tzinfo=zone)


def with_status(tasks, *, status: str, now=None):
    now = now or timezone.now()
    if status == "open":
        return tasks.filter(done_at__isnull=True)
    if status == "done":
        return tasks.filter(done_at__isnull=False)
    if status == "overdue":
        return tasks.filter(done_at__isnull=True, due_at__lt=now)
    return tasks


def for_target(organization_id, principal, *, lead=None, deal=None):
    """Open tasks first (soonest due first), then the latest done, of one lead or deal."""
    tasks = visible(organization_id, principal)
    tasks = tasks.filter(lead=lead) if lead is not None else tasks.filter(deal=deal)
    tasks = list(
        tasks.select_related("owner", "lead", "deal", "account").order_by(
            F("done_at").desc(nulls_first=True), "due_at", "id"
        )[:50]
    )
    owner_zones = zones(organization_id, {task.owner_id for task in tasks})
    for task in tasks:
        task.owner_zone = owner_zones[task.owner_id]
    return tasks


@dataclass
class TodayItem:
    """One line of the today view: a task, a newly assigned lead waiting for its first touch, or a hot lead."""

    kind: str  # "task" | "assignment" | "deal" | "hot"
    rank: int
    at: datetime | None
    task: Task | None = None
    lead: Lead | None = None
    deal: Deal | None = None
    overdue: bool = False


def today(organization_id, user, *, now=None, zone=None) -> list[TodayItem]:
    """A rep's day in one prioritised list, in four queries: overdue tasks (longest overdue first), new leads whose
    first-touch clock runs (least time left first), deals rotting in their stage (longest rotten first), tasks due
    later today (soonest first), then hot leads with recent activity that have no open task today (hottest
    first)."""
    now = now or timezone.now()
    zone = zone or zone_of(organization_id, user.pk)
    tasks = list(
        Task.objects.for_org(organization_id)
        .filter(owner=user, done_at__isnull=True, due_at__lt=end_of_day(now, zone))
        .select_related("lead", "deal", "account")
        .order_by("due_at", "id")[:TODAY_LIMIT]
    )
    owned = Lead.objects.for_org(organization_id).filter(owner=user, lifecycle_stage__in=OPEN_STAGES)
    waiting = list(
        owned.filter(routing__sla_due_at__isnull=False, routing__first_touch_at__isnull=True)
        .select_related("routing")
        .order_by("routing__sla_due_at", "id")[:TODAY_LIMIT]
    )
    busy = {task.lead_id for task in tasks if task.lead_id} | {lead.pk for lead in waiting}
    hot = [
        lead
        for lead in owned.filter(temperature=Temperature.HOT, last_activity_at__gte=now - HOT_WITHIN).order_by(
            "-score", "-last_activity_at", "id"
        )[: TODAY_LIMIT + len(busy)]
        if lead.pk not in busy
    ]
    items = []
    for task in tasks:
        overdue = task.due_at < now
        items.append(TodayItem("task", 0 if overdue else 2, task.due_at, task=task, overdue=overdue))
    for lead in waiting:
        due = lead.routing.sla_due_at
        items.append(TodayItem("assignment", 1, due, lead=lead, overdue=due < now))
    rotting = rotting_deals(organization=organization_id, owner_ids=[user.pk], now=now).get(user.pk, [])
    items += [TodayItem("deal", 2, deal.rots_at, deal=deal, overdue=True) for deal in rotting[:TODAY_LIMIT]]
    items += [TodayItem("hot", 3, lead.last_activity_at, lead=lead) for lead in hot[:TODAY_LIMIT]]
    return sorted(items, key=lambda item: (item.rank, item.at or now))


def overdue_counts(organization_id, user_ids, *, now=None) -> dict:
    """Open tasks past due, per owner among `user_ids` (one aggregate on the owner index)."""
    now = now or timezone.now()
    rows = (
        Task.objects.for_org(organization_id)
        .filter(owner_id__in=list(user_ids), done_at__isnull=True, due_at__lt=now)
        .values("owner_id")
        .annotate(count=Count("id"))
        .order_by()
    )
    return {row["owner_id"]: row["count"] for row in rows}


def targets(organization_id, principal: Principal, kind: str):
    """The leads, deals or accounts a principal may plan tasks on: the org's with ALL_LEADS, else their own (a deal
    or account also when it is on a lead of theirs) — as the lead, deal and account pages decide."""
    if kind == "lead":
        return policy.visible(principal, Lead.objects.for_org(organization_id))
    rows = (Deal if kind == "deal" else Account).objects.for_org(organization_id)
    if principal.can(Action.ALL_LEADS):
        return rows
    if principal.user is None:
        return rows.none()
    user = principal.user
    if kind == "deal":
        return rows.filter(Q(owner=user) | Q(lead__owner=user))
    return rows.filter(Q(owner=user) | Q(leads__owner=user) | Q(deals__owner=user)).distinct()


def localize(organization_id, value, user_id):
    """A due time as entered: a naive one is read in the time zone of the member it is for."""
    if value is None or not timezone.is_naive(value):
        return value
    return timezone.make_aware(value, zone_of(organization_id, user_id))
