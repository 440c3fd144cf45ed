"""Which organization a request acts for, and what the acting user may do there.

Finding the org reads across orgs, which the app role cannot: these go through the SECURITY DEFINER functions of
migration 0004 (rls.lookup), which return org ids and the switcher's names, and nothing of an org's data.
"""

import uuid
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS
from django.http import Http404

from . import rls
from .models import Membership, Organization

SESSION_KEY = "active_organization_id"


@dataclass(frozen=True)
class Choice:
    """An org the user may act for (the switcher lists them): a membership's, or any org for a superuser."""

    organization: Organization
    membership: Membership | None

    @property
    def organization_id(self):
        return self.organization.pk


def organization_of_api_key(key: str):
    """The org of a usable key's prefix (the key itself is checked afterwards, under that org); None if unknown."""
    prefix, _, _ = key.partition(".")
    found = rls.lookup_ids("leadcrm_api_key_organization", prefix)
    return found[0] if found else None


def choices_of(user) -> list[Choice]:
    """One query, as the list of memberships was before the wall: the rows are built from what it returns."""
    if not user.is_authenticated:
        return []
    choices = []
    for organization_id, slug, name, membership_id, role in rls.lookup("leadcrm_organizations_of", user.pk):
        organization = Organization.from_db(DEFAULT_DB_ALIAS, ["id", "slug", "name"], [organization_id, slug, name])
        membership = None
        if membership_id is not None:
            membership = Membership.from_db(DEFAULT_DB_ALIAS, ["id", "organization_id", "user_id", "role"],
                                            [membership_id, organization_id, user.pk, role])
            membership.organization, membership.user = organization, user
        choices.append(Choice(organization, membership))
    return choices


def resolve_membership(request):
    """(membership, organization, choices) of the session user: the org chosen in the switcher, else the first
    membership's (a superuser's first org, when it has none). Scopes the database to that org."""
    choices = choices_of(request.user)
    if not choices:
        return None, None, choices
    chosen = request.session.get(SESSION_KEY)
    active = next((c for c in choices if str(c.organization_id) == chosen), None)
    active = active or next((c for c in choices if c.membership is not None), choices[0])
    rls.set_organization(active.organization_id)
    return active.membership, active.organization, choices


def switch_organization(request, organization_id) -> Organization:
    try:
        organization_id = uuid.UUID(str(organization_id))
    except ValueError:
        raise Http404("No such organization") from None
    choice = next((c for c in choices_of(request.user) if c.organization_id == organization_id), None)
    if choice is None:
        raise Http404("No such organization")
    rls.set_organization(choice.organization_id)
    request.session[SESSION_KEY] = str(choice.organization_id)
    return choice.organization
