"""Settings → Routing: the pages where the roles the policy gives Action.ROUTING set up distribution — rep profiles,
teams, and the assignment rules in the order routing tries them. Every change goes through the services the API
and Django admin use (services.config: the same checks, the same audit entries); these views only turn forms into
service calls and service refusals back into form errors."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db import IntegrityError
from django.db.models import F
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from leadcrm import audit, policy
from leadcrm.errors import Conflict
from leadcrm.models import Role
from leadcrm.paging import keyset_page
from leadcrm.policy import Action, allowed
from leads.models import Segment, SegmentKind
from leads.views.segments import builder_context, describe

from . import selectors, services
from .forms import RepProfileForm, RuleForm, TeamForm, parse_definition, put_errors
from .hours import hours_text
from .models import AssignmentRule, Strategy, Team

routing_settings = allowed(Action.ROUTING)

PAGE_SIZE = 50


def _org(request):
    return request.organization


# --------------------------------------------------------------------------------------------- reps


@routing_settings
@require_GET
def rep_list(request):
    """Every rep (and manager) who can be given leads: capacity against open leads, away or paused, working hours,
    and what they sell — in keyset pages by email."""
    reps = selectors.reps_with_load(_org(request)).annotate(email=F("user__email"))
    rows, next_url, previous_url = keyset_page(request, reps, "email", page_size=PAGE_SIZE)
    now = timezone.now()
    for rep in rows:
        rep.away = rep.away_until is not None and rep.away_until > now
        rep.hours = hours_text(rep.working_hours)
        rep.full = rep.capacity is not None and rep.open_leads >= rep.capacity
        rep.role_label = Role(rep.role).label if rep.role in Role.values else rep.role
    return render(request, "routing/config/reps.html", {
        "reps": rows, "next_url": next_url, "previous_url": previous_url, "section": "reps"})


def _changed(profile, data: dict) -> dict:
    """The settings that differ from the profile's (a time as precise as the form shows it counts as unchanged),
    so that saving the form as it came changes nothing and records nothing."""
    changed = {}
    for name, value in data.items():
        current = getattr(profile, name)
        if name == "away_until" and current is not None and value is not None:
            current = current.replace(second=0, microsecond=0)
        if current != value:
            changed[name] = value
    return changed


@routing_settings
@require_http_methods(["GET", "POST"])
def rep_edit(request, user_id):
    profile = get_object_or_404(selectors.reps_with_load(_org(request)), user_id=user_id)
    status = 200
    if request.method == "POST":
        form = RepProfileForm(request.POST)
        if form.is_valid():
            try:
                services.update_rep(profile=profile, data=_changed(profile, form.service_data()),
                                    actor=audit.actor_of(request))
            except services.ConfigError as exc:
                form.put_service_errors(exc.errors)
            else:
                messages.success(request, f"Routing profile of {profile.user.email} saved.")
                return redirect(f"{reverse('routing:reps')}#rep-{profile.user_id}")
        status = 400
    else:
        form = RepProfileForm(initial=RepProfileForm.initial_for(profile))
    return render(request, "routing/config/rep_form.html", {
        "form": form, "profile": profile, "section": "reps", "role_label": Role(profile.role).label,
        "viewer_timezone": timezone.get_current_timezone_name()}, status=status)


# --------------------------------------------------------------------------------------------- teams


@routing_settings
@require_GET
def team_list(request):
    teams, next_url, previous_url = keyset_page(request, selectors.teams_with_members(_org(request).pk), "name",
                                                page_size=PAGE_SIZE)
    return render(request, "routing/config/teams.html", {
        "teams": teams, "next_url": next_url, "previous_url": previous_url, "section": "teams"})


def _team_form(request, data=None, **kwargs):
    organization_id = _org(request).pk
    managers = (get_user_model().objects.filter(memberships__organization_id=organization_id,
                                                memberships__role__in=(Role.MANAGER, Role.ADMIN))
                .order_by("email"))
    return TeamForm(data, managers=managers, reps=selectors.assignable_reps(organization_id), **kwargs)


def _team_page(request, team=None):
    organization_id = _org(request).pk
    status = 200
    if request.method == "POST":
        form = _team_form(request, request.POST)
        if form.is_valid():
            try:
                saved = services.save_team(organization_id=organization_id, data=dict(form.cleaned_data),
                                           instance=team, actor=audit.actor_of(request))
            except services.ConfigError as exc:
                put_errors(form, exc.errors)
            except IntegrityError:  # a concurrent request took the name after the check
                form.add_error("name", "Another team has this name.")
            else:
                messages.success(request, f"Team “{saved.name}” saved.")
                return redirect(f"{reverse('routing:teams')}#team-{saved.pk}")
        status = 400
    elif team is not None:
        form = _team_form(request, initial={"name": team.name, "manager": team.manager_id,
                                            "members": [rep.user_id for rep in team.members.all()]})
    else:
        form = _team_form(request)
    return render(request, "routing/config/team_form.html", {"form": form, "team": team, "section": "teams"},
                  status=status)


def _team(request, pk):
    return get_object_or_404(Team.objects.for_org(_org(request)), pk=pk)


@routing_settings
@require_http_methods(["GET", "POST"])
def team_create(request):
    return _team_page(request)


@routing_settings
@require_http_methods(["GET", "POST"])
def team_edit(request, pk):
    return _team_page(request, _team(request, pk))


@routing_settings
@require_http_methods(["GET", "POST"])
def team_delete(request, pk):
    """Delete a team after confirming; one that rules still send leads to is kept, and the page names them."""
    team = _team(request, pk)
    error, status = "", 200
    if request.method == "POST":
        try:
            services.delete_team(team=team, actor=audit.actor_of(request))
        except Conflict as exc:
            error, status = str(exc), 409
        else:
            messages.success(request, f"Team “{team.name}” deleted.")
            return redirect("routing:teams")
    rules = list(selectors.rules(_org(request).pk).filter(team=team))
    return render(request, "routing/config/team_delete.html", {
        "team": team, "rules": rules, "members": team.members.count(),
        "pooled": selectors.pool(_org(request).pk, team=team).count(), "error": error, "section": "teams"},
        status=status)


# --------------------------------------------------------------------------------------------- rules


def _list_names(organization_id) -> dict[str, str]:
    lists = Segment.objects.for_org(organization_id).filter(kind=SegmentKind.STATIC)
    return {str(pk): name for pk, name in lists.values_list("pk", "name")}


def _rules_context(request, notice="") -> dict:
    organization_id = _org(request).pk
    rules = list(selectors.rules(organization_id))
    names = _list_names(organization_id) if any(rule.condition for rule in rules) else {}
    movable = [rule for rule in rules if not rule.is_fallback]
    for position, rule in enumerate(rules, start=1):
        rule.position = position
        rule.words = describe(rule.condition, names) if rule.condition else None
        rule.first = bool(movable) and rule.pk == movable[0].pk
        rule.last = bool(movable) and rule.pk == movable[-1].pk
    return {"rules": rules, "notice": notice, "section": "rules",
            "has_fallback": any(rule.is_fallback and rule.active for rule in rules)}


@routing_settings
@require_GET
def rule_list(request):
    """The rules in the order routing tries them, the fallback last; the first that matches a lead places it."""
    return render(request, "routing/config/rules.html", _rules_context(request))


def _rule(request, pk):
    return get_object_or_404(AssignmentRule.objects.for_org(_org(request)).select_related("rep"), pk=pk)


def _rule_form(request, data=None, **kwargs):
    organization_id = _org(request).pk
    return RuleForm(data, segments=Segment.objects.for_org(organization_id).order_by("name"),
                    teams=Team.objects.for_org(organization_id).order_by("name"),
                    reps=selectors.assignable_reps(organization_id), **kwargs)


def _rule_page(request, rule=None):
    organization_id = _org(request).pk
    status, definition = 200, None
    if request.method == "POST":
        form = _rule_form(request, request.POST)
        definition = form.parsed_definition()
        if request.POST.get("load_json"):
            pass  # "Show this JSON in the builder": the page again with the builder redrawn, nothing saved
        elif form.is_valid():
            data = form.service_data()
            if rule is None:
                data["order"] = selectors.next_rule_order(organization_id)
            try:
                saved = services.save_rule(organization_id=organization_id, data=data, instance=rule,
                                           actor=audit.actor_of(request))
            except services.ConfigError as exc:
                form.put_service_errors(exc.errors)
                status = 400
            else:
                messages.success(request, f"Rule “{saved.name}” saved.")
                return redirect(f"{reverse('routing:rules')}#rule-{saved.pk}")
        else:
            status = 400
    elif rule is not None:
        form = _rule_form(request, initial=RuleForm.initial_for(rule))
        definition = rule.condition
    else:
        form = _rule_form(request, initial={"definition": '{"all": []}', "strategy": Strategy.ROUND_ROBIN})
    if definition is None:
        definition = parse_definition(form["definition"].value() or "") or {}
    return render(request, "routing/config/rule_form.html", {
        "form": form, "rule": rule, "section": "rules", "can_count": policy.can(request, Action.SEGMENTS),
        **builder_context(request, definition),
    }, status=status)


@routing_settings
@require_http_methods(["GET", "POST"])
def rule_create(request):
    return _rule_page(request)


@routing_settings
@require_http_methods(["GET", "POST"])
def rule_edit(request, pk):
    return _rule_page(request, _rule(request, pk))


@routing_settings
@require_POST
def rule_move(request, pk):
    """Move a rule one place up or down in the order routing tries them. From the list's buttons (htmx) the list
    comes back with the focus kept on the button pressed; without scripts, the page again."""
    rule = _rule(request, pk)
    direction = request.POST.get("direction")
    if direction not in ("up", "down") or rule.is_fallback:
        raise Http404("No such move.")
    moved = services.move_rule(rule=rule, up=direction == "up", actor=audit.actor_of(request))
    if moved:
        position = next(i for i, each in enumerate(selectors.rules(_org(request).pk), start=1) if each.pk == rule.pk)
        notice = f"“{rule.name}” moved {direction} to place {position}."
    else:
        notice = f"“{rule.name}” is already {'first' if direction == 'up' else 'last before the fallback'}."
    if request.htmx:
        return render(request, "routing/config/_rules_moved.html", _rules_context(request, notice))
    messages.success(request, notice)
    return redirect(f"{reverse('routing:rules')}#rule-{rule.pk}")


@routing_settings
@require_http_methods(["GET", "POST"])
def rule_delete(request, pk):
    rule = _rule(request, pk)
    if request.method == "POST":
        services.delete_rule(rule=rule, actor=audit.actor_of(request))
        messages.success(request, f"Rule “{rule.name}” deleted.")
        return redirect("routing:rules")
    return render(request, "routing/config/rule_delete.html", {"rule": rule, "section": "rules"})
