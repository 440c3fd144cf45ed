"""Segment definitions: AND/OR groups of conditions, checked and turned into one Q on Lead (one SQL query).

    {"all": [                                                   every item must hold ("any": at least one)
        {"field": "country", "op": "in", "value": ["DE", "AT"]},            a lead field (leads.conditions)
        {"field": "created_at", "op": "within_days", "value": 30},
        {"activity": "page_view", "property": "url", "op": "contains", "value": "/pricing",
         "min_count": 3, "within_days": 14},                                 behaviour
        {"list": "<static list id>", "member": true},                        membership of a static list
        {"campaign": "<campaign id>", "member": true, "status": "responded"}  kinds other apps register
        {"any": [...]}                                                       a nested group
    ]}

Values are always bound as query parameters by the ORM; nothing is formatted into SQL.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from . import activity_types
from .conditions import ConditionError, activity_q, lead_q, validate_activity_condition, validate_lead_condition
from .models import Activity, Segment, SegmentKind, SegmentMember


@dataclass(frozen=True)
class ConditionKind:
    """A kind of segment condition another app adds (leads knows nothing of campaigns): named by `key` in a
    definition, checked by `validate(organization_id, node) -> node` (ConditionError naming its keys), turned into
    SQL by `q(organization_id, node) -> Q` on Lead, and said in words by `describe(organization_id, node)`."""

    key: str
    validate: Callable
    q: Callable
    describe: Callable
    # For the browser's condition builder: what the row picks ("campaign"), the org's choices (id, name) and the
    # statuses a member may be tested for (value, label).
    noun: str = ""
    choices: Callable = lambda organization_id: []
    statuses: tuple = ()


_kinds: dict[str, ConditionKind] = {}


def register_condition(kind: ConditionKind) -> None:
    _kinds[kind.key] = kind


def registered_kinds() -> list[ConditionKind]:
    return list(_kinds.values())


def registered_kind(node: dict) -> ConditionKind | None:
    return next((kind for key, kind in _kinds.items() if key in node), None)


MAX_DEPTH = 3  # groups inside groups inside the top group
MAX_ITEMS = 50  # conditions in one definition, all groups together


def _path(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


class _Checker:
    def __init__(self, organization_id):
        self.organization_id = organization_id
        self.items = 0

    def group(self, node, path: str, depth: int) -> dict:
        if not isinstance(node, dict) or len(node) != 1 or next(iter(node)) not in ("all", "any"):
            raise ConditionError({path or "definition": ['A group is {"all": [...]} or {"any": [...]}.']})
        if depth > MAX_DEPTH:
            raise ConditionError({path: [f"Groups nest at most {MAX_DEPTH} deep."]})
        combinator, items = next(iter(node.items()))
        path = _path(path, combinator)
        if not isinstance(items, list) or not items:
            raise ConditionError({path: ["A group needs a list of at least one condition."]})
        return {combinator: [self.item(item, _path(path, index), depth) for index, item in enumerate(items)]}

    def item(self, node, path: str, depth: int) -> dict:
        self.items += 1
        if self.items > MAX_ITEMS:
            raise ConditionError({path: [f"A segment has at most {MAX_ITEMS} conditions."]})
        if not isinstance(node, dict):
            raise ConditionError({path: ["A condition is an object."]})
        if "all" in node or "any" in node:  # its errors carry whole paths already
            return self.group(node, path, depth + 1)
        try:
            if "field" in node:
                return validate_lead_condition(node)
            if "activity" in node:
                return self.behaviour(node)
            if "list" in node:
                return self.membership(node)
            if kind := registered_kind(node):
                return kind.validate(self.organization_id, node)
        except ConditionError as exc:
            raise ConditionError({_path(path, key): messages for key, messages in exc.errors.items()}) from None
        names = ", ".join(["field", "activity", "list", *_kinds])
        raise ConditionError({path: [f"Unknown condition: use {names}, or a nested all/any group."]})

    def behaviour(self, node) -> dict:
        unknown = set(node) - {"activity", "property", "op", "value", "min_count", "within_days"}
        if unknown:
            raise ConditionError({"condition": [f"Unknown keys: {', '.join(sorted(unknown))}."]})
        activity = {k: v for k, v in node.items() if k in ("property", "op", "value")}
        try:
            validate_activity_condition({"activity_type": node["activity"], **activity},
                                        types=activity_types.known(self.organization_id))
        except ConditionError as exc:  # name the key as a segment spells it
            raise ConditionError({"activity" if key == "activity_type" else key: messages
                                  for key, messages in exc.errors.items()}) from None
        for key, low in (("min_count", 1), ("within_days", 1)):
            value = node.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not
                                      low <= value <= 100_000):
                raise ConditionError({key: [f"Must be a whole number from {low} to 100,000."]})
        return node

    def membership(self, node) -> dict:
        if set(node) - {"list", "member"} or not isinstance(node.get("member", True), bool):
            raise ConditionError({"list": ['Use {"list": ID, "member": true or false}.']})
        lists = Segment.objects.for_org(self.organization_id).filter(kind=SegmentKind.STATIC)
        if not _is_uuid(node["list"]) or not lists.filter(pk=node["list"]).exists():
            raise ConditionError({"list": [f"No static list {node['list']!r} in this organization."]})
        return node


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def validate_definition(organization_id, definition) -> dict:
    """The definition if it is usable, else ConditionError naming the offending part (e.g. `all.2.value`)."""
    return _Checker(organization_id).group(definition, "", 1)


def _behaviour_q(organization_id, node) -> Q:
    activity = {"activity_type": node["activity"], **{k: v for k, v in node.items() if k in ("property", "op",
                                                                                              "value")}}
    activities = Activity.objects.for_org(organization_id).filter(activity_q(activity), lead=OuterRef("pk"))
    if node.get("within_days"):
        activities = activities.filter(occurred_at__gte=timezone.now() - timedelta(days=node["within_days"]))
    min_count = node.get("min_count") or 1
    if min_count > 1:
        activities = (activities.values("lead").annotate(matches=Count("pk"))
                      .filter(matches__gte=min_count).order_by())
    return Q(Exists(activities))


def definition_q(organization_id, definition: dict) -> Q:
    """The leads a (validated) definition selects, as one Q (EXISTS subqueries for behaviour and lists)."""
    combinator, items = next(iter(definition.items()))
    q = Q()
    for node in items:
        if "all" in node or "any" in node:
            part = definition_q(organization_id, node)
        elif "field" in node:
            part = lead_q(node)
        elif "activity" in node:
            part = _behaviour_q(organization_id, node)
        elif kind := registered_kind(node):
            part = kind.q(organization_id, node)
        else:
            members = SegmentMember.objects.for_org(organization_id).filter(segment_id=node["list"],
                                                                            lead=OuterRef("pk"))
            part = Q(Exists(members)) if node.get("member", True) else ~Q(Exists(members))
        q = q & part if combinator == "all" else q | part
    return q
