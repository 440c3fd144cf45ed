"""Reads for distribution: the rep's queue, team pools, team load, and a lead's assignment history."""

from django.contrib.auth import get_user_model
from django.db.models import Case, Count, F, IntegerField, Max, OuterRef, Prefetch, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from leadcrm.policy import Action
from leads.models import Lead, Temperature

from .models import Assignment, AssignmentRule, Notification, RepProfile, Team, TeamMember
from .services import OPEN_STAGES, ensure_profiles

# Between leads of the same score, the one the org's conversion model finds likelier comes first.
LIKELIEST = F("conversion_probability").desc(nulls_last=True)
QUEUE_LIMIT = 200  # a queue longer than this is a capacity problem, not a list to page through


def queue(organization_id, user, *, now=None):
    """The rep's open leads, most overdue first, then hottest: `overdue`, `sla_due_at` annotated."""
    leads = Lead.objects.for_org(organization_id).filter(owner=user, lifecycle_stage__in=OPEN_STAGES)
    return queue_order(leads, now=now)


def queue_order(leads, *, now=None):
    """Leads in the queue's order (ending with the id, so each has one place), with its annotations."""
    now = now or timezone.now()
    heat = Case(When(temperature=Temperature.HOT, then=Value(0)), When(temperature=Temperature.WARM, then=Value(1)),
                default=Value(2), output_field=IntegerField())
    overdue = Case(When(routing__sla_due_at__lte=now, then=Value(True)), default=Value(False))
    # Overdue leads first, the longest overdue at the top; the rest by heat and score, then the likelier to convert
    # (the org's model's probability; unscored last), the nearest deadline breaking ties (deadlines differ by
    # milliseconds, so ordering by them first would leave heat no say).
    overdue_since = Case(When(routing__sla_due_at__lte=now, then=F("routing__sla_due_at")))
    return (leads.annotate(sla_due_at=F("routing__sla_due_at"), overdue=overdue, heat=heat)
            .order_by("-overdue", overdue_since.asc(nulls_last=True), "heat", "-score", LIKELIEST,
                      F("sla_due_at").asc(nulls_last=True), "-created_at", "id"))


def pool_teams(organization_id, principal):
    """The teams whose pools a principal sees and claims from: the teams they are in, plus the teams they oversee
    (`teams_for`: the ones they manage; every team with ALL_QUEUES). A manager need not be in a team they manage."""
    teams = Team.objects.for_org(organization_id)
    if principal.user is None:
        return teams.none()
    member_of = TeamMember.objects.for_org(organization_id).filter(rep__user=principal.user).values("team_id")
    return teams.filter(Q(pk__in=member_of) | Q(pk__in=teams_for(organization_id, principal).values("pk")))


def pool(organization_id, teams=None, *, team=None):
    """Unclaimed leads waiting in the pools of the given teams (all teams when None), or of one team."""
    leads = Lead.objects.for_org(organization_id).filter(routing__pooled=True, owner__isnull=True)
    if team is not None:
        leads = leads.filter(routing__team=team)
    if teams is not None:
        leads = leads.filter(routing__team_id__in=teams.values("pk"))
    return leads.annotate(team_name=F("routing__team__name"), pooled_since=F("routing__updated_at")).order_by(
        "-score", LIKELIEST, "-created_at", "id")


def queue_counts(organization_id, user) -> dict:
    """What the badge shows: open leads in the queue and unread notifications."""
    open_leads = Lead.objects.for_org(organization_id).filter(owner=user, lifecycle_stage__in=OPEN_STAGES).count()
    unread = Notification.objects.for_org(organization_id).filter(user=user, read_at__isnull=True).count()
    return {"open": open_leads, "unread": unread}


def notifications(organization_id, user):
    """The member's notifications, for keyset pages newest first (index notification_org_user_created)."""
    return Notification.objects.for_org(organization_id).filter(user=user).select_related("lead")


def teams_for(organization_id, principal):
    """The teams a principal oversees: every team with ALL_QUEUES, those they manage with TEAM_QUEUES."""
    teams = Team.objects.for_org(organization_id).select_related("manager")
    if principal.can(Action.ALL_QUEUES):
        return teams
    if not principal.can(Action.TEAM_QUEUES) or principal.user is None:
        return teams.none()
    return teams.filter(manager=principal.user)


def team_member_ids(organization_id, user):
    """The user ids of the reps on the teams `user` manages (a subquery)."""
    return TeamMember.objects.for_org(organization_id).filter(team__manager=user).values("rep__user_id")


def queue_owner(organization_id, principal, user_id):
    """The member whose queue `principal` asks for, if they may read it, else None — the one rule of the API and
    the browser: one's own; with ALL_QUEUES any member's; with TEAM_QUEUES those of the teams one manages."""
    own = principal.user if principal.user is not None and principal.user.pk == user_id else None
    if own is not None and principal.can(Action.WORK_LEADS):
        return own
    members = get_user_model().objects.filter(pk=user_id, memberships__organization_id=organization_id)
    if principal.can(Action.ALL_QUEUES):
        return members.first()
    if principal.can(Action.TEAM_QUEUES) and principal.user is not None:
        overseen = TeamMember.objects.for_org(organization_id).filter(team__manager=principal.user)
        return members.filter(pk__in=overseen.values("rep__user_id")).first()
    return None


def team_load(organization_id, teams, *, now=None) -> list[dict]:
    """Per rep of the given teams: open leads, capacity, overdue first touches, availability — two queries."""
    now = now or timezone.now()
    members = list(TeamMember.objects.for_org(organization_id).filter(team__in=teams)
                   .select_related("rep__user", "team").order_by("team__name", "rep__user__email"))
    user_ids = {member.rep.user_id for member in members}
    counts = {row["owner_id"]: row for row in (
        Lead.objects.for_org(organization_id).filter(owner_id__in=user_ids, lifecycle_stage__in=OPEN_STAGES)
        .values("owner_id").annotate(open=Count("id"), overdue=Count("id", filter=Q(routing__sla_due_at__lte=now)))
        .order_by())}
    rows = []
    for member in members:
        rep, count = member.rep, counts.get(member.rep.user_id, {})
        rows.append({
            "team": member.team, "rep": rep, "user": rep.user, "open": count.get("open", 0),
            "overdue": count.get("overdue", 0), "capacity": rep.capacity,
            "away": rep.away_until is not None and rep.away_until > now,
        })
    return rows


def rep_profiles(organization_id):
    ensure_profiles(organization_id)
    return RepProfile.objects.for_org(organization_id).select_related("user").order_by("user__email")


def assignable_reps(organization_id):
    """Profiles of current members, for re-assignment choices."""
    return rep_profiles(organization_id).filter(user__memberships__organization_id=organization_id)


def history(organization_id, lead):
    return (Assignment.objects.for_org(organization_id).filter(lead=lead)
            .select_related("rep", "previous_rep", "team", "actor").order_by("-created_at"))


def rules(organization_id):
    """The org's assignment rules in the order routing tries them (routing.services.assign.rules_in_order)."""
    return (AssignmentRule.objects.for_org(organization_id).select_related("rep__user", "team", "segment")
            .order_by("is_fallback", "order", "created_at", "pk"))


def next_rule_order(organization_id) -> int:
    """An `order` that puts a new rule after every rule there is (the fallback aside, which is always last)."""
    last = (AssignmentRule.objects.for_org(organization_id).filter(is_fallback=False)
            .aggregate(last=Max("order"))["last"])
    return 10 if last is None else last + 10


def reps_with_load(organization):
    """Routing profiles of the org's current members, with their role, teams and open leads (no per-row query):
    the reps list of the API and of the settings page."""
    open_leads = (Lead.objects.for_org(organization)
                  .filter(owner_id=OuterRef("user_id"), lifecycle_stage__in=OPEN_STAGES)
                  .order_by().values("owner_id").annotate(n=Count("pk")).values("n"))
    return (rep_profiles(organization.pk).filter(user__memberships__organization=organization)
            .annotate(role=F("user__memberships__role"),
                      open_leads=Coalesce(Subquery(open_leads, output_field=IntegerField()), Value(0)))
            .prefetch_related(Prefetch("teams", queryset=Team.objects.order_by("name"))))


def teams_with_members(organization_id):
    """The org's teams with their manager, members (and their users) and how many rules send leads to each."""
    members = RepProfile.objects.select_related("user").order_by("user__email")
    return (Team.objects.for_org(organization_id).select_related("manager")
            .annotate(rule_count=Count("rules", distinct=True))
            .prefetch_related(Prefetch("members", queryset=members)))
