"""Tests of distribution. The helpers make reps, teams and rules through the services, so each test decides
exactly who is in which team and which rules an org has."""

import itertools

from leadcrm import services as core
from leadcrm.models import Role
from leads.models import Lead, LifecycleStage
from routing import services
from routing.models import RepProfile

_numbers = itertools.count()


def make_lead(org, **fields) -> Lead:
    fields.setdefault("email", f"lead{next(_numbers)}@example.test")
    fields.setdefault("lifecycle_stage", LifecycleStage.MQL)
    return Lead.objects.create(organization_id=org.pk, **fields)


def make_rep(org, name=None, role=Role.REP, **profile) -> RepProfile:
    """A member with a routing profile; `profile` fields (capacity, weight, territories…) are set as given."""
    email = f"{name or 'rep' + str(next(_numbers))}@{org.slug}.test"
    membership = core.add_member(organization=org, email=email, password=None, role=role)
    rep = RepProfile.objects.get(organization=org, user=membership.user)
    if profile:
        services.update_rep(profile=rep, data=profile)
    return rep


def make_team(org, name, reps, manager=None):
    return services.save_team(organization_id=org.pk, data={"name": name, "members": list(reps), "manager": manager})


def make_rule(org, name="rule", **fields):
    fields.setdefault("strategy", "round_robin")
    return services.save_rule(organization_id=org.pk, data={"name": name, **fields})


def route(lead, **kwargs):
    return services.route_lead(organization_id=lead.organization_id, lead_id=lead.pk, **kwargs)
