"""Who may do what: one table of role × action, asked by every door — DRF permissions, browser views, Django
admin and the navigation (DESIGN §3). No view decides a role rule by itself.

A request acts as a *principal*: a signed-in member (their membership's role) or an API key (the role it was
given when created, never above its creator's). Both are judged by the same table.
"""

from dataclasses import dataclass
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.db import models
from django.shortcuts import render
from rest_framework import permissions

from .models import ApiKey, Role


class Action(models.TextChoices):
    WORK_LEADS = "work_leads", "Open and work leads: log touches, move stages, convert"
    ALL_LEADS = "all_leads", "See and work every lead of the org (without it: one's own leads)"
    EDIT_LEADS = "edit_leads", "Correct the contact and company details of the leads one works: name, email, phone…"
    MANAGE_LEADS = "manage_leads", "Create, delete, merge and tag leads; change any of their fields; accounts and deals"
    ROUTE_LEADS = "route_leads", "Route a lead by the rules now"
    REASSIGN = "reassign", "Hand leads from one rep to another"
    CLAIM = "claim", "Take leads from the pools of one's teams"
    TEAM_QUEUES = "team_queues", "Oversee the reps of the teams one manages: their queues, load, pause, team page"
    ALL_QUEUES = "all_queues", "Oversee every rep and every team's pool"
    TASKS = "tasks", "Tasks: plan, change and complete follow-ups (one's own, and those on the leads one works)"
    ALL_TASKS = "all_tasks", "See and change every member's tasks (without it: one's own, on one's leads, a team's)"
    WORK_DEALS = "work_deals", "See and move deals through the pipeline: one's own (more with the two below)"
    TEAM_DEALS = "team_deals", "See and move the deals of the reps of the teams one manages"
    ALL_DEALS = "all_deals", "See and move every deal of the org"
    PIPELINES = "pipelines", "Deal pipelines and their stages"
    FORMS = "forms", "Capture forms"
    IMPORTS = "imports", "CSV imports"
    SEGMENTS = "segments", "Segments and static lists"
    SCORING = "scoring", "Scoring rules and settings"
    ROUTING = "routing", "Routing: assignment rules, teams, rep profiles"
    NURTURE = "nurture", "Email templates and sequences"
    CAMPAIGNS = "campaigns", "Campaigns, their costs and members"
    REPORTS = "reports", "Reports"
    EXPORT = "export", "Export everything held about a lead"
    EXPORT_LIST = "export_list", "Download the leads list (as filtered) as CSV"
    ERASE = "erase", "Erase a lead's personal data"
    WEBHOOKS = "webhooks", "Webhook endpoints and their deliveries"
    API_KEYS = "api_keys", "API keys (of one's own role or a lesser one)"
    MEMBERS = "members", "Members and their roles"
    ORG_SETTINGS = "org_settings", "Organization settings: its name, and the sender of email to leads"
    AUDIT_LOG = "audit_log", "The audit log"
    ADMIN_SITE = "admin_site", "Django admin (with staff status)"


_ORG_WIDE = frozenset({Role.ADMIN, Role.MANAGER, Role.MARKETER})
_ALL = _ORG_WIDE | {Role.REP}

# The table. A role missing from an action's set may not do it, through any door.
ALLOWED: dict[Action, frozenset] = {
    Action.WORK_LEADS: _ALL,
    Action.ALL_LEADS: _ORG_WIDE,
    Action.EDIT_LEADS: _ALL,
    Action.MANAGE_LEADS: _ORG_WIDE,
    Action.ROUTE_LEADS: _ORG_WIDE,
    Action.REASSIGN: frozenset({Role.ADMIN, Role.MANAGER}),
    Action.CLAIM: frozenset({Role.ADMIN, Role.MANAGER, Role.REP}),
    Action.TEAM_QUEUES: frozenset({Role.ADMIN, Role.MANAGER}),
    Action.ALL_QUEUES: frozenset({Role.ADMIN}),
    Action.TASKS: _ALL,
    Action.ALL_TASKS: frozenset({Role.ADMIN, Role.MARKETER}),
    Action.WORK_DEALS: _ALL,
    Action.TEAM_DEALS: frozenset({Role.ADMIN, Role.MANAGER}),
    Action.ALL_DEALS: frozenset({Role.ADMIN, Role.MARKETER}),
    Action.PIPELINES: frozenset({Role.ADMIN}),
    Action.FORMS: _ORG_WIDE,
    Action.IMPORTS: _ORG_WIDE,
    Action.SEGMENTS: _ORG_WIDE,
    Action.SCORING: _ORG_WIDE,
    Action.ROUTING: frozenset({Role.ADMIN, Role.MANAGER}),
    Action.NURTURE: _ORG_WIDE,
    Action.CAMPAIGNS: _ORG_WIDE,
    Action.REPORTS: _ORG_WIDE,
    Action.EXPORT: frozenset({Role.ADMIN, Role.MARKETER}),
    Action.EXPORT_LIST: _ORG_WIDE,
    Action.ERASE: frozenset({Role.ADMIN}),
    Action.WEBHOOKS: frozenset({Role.ADMIN}),
    Action.API_KEYS: _ORG_WIDE,
    Action.MEMBERS: frozenset({Role.ADMIN}),
    Action.ORG_SETTINGS: frozenset({Role.ADMIN}),
    Action.AUDIT_LOG: frozenset({Role.ADMIN}),
    Action.ADMIN_SITE: frozenset({Role.ADMIN}),
}
assert set(ALLOWED) == set(Action), "every action has a row"
assert all(Role.ADMIN in roles for roles in ALLOWED.values()), "admins may do everything, and so grant every role"

# Actions a principal does as a person, which an API key cannot: claiming makes a lead *someone's*.
SESSION_ONLY = frozenset({Action.CLAIM})


def allows(role, action: Action) -> bool:
    return role in ALLOWED[action]


def actions_of(role) -> frozenset:
    return frozenset(action for action, roles in ALLOWED.items() if role in roles)


def within(role, cap) -> bool:
    """A role may be given (to an API key, or by a member to another) only if it can do nothing `cap` cannot."""
    return role in Role.values and actions_of(role) <= actions_of(cap)


def grantable_roles(cap) -> list:
    return [role for role in Role if within(role, cap)]


def grant_problem(role, cap) -> str:
    """Why `role` may not be given by someone of role `cap` (None: anyone, e.g. a command), or "" if it may."""
    if role not in Role.values:
        return f"Unknown role {role!r}; use one of {', '.join(Role.values)}."
    if cap is not None and not within(role, cap):
        allowed = ", ".join(grantable_roles(cap)) or "none"
        return f"A {Role(cap).label.lower()} may give a key only a role that can do no more than theirs: {allowed}."
    return ""


def table() -> list[dict]:
    """The policy for people to read: one row per action, which roles may do it."""
    return [{"action": action, "label": action.label, "roles": {role: role in ALLOWED[action] for role in Role}}
            for action in Action]


@dataclass(frozen=True)
class Principal:
    """Who a request acts as. `user` scopes "one's own": the member, or the user who created the key."""

    role: str | None
    user: object | None
    api_key: ApiKey | None = None

    def can(self, action: Action) -> bool:
        if self.role is None or (self.api_key is not None and action in SESSION_ONLY):
            return False
        return allows(self.role, action)


NOBODY = Principal(role=None, user=None)


def principal_of(request) -> Principal:
    request = getattr(request, "_request", request)  # a DRF request wraps Django's
    api_key = getattr(request, "api_key", None)
    if isinstance(api_key, ApiKey):
        return Principal(role=api_key.role, user=api_key.created_by, api_key=api_key)
    membership = getattr(request, "membership", None)
    if membership is None or not request.user.is_authenticated:
        return NOBODY
    return Principal(role=membership.role, user=request.user)


def can(request, action: Action) -> bool:
    return principal_of(request).can(action)


def visible(principal: Principal, rows, owner: str = "owner_id"):
    """The leads (or deals, accounts: rows with an owner) a principal may see and work, of an org-scoped
    queryset: all of them with ALL_LEADS, else the ones they own. The one rule for the API and the browser."""
    if principal.can(Action.ALL_LEADS):
        return rows
    if principal.role is None or principal.user is None:
        return rows.none()
    return rows.filter(**{owner: principal.user.pk})


def visible_to(request, rows, owner: str = "owner_id"):
    return visible(principal_of(request), rows, owner)


# Who is on the teams a member manages: (organization_id, user) -> user ids. Teams are the routing app's, which
# registers this when it loads (leadcrm imports no app); without it a manager sees their own deals only.
_team_members = None


def register_team_members(function) -> None:
    global _team_members
    _team_members = function


def visible_deals(principal: Principal, organization_id, rows):
    """The deals (of an org-scoped queryset) a principal may see and move on the board: every one with ALL_DEALS;
    with TEAM_DEALS their own and those of the reps of the teams they manage; else their own. The one rule for the
    board, its moves and the API."""
    if principal.can(Action.ALL_DEALS):
        return rows
    if principal.user is None or not principal.can(Action.WORK_DEALS):
        return rows.none()
    mine = models.Q(owner_id=principal.user.pk)
    if principal.can(Action.TEAM_DEALS) and _team_members is not None:
        mine |= models.Q(owner_id__in=_team_members(organization_id, principal.user))
    return rows.filter(mine)


# ----------------------------------------------------------------------------------------------- the doors


class Allowed(permissions.BasePermission):
    """DRF: the request's org is known and its principal may do the view's `policy_action` (a view may map
    its actions to different ones with `policy_actions = {"list": ..., "create": ...}`)."""

    message = "Your role may not do this."

    def has_permission(self, request, view):
        action = action_of_view(view, getattr(view, "action", None))
        if action is None or getattr(request, "organization", None) is None:
            return False  # a view that names no action is closed, not open
        principal = principal_of(request)
        if principal.api_key is not None and action in SESSION_ONLY:
            self.message = "Only a signed-in member can do this; an API key cannot."
        return principal.can(action)


def action_of_view(view, name=None) -> Action | None:
    """The action a DRF view (or one of a viewset's actions) needs."""
    mapped = getattr(view, "policy_actions", {}) or {}
    return mapped.get(name, getattr(view, "policy_action", None))


def allowed(action: Action):
    """Browser views: signed in with an active org, and a role that may do `action` (else a 403 page saying
    so). The view keeps `policy_action`, which the role-matrix test reads."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if getattr(request, "organization", None) is None:
                return render(request, "no_organization.html", status=403)
            if not can(request, action):
                return refused(request, action)
            return view(request, *args, **kwargs)

        wrapper.policy_action = action
        return wrapper

    return decorator


def refused(request, action: Action):
    role = getattr(getattr(request, "membership", None), "role", None)
    return render(request, "refused.html", {"action": action, "role_label": Role(role).label if role else ""},
                  status=403)


def navigation(request) -> dict:
    """What the menu offers: `can.<action>` for the signed-in member."""
    principal = principal_of(request)
    return {action.value: principal.can(action) for action in Action}
