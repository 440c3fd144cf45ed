"""The segment condition on campaign membership, registered with leads' segment language:

    {"campaign": "<campaign id>", "member": true}                    in the campaign (false: not in it)
    {"campaign": "<campaign id>", "member": true, "status": "responded"}   in it with that status (or a list)
"""

import uuid

from django.db.models import Exists, OuterRef, Q

from leads.conditions import ConditionError
from leads.segments import ConditionKind, register_condition

from .models import Campaign, CampaignMember, MemberStatus

KEYS = {"campaign", "member", "status"}


def _statuses(node) -> list[str]:
    status = node.get("status")
    return [] if status is None else [status] if isinstance(status, str) else list(status)


def validate(organization_id, node) -> dict:
    unknown = set(node) - KEYS
    if unknown:
        raise ConditionError({"campaign": [f"Unknown keys: {', '.join(sorted(unknown))}. "
                                           'Use {"campaign": ID, "member": true or false, "status"?: …}.']})
    if not isinstance(node.get("member", True), bool):
        raise ConditionError({"member": ["Use true or false."]})
    try:
        campaign_id = uuid.UUID(str(node["campaign"]))
    except ValueError:
        campaign_id = None
    if campaign_id is None or not Campaign.objects.for_org(organization_id).filter(pk=campaign_id).exists():
        raise ConditionError({"campaign": [f"No campaign {node['campaign']!r} in this organization."]})
    status = node.get("status")
    statuses = _statuses(node)
    if status is not None and (not statuses or not all(isinstance(value, str) for value in statuses)
                               or set(statuses) - set(MemberStatus.values)):
        raise ConditionError({"status": [f"Use one of {', '.join(MemberStatus.values)}, or a list of them."]})
    if statuses and node.get("member", True) is False:
        raise ConditionError({"status": ["A status only applies to members: leave it out with member false."]})
    return {"campaign": str(campaign_id), "member": node.get("member", True), **({"status": status} if statuses
                                                                                  else {})}


def q(organization_id, node) -> Q:
    members = CampaignMember.objects.for_org(organization_id).filter(campaign_id=node["campaign"],
                                                                     lead=OuterRef("pk"))
    if statuses := _statuses(node):
        members = members.filter(status__in=statuses)
    return Q(Exists(members)) if node.get("member", True) else ~Q(Exists(members))


def describe(organization_id, node) -> str:
    name = (Campaign.objects.for_org(organization_id).filter(pk=node.get("campaign")).values_list("name", flat=True)
            .first()) if organization_id else None
    text = f"{'Is' if node.get('member', True) else 'Is not'} in the campaign “{name or 'a deleted campaign'}”"
    if statuses := _statuses(node):
        text += " as " + " or ".join(MemberStatus(value).label.lower() for value in statuses
                                     if value in MemberStatus.values)
    return text


def choices(organization_id) -> list[tuple[str, str]]:
    return [(str(pk), name) for pk, name in
            Campaign.objects.for_org(organization_id).order_by("name", "pk").values_list("pk", "name")[:500]]


def register() -> None:
    register_condition(ConditionKind(key="campaign", validate=validate, q=q, describe=describe, noun="campaign",
                                     choices=choices, statuses=tuple(MemberStatus.choices)))
