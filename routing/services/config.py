"""Setting up distribution: rep profiles, teams and assignment rules, checked the same way from the API and admin."""

import re

from django.db import IntegrityError, transaction
from django.db.models import RestrictedError

from leadcrm import audit
from leadcrm.errors import Conflict, Invalid
from leadcrm.models import Membership, Role
from leads import services as lead_services
from leads.conditions import ConditionError

from ..hours import HoursError, clean_working_hours
from ..models import AssignmentRule, RepProfile, Strategy, Team, TeamMember

TERRITORY = re.compile(r"^[A-Z]{2}(-[A-Z0-9 ]{1,60})?$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
MAX_SLA_MINUTES = 7 * 24 * 60
MAX_REASSIGNMENTS = 10
MAX_WEIGHT = 100


class ConfigError(Invalid):
    """Settings that cannot be used; `errors` maps each field to its messages."""

    default_code = "invalid_settings"

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors=errors)


def _org_id(obj):
    return getattr(obj, "organization_id", None)


def has_fallback(organization_id, *, excluding=None) -> bool:
    rules = AssignmentRule.objects.for_org(organization_id).filter(is_fallback=True, active=True)
    return rules.exclude(pk=getattr(excluding, "pk", None)).exists()


# ----------------------------------------------------------------------------------------------- reps


def clean_rep(profile: RepProfile, data: dict) -> dict:
    errors: dict[str, list[str]] = {}
    data = dict(data)
    if "territories" in data:
        territories = [str(t).strip().upper() for t in data["territories"]]
        bad = [t for t in territories if not TERRITORY.match(t)]
        if bad:
            errors["territories"] = [f"Not a country code (optionally with a region, as US-CA): {', '.join(bad)}."]
        data["territories"] = sorted(set(territories))
    if "languages" in data:
        languages = [str(code).strip().lower() for code in data["languages"]]
        bad = [code for code in languages if not LANGUAGE.match(code)]
        if bad:
            errors["languages"] = [f"Not a language code such as en or pt-br: {', '.join(bad)}."]
        data["languages"] = sorted(set(languages))
    if "industries" in data:
        data["industries"] = sorted({str(i).strip() for i in data["industries"] if str(i).strip()})
    if "weight" in data and not 0 <= data["weight"] <= MAX_WEIGHT:
        errors["weight"] = [f"Between 0 and {MAX_WEIGHT}."]
    if data.get("capacity") == 0 and not has_fallback(profile.organization_id):
        errors["capacity"] = ["A capacity of 0 takes no leads; with no fallback rule its leads would go nowhere. "
                              "Pause the rep instead, or add a fallback rule first."]
    if "working_hours" in data:
        try:
            data["working_hours"] = clean_working_hours(data["working_hours"])
        except HoursError as exc:
            errors.update({f"working_hours.{key}" if key != "working_hours" else key: messages
                           for key, messages in exc.errors.items()})
    if errors:
        raise ConfigError(errors)
    return data


@transaction.atomic
def update_rep(*, profile: RepProfile, data: dict, actor=None) -> RepProfile:
    data = clean_rep(profile, data)
    before = audit.stored(profile)
    for name, value in data.items():
        setattr(profile, name, value)
    profile.save()
    audit.record_save(organization=profile.organization_id, actor=actor, obj=profile, before=before)
    return profile


@transaction.atomic
def set_available(*, profile: RepProfile, available: bool, actor=None) -> RepProfile:
    """A manager pauses a rep (no new leads) or lets them take leads again."""
    before = audit.stored(profile)
    profile.available = available
    profile.save(update_fields=["available", "updated_at"])
    audit.record_save(organization=profile.organization_id, actor=actor, obj=profile, before=before)
    return profile


# ----------------------------------------------------------------------------------------------- teams


def clean_team(organization_id, data: dict, instance: Team | None = None) -> dict:
    errors: dict[str, list[str]] = {}
    name = data.get("name", instance.name if instance else "").strip()
    if not name:
        errors["name"] = ["A team needs a name."]
    elif Team.objects.for_org(organization_id).filter(name__iexact=name).exclude(
            pk=getattr(instance, "pk", None)).exists():
        errors["name"] = ["Another team has this name."]
    manager = data.get("manager")
    if manager is not None and not Membership.objects.filter(
            organization_id=organization_id, user=manager, role__in=(Role.MANAGER, Role.ADMIN)).exists():
        errors["manager"] = ["The manager must be a manager or admin of this organization."]
    members = data.get("members")
    if members is not None and any(str(_org_id(rep)) != str(organization_id) for rep in members):
        errors["members"] = ["Members must be reps of this organization."]
    if errors:
        raise ConfigError(errors)
    return {**data, "name": name} if "name" in data else data


def set_members(team: Team, reps) -> None:
    """Replace the team's members. A rep who joins starts at the back of the round-robin line."""
    wanted = {rep.pk: rep for rep in reps}
    TeamMember.objects.filter(team=team).exclude(rep_id__in=wanted).delete()
    present = set(TeamMember.objects.filter(team=team).values_list("rep_id", flat=True))
    TeamMember.objects.bulk_create([
        TeamMember(organization_id=team.organization_id, team=team, rep=rep, last_turn=team.turns_taken)
        for rep_id, rep in wanted.items() if rep_id not in present
    ])


def save_team(*, organization_id, data: dict, instance: Team | None = None, actor=None) -> Team:
    data = clean_team(organization_id, data, instance)
    members = data.pop("members", None)
    with transaction.atomic():
        team = instance or Team(organization_id=organization_id)
        before = audit.stored(team)
        for name, value in data.items():
            setattr(team, name, value)
        team.save()
        if members is not None:
            set_members(Team.objects.select_for_update().get(pk=team.pk), members)
        audit.record_save(organization=organization_id, actor=actor, obj=team, before=before)
    return team


def delete_team(*, team: Team, actor=None) -> None:
    try:
        with transaction.atomic(), audit.Deletion(team, organization=team.organization_id, actor=actor):
            team.delete()
    except RestrictedError as exc:
        names = sorted({str(rule) for rule in exc.restricted_objects})[:5]
        raise Conflict(f"Assignment rules send leads to this team: {', '.join(names)}. Change them first.",
                       code="team_in_use") from None


# ----------------------------------------------------------------------------------------------- rules


def clean_rule(organization_id, data: dict, instance: AssignmentRule | None = None) -> dict:
    """A rule's settings if they make sense together; ConfigError names each one that does not."""

    def value(name, default=None):
        return data.get(name, getattr(instance, name, default) if instance else default)

    errors: dict[str, list[str]] = {}
    strategy, rep, team = value("strategy"), value("rep"), value("team")
    if strategy not in Strategy.values:
        errors["action.type"] = [f"Use one of {', '.join(Strategy.values)}."]
    elif strategy == Strategy.REP:
        if rep is None:
            errors["action.rep"] = ["Name the rep who gets the leads."]
        elif str(_org_id(rep)) != str(organization_id):
            errors["action.rep"] = ["No such rep in this organization."]
        if team is not None:
            errors["action.team"] = ["A rule for a named rep has no team."]
    else:
        if team is None:
            errors["action.team"] = ["Name the team that shares the leads."]
        elif str(_org_id(team)) != str(organization_id):
            errors["action.team"] = ["No such team in this organization."]
        if rep is not None:
            errors["action.rep"] = ["A rule for a team names no single rep."]
    condition, segment = value("condition") or {}, value("segment")
    if segment is not None and str(_org_id(segment)) != str(organization_id):
        errors["segment"] = ["No such segment in this organization."]
    if condition and segment is not None:
        errors["condition"] = ["Use a condition or a segment, not both."]
    elif condition:
        try:
            data = {**data, "condition": lead_services.clean_definition(organization_id, condition)}
        except ConditionError as exc:
            errors.update({f"condition.{key}" if key != "definition" else "condition": messages
                           for key, messages in exc.errors.items()})
    if value("is_fallback", False):
        if condition or segment is not None:
            errors["is_fallback"] = ["The fallback takes every lead no other rule takes: it has no condition."]
        elif AssignmentRule.objects.for_org(organization_id).filter(is_fallback=True).exclude(
                pk=getattr(instance, "pk", None)).exists():
            errors["is_fallback"] = ["This organization already has a fallback rule; only one may be."]
    sla = value("sla_minutes")
    if sla is not None and not 1 <= sla <= MAX_SLA_MINUTES:
        errors["sla_minutes"] = [f"Between 1 and {MAX_SLA_MINUTES} minutes (a week), or empty for none."]
    if not 0 <= (value("max_reassignments", 0) or 0) <= MAX_REASSIGNMENTS:
        errors["max_reassignments"] = [f"Between 0 and {MAX_REASSIGNMENTS}."]
    if errors:
        raise ConfigError(errors)
    return data


def save_rule(*, organization_id, data: dict, instance: AssignmentRule | None = None, actor=None) -> AssignmentRule:
    data = clean_rule(organization_id, data, instance)
    rule = instance or AssignmentRule(organization_id=organization_id)
    before = audit.stored(rule)
    for name, value in data.items():
        setattr(rule, name, value)
    if rule.segment_id:
        rule.condition = {}
    try:
        with transaction.atomic():
            rule.save()
            audit.record_save(organization=organization_id, actor=actor, obj=rule, before=before)
    except IntegrityError:  # a concurrent save made another fallback first
        raise ConfigError({"is_fallback": ["This organization already has a fallback rule; only one may be."]}) \
            from None
    return rule


@transaction.atomic
def move_rule(*, rule: AssignmentRule, up: bool, actor=None) -> bool:
    """Swap the rule with the one tried just before it (`up`) or just after it; False when it is already first
    (or last). The fallback is always tried last and does not move. Where rules share an `order`, all of them
    are numbered 10, 20, 30… in the order they were tried, so each has a place of its own. Audited per rule."""
    if rule.is_fallback:
        raise Invalid("The fallback rule is always tried last; it cannot move.", code="fallback_is_last")
    ordered = list(AssignmentRule.objects.for_org(rule.organization_id).filter(is_fallback=False)
                   .select_for_update().order_by("order", "created_at", "pk"))
    index = next(i for i, other in enumerate(ordered) if other.pk == rule.pk)
    other = index - 1 if up else index + 1
    if not 0 <= other < len(ordered):
        return False
    orders = [each.order for each in ordered]
    if len(set(orders)) != len(orders):
        orders = [(position + 1) * 10 for position in range(len(ordered))]
    ordered[index], ordered[other] = ordered[other], ordered[index]
    for each, order in zip(ordered, orders, strict=True):
        if each.order != order:
            before = audit.stored(each)
            each.order = order
            each.save(update_fields=["order", "updated_at"])
            audit.record_save(organization=rule.organization_id, actor=actor, obj=each, before=before)
    rule.order = next(each.order for each in ordered if each.pk == rule.pk)
    return True


@transaction.atomic
def delete_rule(*, rule: AssignmentRule, actor=None) -> None:
    with audit.Deletion(rule, organization=rule.organization_id, actor=actor):
        rule.delete()


