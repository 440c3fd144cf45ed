"""Routing a lead: the first matching rule picks a rep by its strategy, or the lead waits in a team's pool.

Leads are routed in batches, one lead being a batch of one: the batch's leads are locked, every rule's condition
is tested for all of them in one query, the reps are handed out in memory by a Dispenser (which holds the teams'
and named reps' rows locked), and the owners, history, routing states, notifications and events are written with
a few set-based statements per batch.

Locks are always taken in the order leads (by id) -> teams (by id) -> rep profiles, so concurrent routers, claims
and SLA checks queue behind each other instead of deadlocking. The team row lock is what keeps round robin fair
under concurrency: turns are taken one at a time, each stamped with the team's next tick.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from leadcrm import audit, events, metrics
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
from .notify import Notice, notify_many

_S = LifecycleStage
# Leads a rep is still working: what counts against capacity and fills the queue.
OPEN_STAGES = (_S.SUBSCRIBER, _S.LEAD, _S.MQL, _S.SAL, _S.SQL)
# Logging one of these (or accepting the lead) is the first touch that stops the SLA clock.
TOUCH_TYPES = touches.TOUCH_TYPES
TOUCHED_STAGES = (_S.SAL, _S.SQL, _S.OPPORTUNITY, _S.CUSTOMER, _S.DISQUALIFIED, _S.RECYCLED)
REP_ROLES = (Role.REP, Role.MANAGER)  # the members who get a routing profile and may be given leads
ROUTE_BATCH = 1000  # leads routed per transaction


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
        return chosen
    return min(eligible, key=lambda m: (m.last_turn, m.pk))  # round robin: the one whose last turn is oldest


class Dispenser:
    """The reps that some rules hand leads to, locked and read once for a whole batch of leads. Turns are then
    taken in memory, lead after lead, exactly as routing the leads one at a time would take them (each pick
    counts against the rep's capacity for the next), and `save` stores the teams' clocks and members' turns.

    Teams are locked (in id order) before named reps' profiles, and the caller holds the leads' locks already."""

    def __init__(self, organization_id, rules, *, now):
        self.now = now
        team_ids = sorted({rule.team_id for rule in rules if rule.team_id is not None})
        profile_ids = sorted({rule.rep_id for rule in rules if rule.rep_id is not None})
        current = Membership.objects.filter(organization_id=organization_id).values("user_id")
        self.teams = {team.pk: team for team in Team.objects.for_org(organization_id).select_for_update()
                      .filter(pk__in=team_ids).order_by("pk")} if team_ids else {}
        self.members: dict[int, list[TeamMember]] = {team_id: [] for team_id in self.teams}
        if self.teams:  # the reps who are still members of the org
            for member in TeamMember.objects.filter(team_id__in=list(self.teams), rep__user_id__in=current) \
                    .select_related("rep").order_by("last_turn", "id"):
                self.members[member.team_id].append(member)
        self.named = {profile.pk: profile for profile in RepProfile.objects.for_org(organization_id)
                      .select_for_update().filter(pk__in=profile_ids).order_by("pk")} if profile_ids else {}
        self.named_members = set(Membership.objects.filter(
            organization_id=organization_id, user_id__in=[profile.user_id for profile in self.named.values()])
            .values_list("user_id", flat=True)) if self.named else set()
        # Counting open leads is only needed for those who have a limit or whose load decides.
        least_loaded = {rule.team_id for rule in rules if rule.strategy == Strategy.LEAST_LOADED}
        counted = {member.rep.user_id for team_id, members in self.members.items() for member in members
                   if member.rep.capacity is not None or team_id in least_loaded}
        counted |= {profile.user_id for profile in self.named.values() if profile.capacity is not None}
        self.load = Counter(open_lead_counts(organization_id, counted)) if counted else Counter()
        self._turned_teams: dict[int, Team] = {}
        self._turned_members: dict[int, TeamMember] = {}

    def pick(self, rule: AssignmentRule, *, lead, exclude=(), reason=AssignmentReason.RULE) -> Pick | None:
        """The rule's choice for the lead; None only when a named rep cannot take it (the caller falls back)."""
        if rule.strategy == Strategy.REP:
            profile = self.named[rule.rep_id]
            if profile.user_id in self.named_members and can_take(profile, lead=lead, rule=rule, now=self.now,
                                                                  load=self.load, exclude=exclude):
                return Pick(rule=rule, reason=reason, rep_id=profile.user_id, hours=profile.working_hours)
            return None
        team = self.teams[rule.team_id]
        if rule.strategy == Strategy.POOL:
            return Pick(rule=rule, reason=reason, team=team)
        eligible = [member for member in self.members[team.pk]
                    if can_take(member.rep, lead=lead, rule=rule, now=self.now, load=self.load, exclude=exclude)]
        if rule.strategy == Strategy.WEIGHTED:
            eligible = [member for member in eligible if member.rep.weight > 0]
            self._turned_members.update((member.pk, member) for member in eligible)  # their credit changes
        if not eligible:
            return Pick(rule=rule, reason=reason, team=team)
        chosen = _choose(rule.strategy, eligible, self.load)
        team.turns_taken += 1
        chosen.last_turn = team.turns_taken
        self._turned_teams[team.pk] = team
        self._turned_members[chosen.pk] = chosen
        return Pick(rule=rule, reason=reason, rep_id=chosen.rep.user_id, team=team, hours=chosen.rep.working_hours)

    def hand_over(self, *, previous_id, rep_id) -> None:
        """An open lead changed hands: it counts against its new owner's capacity, no longer its previous one's."""
        if previous_id is not None:
            self.load[previous_id] -= 1
        if rep_id is not None:
            self.load[rep_id] += 1

    def save(self) -> None:
        if self._turned_teams:
            Team.objects.bulk_update(list(self._turned_teams.values()), ["turns_taken"])
        if self._turned_members:
            TeamMember.objects.bulk_update(list(self._turned_members.values()), ["last_turn", "weighted_credit"])


def pick(rule: AssignmentRule, *, lead, now, exclude=(), reason=AssignmentReason.RULE) -> Pick | None:
    """The rule's choice for one lead (re-assigning after a missed deadline): a dispenser of one pick."""
    dispenser = Dispenser(rule.organization_id, [rule], now=now)
    choice = dispenser.pick(rule, lead=lead, exclude=exclude, reason=reason)
    dispenser.save()
    return choice


def rules_in_order(organization_id):
    return list(AssignmentRule.objects.for_org(organization_id).filter(active=True).select_related("segment")
                .order_by("is_fallback", "order", "created_at"))


def _rule_q(rule):
    if rule.segment_id is not None:
        return lead_services.segment_q(rule.segment)
    return definition_q(rule.organization_id, rule.condition) if rule.condition else None


def matching_rules(organization_id, leads, rules) -> dict:
    """{lead id: the rules the lead meets, in order}, every rule tested for every lead in one query; the
    fallback (and any rule without a condition) always meets."""
    tests = {f"rule_{index}": _rule_q(rule) for index, rule in enumerate(rules)}
    conditional = {name: as_boolean(q) for name, q in tests.items() if q is not None}
    flags = {}
    if conditional and leads:
        rows = (Lead.objects.for_org(organization_id).filter(pk__in=[lead.pk for lead in leads])
                .values("pk", **conditional))
        flags = {row.pop("pk"): row for row in rows}
    return {lead.pk: [rule for index, rule in enumerate(rules)
                      if tests[f"rule_{index}"] is None or flags.get(lead.pk, {}).get(f"rule_{index}")]
            for lead in leads}


def _mql_at(lead) -> datetime | None:
    value = (lead.stage_entered_at or {}).get(_S.MQL)
    return parse_datetime(value) if isinstance(value, str) else None


@dataclass
class Handout:
    """One lead changing hands: to `rep_id` (None: to the pick's team pool), why, and how the rep hears of it."""

    lead: Lead
    rep_id: int | None
    reason: str
    pick: Pick | None = None
    restart_sla: bool = True
    counts_as_reassignment: bool = False
    notification_kind: str = NotificationKind.ASSIGNED


def _details(handout: Handout, emails: dict, previous_id) -> dict:
    choice = handout.pick
    details = {"reason": AssignmentReason(handout.reason).label,
               "owner": emails.get(handout.rep_id, "") or "(pool)"}
    if previous_id:
        details["previous owner"] = emails.get(previous_id, "")
    if choice is not None:
        details["rule"] = choice.rule.name
        details["strategy"] = choice.rule.get_strategy_display()
        if choice.team is not None:
            details["team"] = choice.team.name
    return details


def _routing_states(organization_id, leads) -> dict:
    return {state.lead_id: state for state in LeadRouting.objects.for_org(organization_id)
            .filter(lead_id__in=[lead.pk for lead in leads]).select_related("rule")}


def _next_state(handout: Handout, state: LeadRouting | None, *, hours: dict, now) -> LeadRouting:
    """The lead's routing state after the handout: where it waits, and its SLA clock, restarted for a new rep."""
    rule, team = (handout.pick.rule, handout.pick.team) if handout.pick else (None, None)
    sla_rule = rule or (state.rule if state else None)
    due = None
    if (handout.rep_id is not None and handout.restart_sla and sla_rule is not None and sla_rule.sla_minutes
            and (state is None or state.first_touch_at is None)):
        due = add_working_minutes(handout.pick.hours if handout.pick else hours.get(handout.rep_id) or {}, now,
                                  sla_rule.sla_minutes)
    assigned = handout.rep_id is not None
    return LeadRouting(
        organization_id=handout.lead.organization_id, lead=handout.lead,
        rule_id=rule.pk if rule else getattr(state, "rule_id", None),
        team_id=team.pk if team else getattr(state, "team_id", None),
        pooled=not assigned, mql_at=getattr(state, "mql_at", None) or _mql_at(handout.lead),
        assigned_at=now if assigned else getattr(state, "assigned_at", None),
        first_assigned_at=getattr(state, "first_assigned_at", None) or (now if assigned else None),
        sla_due_at=due,
        # every assignment of a lead is recorded by its first one's deadline (speed to lead's share within SLA)
        first_sla_due_at=state.first_sla_due_at if state else due,
        reassignments=getattr(state, "reassignments", 0) + (1 if handout.counts_as_reassignment else 0),
    )


STATE_FIELDS = ["rule", "team", "pooled", "mql_at", "assigned_at", "first_assigned_at", "sla_due_at",
                "first_sla_due_at", "reassignments", "updated_at"]


def record_many(organization_id, handouts: list[Handout], *, actor=None, now=None, states=None) -> list[Assignment]:
    """Give each lead (locked by the caller) to its new owner and record it everywhere it shows: the owner and
    timeline, the assignment history, the routing state with its SLA clock, the notifications and the
    lead.assigned events. A few statements for the whole list, however long."""
    if not handouts:
        return []
    now = now or timezone.now()
    states = _routing_states(organization_id, [h.lead for h in handouts]) if states is None else states
    previous = {h.lead.pk: h.lead.owner_id for h in handouts}
    people = {h.rep_id for h in handouts} | set(previous.values())
    emails = dict(get_user_model().objects.filter(pk__in=people - {None}).values_list("pk", "email"))
    unpicked = {h.rep_id for h in handouts if h.pick is None and h.rep_id is not None}
    hours = dict(RepProfile.objects.for_org(organization_id).filter(user_id__in=unpicked)
                 .values_list("user_id", "working_hours")) if unpicked else {}
    lead_services.assign_owners(organization_id=organization_id, actor=actor, changes=[
        (h.lead, h.rep_id, _details(h, emails, previous[h.lead.pk])) for h in handouts])
    next_states = [_next_state(h, states.get(h.lead.pk), hours=hours, now=now) for h in handouts]
    # Speed to lead: capture to the first time a rep has the lead, counted once the handout is committed.
    speeds = [(now - h.lead.created_at).total_seconds() for h in handouts
              if h.rep_id is not None and getattr(states.get(h.lead.pk), "first_assigned_at", None) is None]
    if speeds:
        transaction.on_commit(lambda: metrics.observe_many(metrics.SPEED_TO_LEAD, speeds))
    LeadRouting.objects.bulk_create(next_states, update_conflicts=True, unique_fields=["lead"],
                                    update_fields=STATE_FIELDS)
    assignments = Assignment.objects.bulk_create([
        Assignment(organization_id=organization_id, lead=h.lead, rep_id=h.rep_id,
                   previous_rep_id=previous[h.lead.pk], team=h.pick.team if h.pick else None,
                   rule=h.pick.rule if h.pick else None, rule_name=h.pick.rule.name if h.pick else "",
                   strategy=h.pick.rule.strategy if h.pick else "", reason=h.reason, sla_due_at=state.sla_due_at,
                   **audit.actor_fields(actor))
        for h, state in zip(handouts, next_states, strict=True)])
    notices = []
    for h in handouts:
        team = h.pick.team if h.pick else None
        if h.rep_id is not None:
            notices.append(Notice(lead=h.lead, user_id=h.rep_id, kind=h.notification_kind))
        elif team is not None and team.manager_id:
            notices.append(Notice(lead=h.lead, user_id=team.manager_id, kind=NotificationKind.POOLED, team=team))
    notify_many(organization_id, notices)
    events.emit_many([(events.LEAD_ASSIGNED, {"organization_id": organization_id, "lead_id": h.lead.pk,
                                              "owner_id": h.rep_id, "assignment_id": assignment.pk,
                                              "reason": h.reason})
                      for h, assignment in zip(handouts, assignments, strict=True)])
    return assignments


def record(lead, *, rep_id, reason, pick: Pick | None = None, actor=None, now=None, restart_sla=True,
           counts_as_reassignment=False, notification_kind=NotificationKind.ASSIGNED) -> Assignment:
    """`record_many` for one lead (a claim, a re-assignment by hand or after a missed deadline, an escalation)."""
    handout = Handout(lead=lead, rep_id=rep_id, reason=reason, pick=pick, restart_sla=restart_sla,
                      counts_as_reassignment=counts_as_reassignment, notification_kind=notification_kind)
    return record_many(lead.organization_id, [handout], actor=actor, now=now)[0]


def previous_reps(lead) -> set[int]:
    return set(Assignment.objects.for_org(lead.organization_id).filter(lead=lead, rep__isnull=False)
               .values_list("rep_id", flat=True))


def _locked_lead(organization_id, lead_id):
    return Lead.objects.for_org(organization_id).select_for_update(of=("self",)).filter(pk=lead_id).first()


def route_batch(*, organization_id, lead_ids, reason=AssignmentReason.RULE, actor=None, only_unowned=False,
                now=None, rules=None) -> list[Assignment]:
    """Route the leads by the org's rules in one transaction, in the order given, with a fixed number of statements
    however many there are: each lead goes to the first matching rule that places it, taking the same turns as
    if the leads were routed one by one. Leads past the open stages are left alone; with `only_unowned` (the
    automatic path) so is a lead that has an owner or waits in a pool, so a repeated or concurrent routing task
    changes nothing. Returns the assignments made (a lead that no rule places has none)."""
    now = now or timezone.now()
    with transaction.atomic():
        # Locked in id order: routers given overlapping leads in any order queue behind each other, never deadlock.
        locked = {str(lead.pk): lead for lead in Lead.objects.for_org(organization_id)
                  .select_for_update(of=("self",)).filter(pk__in=list(lead_ids), lifecycle_stage__in=OPEN_STAGES)
                  .order_by("pk")}
        leads = [locked[key] for key in dict.fromkeys(map(str, lead_ids)) if key in locked]
        states = _routing_states(organization_id, leads) if leads else {}
        if only_unowned:
            leads = [lead for lead in leads if lead.owner_id is None
                     and not getattr(states.get(lead.pk), "pooled", False)]
        if not leads:
            return []
        rules = rules if rules is not None else rules_in_order(organization_id)
        matches = matching_rules(organization_id, leads, rules)
        dispenser = Dispenser(organization_id, list({rule.pk: rule for found in matches.values()
                                                     for rule in found}.values()), now=now)
        handouts = []
        for lead in leads:
            for rule in matches[lead.pk]:
                why = AssignmentReason.FALLBACK if rule.is_fallback and reason == AssignmentReason.RULE else reason
                choice = dispenser.pick(rule, lead=lead, reason=why)
                if choice is not None:
                    dispenser.hand_over(previous_id=lead.owner_id, rep_id=choice.rep_id)
                    handouts.append(Handout(lead=lead, rep_id=choice.rep_id, reason=why, pick=choice))
                    break
        dispenser.save()
        return record_many(organization_id, handouts, actor=actor, now=now, states=states)


def route_lead(*, organization_id, lead_id, **options) -> Assignment | None:
    """Route one lead now (a batch of one); None when it is closed, skipped, or no rule places it."""
    routed = route_batch(organization_id=organization_id, lead_ids=[lead_id], **options)
    return routed[0] if routed else None


def route_leads(*, organization_id, lead_ids, **options) -> int:
    """Route the leads in batches of ROUTE_BATCH, each batch in its own transaction (so one batch's lock waits
    never hold up the leads of the next); returns how many went to a rep or a pool."""
    lead_ids = list(lead_ids)
    options.setdefault("rules", rules_in_order(organization_id))
    return sum(len(route_batch(organization_id=organization_id, lead_ids=lead_ids[start:start + ROUTE_BATCH],
                               **options))
               for start in range(0, len(lead_ids), ROUTE_BATCH))


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

