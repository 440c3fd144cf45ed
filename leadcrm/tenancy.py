"""Which organization a request acts for, and what the acting user may do there."""

import uuid

from django.http import Http404

from . import rls
from .models import Membership, Organization

SESSION_KEY = "active_organization_id"


def memberships_of(user):
    if not user.is_authenticated:
        return Membership.objects.none()
    return Membership.objects.filter(user=user).select_related("organization").order_by("organization__name")


def resolve_membership(request):
    """The session user's active membership: the one chosen in the org switcher, else the first."""
    memberships = list(memberships_of(request.user))
    if not memberships:
        return None, memberships
    chosen = request.session.get(SESSION_KEY)
    for membership in memberships:
        if str(membership.organization_id) == chosen:
            return membership, memberships
    return memberships[0], memberships


def switch_organization(request, organization_id) -> Organization:
    try:
        organization_id = uuid.UUID(str(organization_id))
    except ValueError:
        raise Http404("No such organization") from None
    with rls.unscoped():  # the membership is in the org being switched to, not the current one
        membership = memberships_of(request.user).filter(organization_id=organization_id).first()
    if membership is None:
        raise Http404("No such organization")
    rls.set_organization(membership.organization_id)
    request.session[SESSION_KEY] = str(membership.organization_id)
    return membership.organization
