"""Every route with an id in its URL, read from the URL conf: a malformed id is a 404, never a 500.

Routes are taken from `get_resolver()`, so a route added later is checked without touching this file.
"""

import re

import pytest
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve
from rest_framework.test import APIClient

from leadcrm.models import Membership, Role

# Not an id of any kind: text, a quote (SQL), a NUL byte, and hex-looking text that is still no UUID.
MALFORMED = ["not-a-uuid", "1'", "%00", "abc-123", "9" * 30]

# Django's own pages, which answer an unknown object their own way: the admin redirects to its index with a
# message, the password-reset confirmation says the link is invalid.
SKIPPED_PREFIXES = ("admin/", "accounts/reset/")


_PARAM = re.compile(r"\(\?P<(\w+)>|<(?:\w+:)?(\w+)>")


def _params(route: str) -> list[tuple[str, str]]:
    """The route's parameters in order, each with the URL segment before it (`sequences` for a sequence id)."""
    found = []
    for match in _PARAM.finditer(route):
        before = re.sub(r"[\^$\\]", "", route[:match.start()]).rstrip("/").rpartition("/")[2]
        found.append((match.group(1) or match.group(2), before))
    return found


def _url(route: str, values: list[str]) -> str:
    """The route with its parameters, in order, replaced by `values`."""
    values = iter(values)
    out, i = [], 0
    while i < len(route):
        if route.startswith("(?P<", i):  # a regex group, which may nest parentheses
            depth, j = 0, i
            while True:
                depth += {"(": 1, ")": -1}.get(route[j], 0)
                j += 2 if route[j] == "\\" else 1
                if depth == 0:
                    break
            out.append(next(values))
            i = j
        elif (match := re.compile(r"<(?:\w+:)?\w+>").match(route, i)):  # a path() converter
            out.append(next(values))
            i = match.end()
        else:
            out.append(route[i])
            i += 1
    url = "".join(out).replace("^", "").replace("$", "").replace("\\.", ".")
    return "/" + url


def _routes_with_ids(patterns=None, prefix=""):
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _routes_with_ids(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            names = {name for name, _ in _params(route)}
            # DRF's `.json`-style format suffix routes repeat the routes above them.
            if names and "format" not in names and not route.lstrip("^").startswith(SKIPPED_PREFIXES):
                yield route


ROUTES = sorted(set(_routes_with_ids()))


def test_the_url_conf_has_routes_with_ids():
    # The generated cases below are only worth something if the walk finds the routes.
    assert any("sequences" in route and "enrollment_id" in route for route in ROUTES)
    assert any(route.startswith("leads/") for route in ROUTES)
    assert len(ROUTES) > 60


def test_every_parent_of_a_nested_id_has_a_real_object_below():
    # A nested id is only reached when its parent exists: a new nested route needs its parent in `parents`.
    nested = {before for route in ROUTES for _, before in _params(route)[:-1]}
    assert nested <= set(PARENTS) | {"c"}, nested - set(PARENTS)  # t/c/<token>/<n>/: a token, then a number


PARENTS = ("sequences", "campaigns", "webhooks")


@pytest.fixture
def parents(org):
    """A real object for each route segment that holds a parent id, so the id nested under it is looked up."""
    from campaigns import services as campaign_services
    from nurturing import services as nurturing_services
    from webhooks.models import Endpoint

    template = nurturing_services.create_template(organization_id=org.pk, name="Welcome", subject="Hi",
                                                  html="<p>Hi</p>", text="Hi")
    sequence = nurturing_services.save_sequence(organization_id=org.pk, data={
        "name": "Drip", "steps": [{"type": "email", "template": str(template.pk)}]})
    campaign = campaign_services.save_campaign(organization_id=org.pk, data={"name": "Spring", "budget": 100})
    endpoint = Endpoint.objects.create(organization=org, url="https://hooks.example.test/in",
                                       events=["lead.updated"], secret="whsec_c2VjcmV0")
    return {"sequences": str(sequence.pk), "campaigns": str(campaign.pk), "webhooks": str(endpoint.pk)}


@pytest.fixture
def clients(org, api):
    admin = APIClient()
    admin.force_login(Membership.objects.get(organization=org, role=Role.ADMIN).user)
    return {"org admin": admin, "API key": api}


def _cases(route, parents):
    """Every parameter malformed at once, and the last one malformed under real parents."""
    params = _params(route)
    for value in MALFORMED:
        yield _url(route, [value] * len(params))
        if len(params) > 1:
            yield _url(route, [parents.get(before, value) for _, before in params[:-1]] + [value])


@pytest.mark.parametrize("route", ROUTES, ids=ROUTES)
def test_a_malformed_id_is_a_404(route, clients, parents):
    actors = ["org admin", "API key"] if route.startswith("api/") else ["org admin"]
    for url in _cases(route, parents):
        for actor in actors:
            for method in ("get", "post"):
                response = getattr(clients[actor], method)(url)
                assert response.status_code < 500, (actor, method.upper(), url, response.status_code)
                if response.status_code == 405:
                    # Only a route that takes this text as its value (a slug, a token) may refuse the method
                    # before it looks the value up.
                    try:
                        resolve(url.replace("%00", "\x00"))
                    except Resolver404:
                        pytest.fail(f"{method.upper()} {url}: 405 from a route that should not match")
                    continue
                assert response.status_code == 404, (actor, method.upper(), url, response.status_code,
                                                      response.content[:200])
