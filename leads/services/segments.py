"""Saved segments: create, change and delete them, and hand-pick the leads of static lists (set-based)."""

import uuid

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet, RestrictedError
from django.db.models.expressions import RawSQL
from django.utils import timezone

from leadcrm.errors import Conflict, Invalid

from ..conditions import ConditionError
from ..models import Lead, Segment, SegmentKind, SegmentMember
from ..segments import definition_q, validate_definition

# Leads named in one request to add to or remove from a list (ids or emails).
MEMBERS_LIMIT = 10_000


class SegmentInUse(Conflict):
    """A static list that dynamic segments test membership of cannot be deleted."""

    default_code = "segment_in_use"


class NotAStaticList(Invalid):
    """Members are hand-picked only in static lists; a dynamic segment's leads follow from its conditions."""

    default_code = "not_a_static_list"

    def __init__(self, message: str):
        super().__init__(message, errors={"kind": [message]})


class UnknownLeads(Invalid):
    """Lead ids or emails that name no lead of the organization; `missing` lists them, under `field` (the name
    the request gave them) in `errors`."""

    default_code = "unknown_leads"

    def __init__(self, missing: list[str], *, field: str = "leads"):
        message = f"No such leads: {', '.join(missing[:20])}{' …' if len(missing) > 20 else ''}"
        super().__init__(message, errors={field: [message]})
        self.missing = missing


def _walk(node, path: str, depth: int = 0):
    """Every (path, value) of a definition, parents first. The walk stops deeper than any usable definition
    nests (validate_definition refuses such nesting with its own message)."""
    if depth > 12:
        return
    yield path, node
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _walk(child, f"{path}.{key}" if path else str(key), depth + 1)


def _storable_text(value) -> bool:
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _precheck(definition) -> None:
    """What validate_definition does not look for: text PostgreSQL cannot take (NUL, lone surrogates)."""
    for path, node in _walk(definition, ""):
        if isinstance(node, dict):
            for key in node:
                if not _storable_text(key):
                    raise ConditionError({path or "definition": ["Keys must be text without null characters."]})
        elif isinstance(node, str) and not _storable_text(node):
            raise ConditionError({path: ["Null characters and lone surrogates are not allowed."]})


def clean_definition(organization_id, definition) -> dict:
    """The definition of a dynamic segment if it is usable, else ConditionError naming the offending part
    (`all.2.op`)."""
    _precheck(definition)
    return validate_definition(organization_id, definition)


def _clean(organization_id, kind: str, definition) -> dict:
    if kind not in SegmentKind.values:
        raise ConditionError({"kind": [f"Use one of {', '.join(SegmentKind.values)}."]})
    if kind == SegmentKind.STATIC:
        if definition:
            raise ConditionError({"definition": ["A static list has no conditions; add leads to it instead."]})
        return {}
    if definition is None or definition == {}:
        raise ConditionError({"definition": ['A dynamic segment needs conditions: {"all": [...]} or '
                                             '{"any": [...]}.']})
    return clean_definition(organization_id, definition)


def create_segment(*, organization_id, name: str, kind: str = SegmentKind.DYNAMIC, definition=None,
                   description: str = "", created_by=None) -> Segment:
    definition = _clean(organization_id, kind, definition)
    return Segment.objects.create(organization_id=organization_id, name=name, description=description, kind=kind,
                                  definition=definition, created_by=created_by)


def update_segment(*, segment: Segment, name: str | None = None, description: str | None = None,
                   definition=None) -> Segment:
    """Change name, description and (dynamic segments) conditions; a segment's kind stays what it was created as."""
    fields = ["updated_at"]
    if definition is not None:
        segment.definition = _clean(segment.organization_id, segment.kind, definition)
        fields.append("definition")
    if name is not None:
        segment.name = name
        fields.append("name")
    if description is not None:
        segment.description = description
        fields.append("description")
    segment.save(update_fields=fields)
    return segment


def segments_using(organization_id, key: str, object_id):
    """The org's dynamic segments with a condition naming `object_id` under `key` ("list", "campaign"), at any
    depth."""
    if key not in ("list", "campaign"):
        raise ValueError(key)
    uses = RawSQL(f"jsonb_path_exists(definition, '$.** ? (@.{key} == $id)', jsonb_build_object('id', %s::text))",
                  [str(object_id)])
    return Segment.objects.for_org(organization_id).filter(kind=SegmentKind.DYNAMIC).alias(uses=uses).filter(uses=True)


def segments_using_list(segment: Segment):
    """The org's other segments whose conditions test membership of `segment` (at any depth)."""
    return segments_using(segment.organization_id, "list", segment.pk).exclude(pk=segment.pk)


def delete_segment(*, segment: Segment) -> None:
    with transaction.atomic():
        if segment.kind == SegmentKind.STATIC:
            users = list(segments_using_list(segment).select_for_update().values_list("name", flat=True)[:5])
            if users:
                raise SegmentInUse("Segments test membership of this list: " + ", ".join(users)
                                   + ". Change them first.")
        try:
            segment.delete()
        except RestrictedError as exc:  # e.g. an assignment rule routes by this segment
            users = sorted({str(obj) for obj in exc.restricted_objects})[:5]
            raise SegmentInUse("In use by: " + ", ".join(users) + ". Change them first.") from None


# ----------------------------------------------------------------------------------------------- members


def _uuid(value) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def leads_by_ids(organization_id, ids, *, field: str = "leads") -> QuerySet:
    """The org's leads with these ids, or UnknownLeads naming the ids that are not among them (as `field`)."""
    ids = list(dict.fromkeys(str(pk) for pk in ids))
    valid = [pk for pk in map(_uuid, ids) if pk]
    found = {str(pk) for pk in Lead.objects.for_org(organization_id).filter(pk__in=valid).values_list("pk", flat=True)}
    missing = [pk for pk in ids if _uuid(pk) not in found]
    if missing:
        raise UnknownLeads(missing, field=field)
    return Lead.objects.for_org(organization_id).filter(pk__in=valid)


def leads_by_emails(organization_id, emails, *, field: str = "emails") -> QuerySet:
    """The org's leads with these emails (any case), or UnknownLeads naming the emails no lead has (as `field`)."""
    emails = list(dict.fromkeys(email.replace("\x00", "").strip().lower() for email in emails))
    emails = [email for email in emails if email]
    found = set(Lead.objects.for_org(organization_id).filter(email__in=emails).values_list("email", flat=True))
    missing = [email for email in emails if email not in found]
    if missing:
        raise UnknownLeads(missing, field=field)
    return Lead.objects.for_org(organization_id).filter(email__in=emails)


def _static(segment: Segment) -> None:
    if segment.kind != SegmentKind.STATIC:
        raise NotAStaticList("Only a static list has hand-picked members; this segment is defined by conditions.")


def add_to_list(*, segment: Segment, leads) -> int:
    """Put a queryset of leads (ids, a selection, a whole segment) into a static list in one statement;
    returns how many were not in it yet."""
    _static(segment)
    organization_id = segment.organization_id
    try:
        ids_sql, ids_params = leads.filter(organization_id=organization_id).values("id").query.sql_with_params()
    except EmptyResultSet:  # a queryset Django knows is empty (no ids, .none()) compiles to no SQL at all
        return 0
    table = SegmentMember._meta.db_table
    sql = f"""
        INSERT INTO {table} (organization_id, segment_id, lead_id, added_at)
        SELECT %s, %s, l.id, %s FROM {Lead._meta.db_table} l
        WHERE l.organization_id = %s AND l.id IN ({ids_sql})
        ON CONFLICT (organization_id, segment_id, lead_id) DO NOTHING
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [organization_id, segment.pk, timezone.now(), organization_id, *ids_params])
        added = cursor.rowcount
        if added:
            Segment.objects.filter(pk=segment.pk).update(updated_at=timezone.now())
    return added


def remove_from_list(*, segment: Segment, leads) -> int:
    """Take a queryset of leads out of a static list; returns how many were in it."""
    _static(segment)
    with transaction.atomic():
        removed, _ = (SegmentMember.objects.for_org(segment.organization_id)
                      .filter(segment=segment, lead__in=leads.filter(organization_id=segment.organization_id)
                              .values("id"))
                      .delete())
        if removed:
            Segment.objects.filter(pk=segment.pk).update(updated_at=timezone.now())
    return removed


# ----------------------------------------------------------------------------------------------- counts


def segment_q(segment: Segment) -> Q:
    """The leads of a segment as a Q on Lead (what selectors.segment_leads filters by)."""
    if segment.kind == SegmentKind.STATIC:
        return Q(pk__in=SegmentMember.objects.for_org(segment.organization_id).filter(segment=segment)
                 .values("lead_id"))
    return definition_q(segment.organization_id, segment.definition)


def segment_counts(organization_id, segments) -> dict:
    """{segment id: number of leads} for a page of segments, in one query however many there are: a single
    pass over the org's leads counting each segment's matches with its own FILTER."""
    organization_id = getattr(organization_id, "pk", organization_id)
    segments = [segment for segment in segments if str(segment.organization_id) == str(organization_id)]
    if not segments:
        return {}
    counts = {}
    for index, segment in enumerate(segments):
        try:
            counts[f"s{index}"] = Count("pk", filter=segment_q(segment))
        except ConditionError:  # a stored definition the language no longer accepts: no count, not a broken page
            continue
    totals = Lead.objects.for_org(organization_id).aggregate(**counts) if counts else {}
    return {segment.pk: totals.get(f"s{index}") for index, segment in enumerate(segments)}
