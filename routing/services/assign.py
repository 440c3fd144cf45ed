"""Routing a lead: the first matching rule picks a rep by its strategy, or the lead waits in a team's pool.

Locks are always taken in the order lead -> team -> rep profile, so concurrent routers, claims and SLA
checks queue behind each other instead of deadlocking. The team row lock is what keeps round robin fair
under concurrency: turns are taken one at a time, each stamped with the team's next tick.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from leadcrm import audit, events
from leadcrm.errors import Conflict
from leadcrm.models import Membership, Role
from leads import services as lead_services
from leads import touches
from leads.conditions import as_boolean
from leads.models import Lead, LifecycleStage
from leads.segments import definition_q

from ..hours import add_working_minutes, is_working
from ..models import (
    Assignment,
    AssignmentReason,
    AssignmentRule,
    LeadRouting,
    NotificationKind,
    RepProfile,
    Strategy,
    Team,
    TeamMember,
)
from .notify import notify

_S = LifecycleStage
# Leads a rep is still working: what counts against capacity and fills the queue.
OPEN_STAGES = (_S.SUBSCRIBER, _S.LEAD, _S.MQL, _S.SAL, _S.SQL)
# Logging one of these (or accepting the lead) is the first touch that stops the SLA clock.
TOUCH_TYPES = touches.TOUCH_TYPES
TOUCHED_STAGES = (_S.SAL, _S.SQL, _S.OPPORTUNITY, _S.CUSTOMER, _S.DISQUALIFIED, _S.RECYCLED)
REP_ROLES = (Role.REP, Role.MANAGER)  # the members who get a routing profile and may be given leads


class ClaimRefused(Conflict):
    """The lead is not (or no longer) in a pool this rep may claim from; the message says why."""

    default_code = "claim_refused"


@dataclass
class Pick:
    """What a rule decided for one lead: a rep (a user id), or the pool of `team`."""

    rule: AssignmentRule
    reason: str
    rep_id: int | None = None
    team: Team | None = None
    hours: dict = field(default_factory=dict)


def open_lead_counts(organization_id, user_ids) -> dict[int, int]:
    rows = (Lead.objects.for_org(organization_id).filter(owner_id__in=user_ids, lifecycle_stage__in=OPEN_STAGES)
            .values("owner_id").annotate(n=Count("id")).order_by())
    return {row["owner_id"]: row["n"] for row in rows}


def _lead_language(lead) -> str:
    language = (lead.custom_fields or {}).get("language", "")
    return language.strip().lower()[:2] if isinstance(language, str) else ""


def profile_fits(profile: RepProfile, lead: Lead) -> bool:
    """Whether the rep's territories, industries and languages admit the lead. A blank on the lead restricts
    nothing: a lead of unknown country may go to anyone rather than wait for nobody."""
    if profile.territories and lead.country:
        country, region = lead.country.upper(), lead.region.strip().upper()
        if not any(t.upper() == country or (region and t.upper() == f"{country}-{region}")
                   for t in profile.territories):
            return False
    if profile.industries and lead.industry:
        if lead.industry.casefold() not in {industry.casefold() for industry in profile.industries}:
            return False
    language = _lead_language(lead)
    if profile.languages and language and language not in {code.lower()[:2] for code in profile.languages}:
        return False
    return True


def can_take(profile: RepProfile, *, lead, rule, now, load: dict, exclude=()) -> bool:
    if profile.user_id in exclude or not profile.available:
        return False
    if profile.away_until is not None and profile.away_until > now:
        return False
    if profile.capacity is not None and load.get(profile.user_id, 0) >= profile.capacity:
        return False
    if rule.respect_working_hours and not is_working(profile.working_hours, now):
        return False
    return not rule.match_profile or profile_fits(profile, lead)


def _members(team: Team):
    """The team's reps who are still members of the org, in round-robin order (longest waiting first)."""
    current = Membership.objects.filter(organization_id=team.organization_id).values("user_id")
    return list(TeamMember.objects.filter(team=team, rep__user_id__in=current).select_related("rep__user")
                .order_by("last_turn", "id"))


def _load_ratio(rep: RepProfile, load: dict) -> float:
    """How full a rep is. Without a capacity, open leads are weighed against the default capacity."""
    return load.get(rep.user_id, 0) / (rep.capacity or RepProfile._meta.get_field("capacity").default)


def _choose(strategy: str, eligible: list[TeamMember], load: dict) -> TeamMember:
    if strategy == Strategy.LEAST_LOADED:
        return min(eligible, key=lambda m: (_load_ratio(m.rep, load), m.last_turn, m.pk))
    if strategy == Strategy.WEIGHTED:
        total = sum(m.rep.weight for m in eligible)
        for member in eligible:
            member.weighted_credit += member.rep.weight
        chosen = max(eligible, key=lambda m: (m.weighted_credit, -m.last_turn, -m.pk))
        chosen.weighted_credit -= total
        TeamMember.objects.bulk_update(eligible, ["weighted_credit"])
        return chosen
    return eligible[0]  # round robin: the one whose last turn is oldest


def _pick_in_team(rule, team_id, *, lead, now, exclude, reason) -> Pick:
    team = Team.objects.select_for_update().get(pk=team_id)
    if rule.strategy == Strategy.POOL:
        return Pick(rule=rule, reason=reason, team=team)
    members = _members(team)
    # Counting open leads is only needed when someone has a limit or load decides.
    counted = [m.rep.user_id for m in members
               if m.rep.capacity is not None or rule.strategy == Strategy.LEAST_LOADED]
    load = open_lead_counts(team.organization_id, counted) if counted else {}
    eligible = [m for m in members if can_take(m.rep, lead=lead, rule=rule, now=now, load=load, exclude=exclude)]
    if rule.strategy == Strategy.WEIGHTED:
        eligible = [m for m in eligible if m.rep.weight > 0]
    if not eligible:
        return Pick(rule=rule, reason=reason, team=team)
    chosen = _choose(rule.strategy, eligible, load)
    team.turns_taken += 1
    team.save(update_fields=["turns_taken"])
    chosen.last_turn = team.turns_taken
    chosen.save(update_fields=["last_turn"])
    return Pick(rule=rule, reason=reason, rep_id=chosen.rep.user_id, team=team, hours=chosen.rep.working_hours)


def _pick_named(rule, *, lead, now, exclude, reason) -> Pick | None:
    profile = RepProfile.objects.select_for_update().get(pk=rule.rep_id)
    is_member = Membership.objects.filter(organization_id=rule.organization_id, user_id=profile.user_id).exists()
    load = open_lead_counts(rule.organization_id, [profile.user_id]) if profile.capacity is not None else {}
    if is_member and can_take(profile, lead=lead, rule=rule, now=now, load=load, exclude=exclude):
        return Pick(rule=rule, reason=reason, rep_id=profile.user_id, hours=profile.working_hours)
    return None


def pick(rule: AssignmentRule, *, lead, now, exclude=(), reason=AssignmentReason.RULE) -> Pick | None:
    """The rule's choice for the lead; None only when a named rep cannot take it (the caller falls back)."""
    if rule.strategy == Strategy.REP:
        return _pick_named(rule, lead=lead, now=now, exclude=exclude, reason=reason)
    return _pick_in_team(rule, rule.team_id, lead=lead, now=now, exclude=exclude, reason=reason)


def rules_in_order(organization_id):
    return list(AssignmentRule.objects.for_org(organization_id).filter(active=True).select_related("segment")
                .order_by("is_fallback", "order", "created_at"))


def _rule_q(rule):
    if rule.segment_id is not None:
        return lead_services.segment_q(rule.segment)
    return definition_q(rule.organization_id, rule.condition) if rule.condition else None


def matching_rules(lead, rules) -> list[AssignmentRule]:
    """The rules whose conditions the lead meets, in order, tested in one query; the fallback always meets."""
    tests = {f"rule_{index}": _rule_q(rule) for index, rule in enumerate(rules)}
    conditional = {name: as_boolean(q) for name, q in tests.items() if q is not None}
    flags = Lead.objects.filter(pk=lead.pk).values(**conditional).first() if conditional else {}
    return [rule for index, rule in enumerate(rules)
            if tests[f"rule_{index}"] is None or (flags or {}).get(f"rule_{index}")]


def _mql_at(lead) -> datetime | None:
    value = (lead.stage_entered_at or {}).get(_S.MQL)
    return parse_datetime(value) if isinstance(value, str) else None


def _details(pick: Pick | None, reason: str, owner_id, previous_id) -> dict:
    emails = dict(get_user_model().objects.filter(pk__in=[i for i in (owner_id, previous_id) if i])
                  .values_list("pk", "email"))
    details = {"reason": AssignmentReason(reason).label, "owner": emails.get(owner_id, "") or "(pool)"}
    if previous_id:
        details["previous owner"] = emails.get(previous_id, "")
    if pick is not None:
        details["rule"] = pick.rule.name
        details["strategy"] = pick.rule.get_strategy_display()
        if pick.team is not None:
            details["team"] = pick.team.name
    return details


def record(lead, *, rep_id, reason, pick: Pick | None = None, actor=None, now=None, restart_sla=True,
           counts_as_reassignment=False, notification_kind=NotificationKind.ASSIGNED) -> Assignment:
    """Give the lead to `rep_id` (None: to the pick's team pool) and record it everywhere it shows: the owner
    and timeline, the assignment history, the routing state with its SLA clock, and the notifications."""
    now = now or timezone.now()
    previous_id = lead.owner_id
    team = pick.team if pick else None
    rule = pick.rule if pick else None
    lead_services.assign_owner(lead=lead, owner_id=rep_id, details=_details(pick, reason, rep_id, previous_id),
                               actor=actor)
    # The lead's row lock (held by every caller) guards its routing row too.
    routing = LeadRouting.objects.filter(lead=lead).first() or LeadRouting(
        organization_id=lead.organization_id, lead=lead)
    routing.rule, routing.team = rule or routing.rule, team or routing.team
    routing.mql_at = routing.mql_at or _mql_at(lead)
    routing.pooled = rep_id is None
    sla_rule = rule or routing.rule
    routing.sla_due_at = None
    if rep_id is not None:
        routing.assigned_at = now
        routing.first_assigned_at = routing.first_assigned_at or now
        if restart_sla and sla_rule is not None and sla_rule.sla_minutes and routing.first_touch_at is None:
            hours = pick.hours if pick else RepProfile.objects.for_org(lead.organization_id).filter(
                user_id=rep_id).values_list("working_hours", flat=True).first() or {}
            routing.sla_due_at = add_working_minutes(hours, now, sla_rule.sla_minutes)
    if routing.pk is None:  # its first assignment: every assignment of a lead is recorded here
        routing.first_sla_due_at = routing.sla_due_at
    if counts_as_reassignment:
        routing.reassignments += 1
    routing.save()
    assignment = Assignment.objects.create(
        organization_id=lead.organization_id, lead=lead, rep_id=rep_id, previous_rep_id=previous_id,
        team=team, rule=rule, rule_name=rule.name if rule else "", strategy=rule.strategy if rule else "",
        reason=reason, sla_due_at=routing.sla_due_at, **audit.actor_fields(actor),
    )
    if rep_id is not None:
        notify(lead, user_id=rep_id, kind=notification_kind)
    elif team is not None and team.manager_id:
        notify(lead, user_id=team.manager_id, kind=NotificationKind.POOLED, team=team)
    events.emit(events.LEAD_ASSIGNED, organization_id=lead.organization_id, lead_id=lead.pk, owner_id=rep_id,
                assignment_id=assignment.pk, reason=reason)
    return assignment


def previous_reps(lead) -> set[int]:
    return set(Assignment.objects.for_org(lead.organization_id).filter(lead=lead, rep__isnull=False)
               .values_list("rep_id", flat=True))


def apply_rules(lead, *, reason, actor=None, now, exclude=(), only=None, counts_as_reassignment=False, rules=None):
    """Route a locked lead by the org's rules (or only by `only`): the first rule that places it wins."""
    ordered = rules if rules is not None else rules_in_order(lead.organization_id)
    rules = [only] if only is not None else matching_rules(lead, ordered)
    fallback = next((rule for rule in ordered if rule.is_fallback), None)
    for rule in rules:
        why = AssignmentReason.FALLBACK if rule.is_fallback and reason == AssignmentReason.RULE else reason
        choice = pick(rule, lead=lead, now=now, exclude=exclude, reason=why)
        if choice is None and only is not None and fallback is not None and fallback.pk != rule.pk:
            choice = pick(fallback, lead=lead, now=now, exclude=exclude, reason=why)
        if choice is not None:
            return record(lead, rep_id=choice.rep_id, reason=choice.reason, pick=choice, actor=actor, now=now,
                          counts_as_reassignment=counts_as_reassignment)
    return None


def _locked_lead(organization_id, lead_id):
    return Lead.objects.for_org(organization_id).select_for_update(of=("self",)).filter(pk=lead_id).first()


def route_lead(*, organization_id, lead_id, reason=AssignmentReason.RULE, actor=None, only_unowned=False,
               now=None, rules=None) -> Assignment | None:
    """Route one lead now. With `only_unowned` (the automatic path) a lead that already has an owner or waits
    in a pool is left alone, so a repeated or concurrent routing task changes nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        lead = _locked_lead(organization_id, lead_id)
        if lead is None or lead.lifecycle_stage not in OPEN_STAGES:
            return None
        if only_unowned and (lead.owner_id is not None
                             or LeadRouting.objects.filter(lead=lead, pooled=True).exists()):
            return None
        return apply_rules(lead, reason=reason, actor=actor, now=now, rules=rules)


def route_leads(*, organization_id, lead_ids, reason=AssignmentReason.RULE, actor=None, only_unowned=False) -> int:
    """Route each lead in its own transaction (a lead's failure or lock wait never holds up the others)."""
    routed = 0
    rules = rules_in_order(organization_id)
    for lead_id in lead_ids:
        if route_lead(organization_id=organization_id, lead_id=lead_id, reason=reason, actor=actor,
                      only_unowned=only_unowned, rules=rules):
            routed += 1
    return routed


def reassign(*, organization_id, lead_id, rep_id, actor=None, now=None) -> Assignment:
    """A manager hands the lead to a rep (or back to nobody, rep_id None) by hand."""
    with transaction.atomic():
        lead = _locked_lead(organization_id, lead_id)
        if lead is None:
            raise Lead.DoesNotExist()
        return record(lead, rep_id=rep_id, reason=AssignmentReason.MANUAL, actor=actor, now=now)


def claim(*, organization_id, lead_id, user, teams=None, now=None) -> Assignment:
    """A rep takes a lead from the pool of one of their teams. Of two reps claiming at once, the second
    waits on the lead's row lock, then finds it taken. `teams` are the teams whose pools the claimer may take
    from (`selectors.pool_teams`); by default those they are in or manage."""
    with transaction.atomic():
        lead = _locked_lead(organization_id, lead_id)
        routing = LeadRouting.objects.filter(lead_id=lead_id).select_related("team", "rule").first()
        if lead is None or routing is None or routing.team is None:
            raise ClaimRefused("This lead is not in a pool.")
        if teams is None:
            teams = Team.objects.for_org(organization_id).filter(Q(members__user=user) | Q(manager=user))
        if not teams.filter(pk=routing.team_id).exists():
            raise ClaimRefused("This lead is in the pool of a team you are not in and do not manage.")
        if not routing.pooled or lead.owner_id is not None:
            owner = get_user_model().objects.filter(pk=lead.owner_id).values_list("email", flat=True).first()
            if owner:
                raise ClaimRefused(f"Already claimed by {owner}.", code="already_claimed")
            raise ClaimRefused("This lead is no longer in the pool.")
        choice = Pick(rule=routing.rule, reason=AssignmentReason.CLAIM, rep_id=user.pk, team=routing.team,
                      hours=RepProfile.objects.for_org(organization_id).filter(user=user)
                      .values_list("working_hours", flat=True).first() or {}) if routing.rule else None
        return record(lead, rep_id=user.pk, reason=AssignmentReason.CLAIM, pick=choice, actor=user, now=now)


def record_manual_owner_change(*, organization_id, lead_id, actor_id=None, api_key="") -> None:
    """An owner set by editing the lead (API PATCH, admin): keep the history and routing state in step."""
    with transaction.atomic():
        lead = _locked_lead(organization_id, lead_id)
        if lead is None:
            return
        last = (Assignment.objects.for_org(organization_id).filter(lead=lead).order_by("-created_at")
                .values_list("rep_id", flat=True).first())
        new_owner_id = lead.owner_id
        if last == new_owner_id or (last is None and new_owner_id is None):
            return
        actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else (api_key or None)
        lead.owner_id = last  # the history's previous owner: the edit already changed the row
        record(lead, rep_id=new_owner_id, reason=AssignmentReason.MANUAL, actor=actor)


def record_touch(*, organization_id, lead_id, at=None) -> None:
    """The first call, email, meeting or note (or acceptance) stops the lead's SLA clock."""
    LeadRouting.objects.for_org(organization_id).filter(lead_id=lead_id, first_touch_at__isnull=True).update(
        first_touch_at=at or timezone.now(), sla_due_at=None)


def rep_profiles_for(organization_id, emails):
    ensure_profiles(organization_id)
    return RepProfile.objects.for_org(organization_id).filter(user__email__in=emails)


def ensure_profiles(organization_id) -> None:
    """Every rep and manager of the org has a routing profile (memberships made in admin included)."""
    have = RepProfile.objects.for_org(organization_id).values("user_id")
    missing = (Membership.objects.filter(organization_id=organization_id, role__in=REP_ROLES)
               .exclude(user_id__in=have).values_list("user_id", flat=True))
    RepProfile.objects.bulk_create([RepProfile(organization_id=organization_id, user_id=user_id)
                                    for user_id in missing], ignore_conflicts=True)

