"""Role matrix: every API route and page × every role (a signed-in member, and an API key of that role) answers
as the access policy (leadcrm/policy.py) says — refused is a 403 through every door, allowed is anything else but
a server error. Generated from the URL conf: a route that names no policy action fails the suite.

The ids in the URLs are well-formed but match nothing, so a call the policy allows ends in a 404, a 400 or a 405
without changing anything, while a refused one must be turned away before the view looks anything up.
"""

import re
import uuid
from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from leadcrm import policy, services, urlids
from leadcrm.models import Role
from leadcrm.policy import Action

pytestmark = pytest.mark.django_db

# Routes open to anyone, or to anyone signed in whatever their role: no policy action to ask.
PUBLIC = {
    "login", "logout", "password_change", "password_change_done", "password_reset", "password_reset_done",
    "password_reset_confirm", "password_reset_complete", "healthz", "favicon", "schema", "api-docs", "api-root",
    "tracking-open", "tracking-click", "tracking-unsubscribe", "leads:public-form", "leads:public-form-embed",
}
SIGNED_IN = {"home", "switch-org", "routing:badge"}
# Routes for the operator's monitoring, not for members: a token or an allowed network opens them, never a role.
OPERATOR = {"readyz", "metrics"}

# Values for the URLs' parameters: well-formed, matching nothing (a report's name must be one that exists).
VALUES = {"uuid": str(uuid.UUID(int=1)), "int": "999999", "str": "nosuchthing", "slug": "funnel",
          "keyprefix": "nosuchkey"}
REGEX_VALUES = {urlids.INT: "999999", urlids.KEY_PREFIX: "nosuchkey", urlids.SLUG_KEY: "no_such_type"}


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    method: str
    action: Action
    api: bool


def _concrete(pattern: str) -> str:
    path = re.sub(r"\(\?P<\w+>(?P<regex>[^)]*)\)", lambda m: REGEX_VALUES.get(m.group("regex"), VALUES["uuid"]),
                  pattern)
    path = re.sub(r"<(?:(?P<converter>\w+):)?\w+>", lambda m: VALUES[m.group("converter") or "str"], path)
    return "/" + path.replace("^", "").replace("$", "").replace("\\.", ".")


def _walk(patterns, prefix="", namespace=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if str(pattern.pattern).startswith("admin/"):
                continue  # Django admin: tested on its own below
            space = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), space)
        elif isinstance(pattern, URLPattern):
            yield f"{namespace}{pattern.name}", prefix + str(pattern.pattern), pattern.callback


def _routes():
    """Every (route, method) with the policy action it needs; and the routes that name none."""
    routes, unnamed = [], []
    for name, pattern, callback in _walk(get_resolver().url_patterns):
        if "format" in pattern or name in PUBLIC | SIGNED_IN | OPERATOR or pattern.startswith("admin/"):
            continue  # DRF's `.json` suffix twins answer as their plain routes
        path = _concrete(pattern)
        view_class = getattr(callback, "cls", None)
        if view_class is None:  # a browser page
            action = getattr(callback, "policy_action", None)
            methods = {"get": None}
        elif getattr(callback, "actions", None):  # a viewset route: each method has an action of its own
            methods = callback.actions
        else:
            methods = {m: None for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)}
        for method, viewset_action in methods.items():
            if view_class is not None:
                action = policy.action_of_view(view_class, viewset_action)
            if action is None:
                unnamed.append(f"{method.upper()} {path} ({name})")
            else:
                routes.append(Route(name, path, method, action, api=path.startswith("/api/")))
    return routes, unnamed


ROUTES, UNNAMED = _routes()


def test_every_route_names_a_policy_action():
    assert not UNNAMED, "routes without a policy action (add one, or list them as PUBLIC/SIGNED_IN): " + ", ".join(
        UNNAMED)
    assert len({r.path for r in ROUTES if r.api}) > 40 and len({r.path for r in ROUTES if not r.api}) > 60


def test_the_lists_columns_bulk_actions_and_search_ask_the_policy():
    """The leads list's Columns control, its bulk doors (tags and lists, campaigns) and the header's search are
    in the matrix below with the actions they need: every member searches and chooses columns; bulk changes are
    org-wide work."""
    actions = {route.name: route.action for route in ROUTES}
    assert actions["leads:list-columns"] == Action.WORK_LEADS
    assert actions["leads:search"] == actions["leads:search-suggest"] == Action.WORK_LEADS
    assert actions["leads:bulk"] == Action.MANAGE_LEADS
    assert actions["campaigns:leads-add"] == Action.CAMPAIGNS
    assert Role.REP not in policy.ALLOWED[Action.MANAGE_LEADS] | policy.ALLOWED[Action.CAMPAIGNS]


PRINCIPALS = [(role, False) for role in Role.values] + [(role, True) for role in Role.values]


@pytest.mark.parametrize(("role", "by_key"), PRINCIPALS,
                         ids=[f"{role}-{'key' if key else 'session'}" for role, key in PRINCIPALS])
def test_every_route_answers_as_the_policy_says(org, member, role, by_key):
    user = member(role, email=f"matrix-{role}@acme.test") if role != Role.ADMIN else None
    client = APIClient()
    if by_key:
        _, plain = services.create_api_key(organization=org, name=f"{role} key", role=role, created_by=user)
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    else:
        client.force_login(user or org.memberships.get(role=Role.ADMIN).user)
    wrong = []
    for route in ROUTES:
        if by_key and not route.api:
            continue  # a key opens no pages
        allowed = role in policy.ALLOWED[route.action] and not (by_key and route.action in policy.SESSION_ONLY)
        response = getattr(client, route.method)(route.path, {}, format="json") if route.method != "get" else \
            client.get(route.path)
        refused = response.status_code == 403
        if response.status_code >= 500 or refused == allowed:
            wrong.append(f"{route.method.upper()} {route.path} [{route.action}]: {response.status_code}, "
                         f"policy says {'allowed' if allowed else 'refused'}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(("role", "by_key"), PRINCIPALS,
                         ids=[f"{role}-{'key' if key else 'session'}" for role, key in PRINCIPALS])
def test_no_role_opens_the_metrics_and_readiness_needs_none(org, member, role, by_key, settings):
    settings.METRICS_TOKEN = "operator-token"
    user = member(role, email=f"ops-{role}@acme.test") if role != Role.ADMIN else None
    client = APIClient()
    if by_key:
        _, plain = services.create_api_key(organization=org, name=f"{role} key", role=role, created_by=user)
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    else:
        client.force_login(user or org.memberships.get(role=Role.ADMIN).user)
    assert client.get("/metrics").status_code == 401
    assert client.get("/readyz").status_code == 200
    assert APIClient().get("/metrics", HTTP_AUTHORIZATION="Bearer operator-token").status_code == 200


@pytest.mark.parametrize("role", Role.values)
def test_the_routing_settings_pages_and_menu_answer_as_the_policy_says(org, member, role):
    """Settings → Routing with real objects (the generic matrix above names none): each page and each change is
    refused (403) or done as Action.ROUTING says, and the menu offers the section to exactly those roles."""
    from routing import services as routing_services
    from routing.models import AssignmentRule, RepProfile

    rep = member(Role.REP, email="rita@acme.test")
    profile = RepProfile.objects.get(organization=org, user=rep)
    team = routing_services.save_team(organization_id=org.pk, data={"name": "Sales", "members": [profile]})
    rule = routing_services.save_rule(organization_id=org.pk, data={"name": "Germans", "strategy": "round_robin",
                                                                   "team": team})
    user = org.memberships.get(role=Role.ADMIN).user if role == Role.ADMIN else member(role)
    client = APIClient()
    client.force_login(user)
    allowed = role in policy.ALLOWED[Action.ROUTING]
    pages = ["/settings/routing/", "/settings/routing/rules/new/", f"/settings/routing/rules/{rule.pk}/",
             f"/settings/routing/rules/{rule.pk}/delete/", "/settings/routing/teams/", "/settings/routing/teams/new/",
             f"/settings/routing/teams/{team.pk}/", f"/settings/routing/teams/{team.pk}/delete/",
             "/settings/routing/reps/", f"/settings/routing/reps/{rep.pk}/"]
    changes = [(f"/settings/routing/rules/{rule.pk}/move/", {"direction": "down"}),
               (f"/settings/routing/reps/{rep.pk}/", {"capacity": "7", "weight": "1", "available": "on"}),
               (f"/settings/routing/teams/{team.pk}/", {"name": "Renamed", "members": [str(rep.pk)]}),
               ("/settings/routing/teams/new/", {"name": "Night shift"}),
               ("/settings/routing/rules/new/", {"name": "More", "strategy": "pool", "team": str(team.pk),
                                                 "max_reassignments": "2"}),
               (f"/settings/routing/rules/{rule.pk}/delete/", {})]
    wrong = [f"GET {url}: {status}" for url in pages
             if (status := client.get(url).status_code) != (200 if allowed else 403)]
    wrong += [f"POST {url}: {status}" for url, data in changes
              if (status := client.post(url, data).status_code) != (302 if allowed else 403)]
    assert not wrong, "\n".join(wrong)
    assert AssignmentRule.objects.filter(pk=rule.pk).exists() != allowed
    assert (RepProfile.objects.get(pk=profile.pk).capacity == 7) == allowed
    assert ('href="/settings/routing/"' in client.get("/leads/").content.decode()) == allowed


def test_an_api_key_is_never_above_its_creator(org, member):
    marketer = member(Role.MARKETER)
    client = APIClient()
    client.force_login(marketer)
    refused = client.post("/api/v1/api-keys/", {"name": "escalate", "role": "admin"}, format="json")
    assert refused.status_code == 400 and "role" in refused.json()["errors"]
    unknown = client.post("/api/v1/api-keys/", {"name": "typo", "role": "superuser"}, format="json")
    assert unknown.status_code == 400 and "role" in unknown.json()["errors"]
    made = client.post("/api/v1/api-keys/", {"name": "mine"}, format="json")
    assert made.status_code == 201 and made.json()["role"] == Role.MARKETER
    assert made.json()["created_by"] == marketer.email
    assert org.api_keys.filter(role=Role.ADMIN).count() == 0


def test_policy_grants_only_what_a_role_has():
    assert policy.grantable_roles(Role.ADMIN) == list(Role)
    assert policy.grantable_roles(Role.MARKETER) == [Role.MARKETER]
    assert set(policy.grantable_roles(Role.MANAGER)) == {Role.MANAGER, Role.REP}
    assert policy.grantable_roles(Role.REP) == [Role.REP]


def test_test_emails_and_organization_settings_are_in_the_matrix():
    """The routes of test emails and of the organization settings name their actions (the matrix above walks them)."""
    actions = {route.name: route.action for route in ROUTES}
    assert actions["nurturing:template-test"] == actions["nurturing:template-test-new"] == Action.NURTURE
    assert actions["nurturing:sequence-edit"] == actions["nurturing:sequence-create"] == Action.NURTURE
    assert actions["org-settings"] == Action.ORG_SETTINGS
    assert policy.ALLOWED[Action.ORG_SETTINGS] == {Role.ADMIN}


@pytest.mark.parametrize("role", Role.values)
def test_posting_a_test_email_or_the_settings_answers_as_the_policy_says(org, member, role, mailoutbox):
    """The matrix opens pages with GET; these are POSTs: refused is a 403 before anything is sent or saved."""
    user = member(role, f"post-{role}@acme.test") if role != Role.ADMIN else org.memberships.get(role=Role.ADMIN).user
    client = APIClient()
    client.force_login(user)
    test_email = client.post("/emails/templates/test/", {"subject": "Hi", "html": "<p>Hi</p>"})
    settings_page = client.post("/settings/organization/", {"name": f"Renamed by {role}"})
    sequence_test = client.post("/emails/sequences/new/", {"step_count": "1", "s0-type": "email", "action": "test-0"})
    nurture = role in policy.ALLOWED[Action.NURTURE]
    assert (test_email.status_code == 403) != nurture and (sequence_test.status_code == 403) != nurture
    assert len(mailoutbox) == (1 if nurture else 0)
    assert (settings_page.status_code == 403) != (role == Role.ADMIN)
    org.refresh_from_db()
    assert (org.name == f"Renamed by {role}") == (role == Role.ADMIN)


def test_the_lead_pages_edit_and_log_ask_what_the_api_asks():
    """Editing a lead's details in place needs what the API's PATCH needs, and logging a touch what the queue's Log
    and the API's touch need: no role does through one door what another refuses. Every role may correct the details
    of the leads it works (a rep: its own, by policy.visible); the other fields stay org-wide work."""
    from leads.api.capture import LeadViewSet
    from routing.api import LeadTouchView

    actions = {route.name: route.action for route in ROUTES}
    assert actions["leads:details-edit"] == policy.action_of_view(LeadViewSet, "partial_update") == Action.EDIT_LEADS
    assert actions["leads:log"] == actions["routing:touch"] == policy.action_of_view(LeadTouchView) \
        == Action.WORK_LEADS
    assert actions["leads:details"] == actions["leads:detail"] == Action.WORK_LEADS
    assert policy.ALLOWED[Action.EDIT_LEADS] == policy.ALLOWED[Action.WORK_LEADS]
    assert Role.REP not in policy.ALLOWED[Action.MANAGE_LEADS]


def test_sync_and_bulk_routes_are_in_the_matrix():
    """The deleted-leads feed and the bulk operations ask the same actions as their single-item endpoints (the
    matrix above walks them for every role)."""
    actions = {(route.name, route.method): route.action for route in ROUTES}
    assert actions["lead-list", "get"] == actions["lead-deleted", "get"] == Action.WORK_LEADS
    # one lead's contact details are every role's to correct (EDIT_LEADS); changing many at once is org-wide work
    assert actions["lead-bulk-update", "post"] == Action.MANAGE_LEADS
    assert actions["lead-detail", "patch"] == Action.EDIT_LEADS
    assert actions["lead-bulk-stage", "post"] == actions["lead-stage", "post"] == Action.WORK_LEADS
    assert actions["lead-bulk-convert", "post"] == actions["lead-convert", "post"] == Action.WORK_LEADS
    assert actions["deal-bulk-close", "post"] == actions["deal-detail", "patch"] == Action.MANAGE_LEADS


def test_tasks_and_the_today_view_are_in_the_matrix():
    """Tasks (agenda) name their actions: every role plans and completes tasks (which ones it sees is
    agenda.selectors.visible, the same for the API and the pages); only some see every member's."""
    actions = {(route.name, route.method): route.action for route in ROUTES}
    assert actions["agenda:today", "get"] == actions["agenda:new", "get"] == actions["agenda:lead-card", "get"] \
        == Action.TASKS
    assert actions["task-list", "get"] == actions["task-list", "post"] == actions["task-bulk", "post"] == Action.TASKS
    assert actions["task-detail", "patch"] == actions["task-detail", "delete"] == Action.TASKS
    assert policy.ALLOWED[Action.TASKS] == set(Role)
    assert policy.ALLOWED[Action.ALL_TASKS] == {Role.ADMIN, Role.MARKETER}
