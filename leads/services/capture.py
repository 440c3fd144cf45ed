"""Everything that changes leads: capture with dedupe/merge, updates, activities, forms."""

import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from uuid import UUID

import phonenumbers
from django.db import connection, models, transaction
from django.utils import timezone

from leadcrm import audit, events
from leadcrm.errors import Invalid

from ..models import (
    TOUCH_FIELDS,
    Activity,
    ActivityType,
    ConsentChannel,
    ConsentRecord,
    Form,
    FormSubmission,
    Lead,
    TombstoneReason,
    Touch,
)
from .tombstones import record_removal

# Fields a merge may fill when the existing lead has them empty.
MERGEABLE_FIELDS = (
    "first_name", "last_name", "phone", "job_title", "company", "industry", "company_size", "annual_revenue",
    "website", "country", "region", "city", "timezone", "source_type", "source", "utm_source", "utm_medium",
    "utm_campaign", "utm_term", "utm_content", "owner",
)


class PhoneNumberInvalid(Invalid):
    default_code = "invalid_phone"

    def __init__(self, value: str):
        message = "Enter a valid phone number, with its country code (e.g. +14155550123)."
        super().__init__(message, errors={"phone": [message]})
        self.value = value


def normalize_email(value: str) -> str:
    return (value or "").strip().lower()


def normalize_phone(value: str, country: str = "") -> str:
    """E.164, using the lead's country for numbers written without a +."""
    value = (value or "").strip()
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, (country or "").upper() or None)
    except phonenumbers.NumberParseException:
        raise PhoneNumberInvalid(value) from None
    if not phonenumbers.is_possible_number(number):
        raise PhoneNumberInvalid(value)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_empty(value) -> bool:
    return value is None or value == "" or value == [] or value == {}


@dataclass
class CaptureResult:
    lead: Lead
    created: bool


def _touch(data: dict, touch: dict | None) -> dict:
    touch = dict(touch or {})
    for field in ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "source"):
        if data.get(field) and field not in touch:
            touch[field] = data[field]
    if touch:
        touch.setdefault("at", timezone.now().isoformat())
    return touch


def _merge_into(lead: Lead, data: dict, touch: dict) -> list[str]:
    """Fill empty fields from data, never blanking a filled one. Returns the changed field names."""
    changed = []
    for field in MERGEABLE_FIELDS:
        value = data.get(field)
        if is_empty(value):
            continue
        current = getattr(lead, field if field != "owner" else "owner_id")
        if is_empty(current):
            setattr(lead, field, value)
            changed.append(field)
    # The lead's id in another system fills like any empty field (the lead was matched by it, its email or phone).
    if data.get("external_id") and not lead.external_id:
        lead.external_id = data["external_id"]
        changed.append("external_id")
    for flag in ("consent_opt_in", "unsubscribed", "do_not_contact"):
        if data.get(flag) and not getattr(lead, flag):
            setattr(lead, flag, True)
            changed.append(flag)
    if data.get("consent_opt_in") and lead.consent_at is None:
        lead.consent_at = timezone.now()
        changed.append("consent_at")
    new_tags = [tag for tag in data.get("tags") or [] if tag not in lead.tags]
    if new_tags:
        lead.tags = [*lead.tags, *new_tags]
        changed.append("tags")
    new_custom = {k: v for k, v in (data.get("custom_fields") or {}).items() if is_empty(lead.custom_fields.get(k))}
    if new_custom:
        lead.custom_fields = {**lead.custom_fields, **new_custom}
        changed.append("custom_fields")
    if touch:
        if not lead.first_touch:
            lead.first_touch = touch
            changed.append("first_touch")
        lead.last_touch = touch
        changed.append("last_touch")
    return changed


def _new_lead(organization_id, data: dict, touch: dict) -> Lead:
    now = timezone.now()
    lead = Lead(organization_id=organization_id, **data)
    lead.email = normalize_email(lead.email)
    stage = lead.lifecycle_stage or Lead._meta.get_field("lifecycle_stage").default
    lead.stage_entered_at = {stage: now.isoformat()}
    if lead.consent_opt_in and lead.consent_at is None:
        lead.consent_at = now
    if touch:
        lead.first_touch = touch
        lead.last_touch = touch
    return lead


@cache
def _row_template(model) -> tuple[str, list, list]:
    """`INSERT INTO table (columns) SELECT columns FROM jsonb_populate_record(...)` for one row of `model` given as
    one JSON object, with the fields whose values are plain and those holding JSON (each with its own encoder).

    One parameter instead of one per column (a lead has 60): psycopg parses a statement of more than 50 parameters
    anew on every call, and adapts each value on its own, which cost more than the rest of a capture's insert.
    PostgreSQL reads each value as its column's type, as it would a parameter."""
    fields = [field for field in model._meta.concrete_fields if not field.generated]  # Lead.reached_rank: PostgreSQL's
    quote = connection.ops.quote_name
    table, columns = quote(model._meta.db_table), ", ".join(quote(field.column) for field in fields)
    sql = f"INSERT INTO {table} ({columns}) SELECT {columns} FROM jsonb_populate_record(NULL::{table}, %s::jsonb)"
    json_fields = [field for field in fields if isinstance(field, models.JSONField)]
    return sql, [field for field in fields if field not in json_fields], json_fields


def _plain_json(value):
    """A column's value as JSON that PostgreSQL reads back exactly (full microseconds, unlike DjangoJSONEncoder)."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (Decimal, UUID)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a column value")


def _row_sql(instance) -> tuple[str, list]:
    """The INSERT of a new instance with its values as save() would take them (pre_save: auto_now and the like),
    without the ORM compiling a query on every call."""
    sql, plain_fields, json_fields = _row_template(type(instance))
    row = json.dumps({field.column: field.pre_save(instance, add=True) for field in plain_fields},
                     default=_plain_json, ensure_ascii=False)
    # A JSON field's value nests as it is, encoded as the field encodes it.
    nested = "".join(f', "{field.column}": {json.dumps(field.pre_save(instance, add=True), cls=field.encoder)}'
                     for field in json_fields)
    return sql, [row[:-1] + nested + "}"]


def _insert(instance, also=()) -> None:
    """INSERT a new instance as one plain statement (an activity), with the rows of `also` (its touch) inserted by
    the same statement."""
    ctes, params = [], []
    for number, other in enumerate(also):
        sql, values = _row_sql(other)
        ctes.append(f"also_{number} AS ({sql})")
        params += values
    sql, values = _row_sql(instance)
    with connection.cursor() as cursor:
        cursor.execute((f"WITH {', '.join(ctes)} " if ctes else "") + sql, params + values)
    _saved(instance, *also)


def _saved(*instances) -> None:
    for instance in instances:  # now they are saved instances, as after save()
        instance._state.adding = False
        instance._state.db = connection.alias


# A new lead conflicts with one of its org on the email's index or, when it has an external id, on any unique index
# of the lead table (email or external id). Named here because the ORM's conflict options cannot name a partial index.
CONFLICT_ON_EMAIL = "ON CONFLICT (organization_id, email) WHERE email <> '' DO NOTHING"
CONFLICT_ON_ANY = "ON CONFLICT DO NOTHING"


def _insert_new(lead: Lead, also: list, items: list, conflict: str) -> bool:
    """A new lead's whole capture in one statement: the lead, unless `conflict` finds its org has it already, and
    only then the rows of `also` (its touch, activity, consent) and the outbox rows of the events `items`. True if the
    lead was new; else nothing was written (no savepoint, no failed insert left behind for the merge)."""
    guard = "EXISTS (SELECT FROM new_lead)"
    sql, params = _row_sql(lead)
    ctes = [f"new_lead AS ({sql} {conflict} RETURNING 1)"]
    for number, other in enumerate(also):
        sql, values = _row_sql(other)
        ctes.append(f"also_{number} AS ({sql} WHERE {guard})")
        params += values
    emission = events.Emission.of(items, guard)
    select = guard
    if emission is not None:
        ctes.append(emission.cte)
        params += emission.params
        select += f", {emission.select}"
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(ctes)} SELECT {select}", params)
        created, *emitted = cursor.fetchone()
    if created:
        _saved(lead, *also)
        if emission is not None:
            emission.recorded(emitted[0])
    return created


def _existing_for_capture(organization_id, email: str, external_id: str) -> Lead:
    """The lead a capture with a taken email or external id merges into, row-locked: the lead with the external id
    when there is one (the other system's id names the person more surely than an address), else the email's."""
    leads = Lead.objects.for_org(organization_id).select_for_update()
    if external_id:
        lead = leads.filter(external_id=external_id).first()
        if lead is not None:
            return lead
    return leads.get(email=email)


def capture_lead(
    *, organization_id, data: dict, channel: str = "api", touch: dict | None = None, actor=None,
    activity_type: str = ActivityType.API_SUBMISSION, activity_properties: dict | None = None,
    consent: dict | None = None,
) -> CaptureResult:
    """Create a lead, or merge into the one with the same external id or, failing that, the same email. Records a
    submission activity.

    `data` holds validated lead field values (email already normalised). Safe under concurrency:
    two captures of one new email end as one lead, the loser merging into the winner. When `data` opts in,
    a consent record keeps how: `consent` = {"channel", "source", "text", "ip_address"} (channel: form/api).
    """
    email = normalize_email(data.get("email", ""))
    external_id = (data.get("external_id") or "").strip()
    data = {**data, "email": email, "external_id": external_id}
    touch = _touch(data, touch)
    now = timezone.now()
    properties = {"channel": channel, "fields": sorted(k for k, v in data.items() if not is_empty(v)),
                  **(activity_properties or {})}
    # Most captures are of new emails, so try the insert first, with all the rest of the capture: one statement, atomic
    # on its own (no transaction to open and commit around it). Only a taken email costs the lookup.
    lead = _new_lead(organization_id, data, touch)
    lead.last_activity_at = now  # the submission recorded with it
    visit = new_touch(organization_id=organization_id, lead=lead, channel=channel, touch=touch, at=now)
    activity = Activity(organization_id=organization_id, lead=lead, type=activity_type, occurred_at=now,
                        properties={**properties, "merged": False}, **audit.actor_fields(actor))
    rows = [visit, activity]
    if data.get("consent_opt_in"):
        rows.append(_consent(organization_id, lead, consent or {}, now))
    if _insert_new(lead, rows, _captured(lead, visit, activity, created=True),
                   CONFLICT_ON_ANY if external_id else CONFLICT_ON_EMAIL):
        return CaptureResult(lead=lead, created=True)
    with transaction.atomic():
        # The lead exists (by external id or email), or a concurrent capture just committed it (the insert waited for
        # that): merge into it under a row lock.
        lead = _existing_for_capture(organization_id, email, external_id)
        changed = _merge_into(lead, data, touch)
        if email and not lead.email and not Lead.objects.for_org(organization_id).filter(email=email).exists():
            lead.email = email  # matched by external id: an empty address fills like any empty field
            changed.append("email")
        if changed:
            lead.save(update_fields=[*changed, "updated_at"])
        visit = new_touch(organization_id=organization_id, lead=lead, channel=channel, touch=touch, at=now)
        activity = record_activity(organization_id=organization_id, lead=lead, type=activity_type, actor=actor,
                                   emit_event=False, occurred_at=now, also=[visit],
                                   properties={**properties, "merged": True})
        events.emit_many(_captured(lead, visit, activity, created=False))
        if data.get("consent_opt_in"):
            _consent(organization_id, lead, consent or {}, now).save(force_insert=True)
    return CaptureResult(lead=lead, created=False)


def _captured(lead: Lead, visit: Touch, activity: Activity, created: bool) -> list[tuple[str, dict]]:
    """A capture's events."""
    return [
        # The campaign of this touch, not the lead's first one: a returning lead joins the later campaign too.
        (events.LEAD_CAPTURED, {"organization_id": lead.organization_id, "lead_id": lead.pk, "created": created,
                                "channel": visit.channel, "utm_campaign": visit.utm_campaign}),
        (events.ACTIVITY_RECORDED, {"organization_id": lead.organization_id, "lead_id": lead.pk,
                                    "activity_id": activity.pk, "type": activity.type}),
    ]


def new_touch(*, organization_id, lead: Lead, channel: str, touch: dict, at) -> Touch:
    """This capture as a row of the lead's touch history (saved with the capture's activity)."""
    return Touch(organization_id=organization_id, lead=lead, occurred_at=at, channel=channel,
                 **{name: str(touch.get(name) or "")[:Touch._meta.get_field(name).max_length]
                    for name in TOUCH_FIELDS})


def _consent(organization_id, lead: Lead, consent: dict, now) -> ConsentRecord:
    """The record of how the lead opted in (not saved)."""
    channel = consent.get("channel") or ConsentChannel.API
    return ConsentRecord(
        organization_id=organization_id, lead=lead, given_at=now,
        channel=channel if channel in ConsentChannel.values else ConsentChannel.API,
        source=(consent.get("source") or "")[:200], text=consent.get("text") or "",
        ip_address=consent.get("ip_address") or None,
    )


def record_activity(
    *, organization_id, lead: Lead, type: str, properties: dict | None = None, occurred_at=None, actor=None,
    emit_event: bool = True, also=(),
) -> Activity:
    """Append to the lead's timeline (with the rows of `also`, e.g. a capture's touch, in the same statement)."""
    occurred_at = occurred_at or timezone.now()
    activity = Activity(organization_id=organization_id, lead=lead, type=type, properties=properties or {},
                        occurred_at=occurred_at, **audit.actor_fields(actor))
    _insert(activity, also=also)
    # last_activity_at only moves forward, so a value already this recent in memory is one in the row too.
    if lead.last_activity_at is None or lead.last_activity_at < occurred_at:
        Lead.objects.filter(pk=lead.pk).exclude(last_activity_at__gte=occurred_at).update(
            last_activity_at=occurred_at
        )
        lead.last_activity_at = occurred_at
    if emit_event:
        events.emit(events.ACTIVITY_RECORDED, organization_id=organization_id, lead_id=lead.pk,
                    activity_id=activity.pk, type=type)
    return activity


def track_activity(
    *, organization_id, type: str, lead: Lead | None = None, email: str = "", properties=None, occurred_at=None,
    actor=None,
) -> tuple[Activity, bool]:
    """Record an activity for a lead, or for an email (creating the lead when it is new)."""
    created = False
    with transaction.atomic():
        if lead is None:
            email = normalize_email(email)
            lead = Lead.objects.for_org(organization_id).filter(email=email).first()
            if lead is None:
                result = capture_lead(
                    organization_id=organization_id, data={"email": email}, channel="activity",
                    activity_type=ActivityType.API_SUBMISSION,
                )
                lead, created = result.lead, result.created
        activity = record_activity(
            organization_id=organization_id, lead=lead, type=type, properties=properties,
            occurred_at=occurred_at, actor=actor,
        )
    return activity, created


def update_lead(*, lead: Lead, data: dict, actor=None, bulk: bool = False) -> Lead:
    """Apply a partial update; emits lead.updated with the changed field names. `bulk`: one of many leads changed
    by one request, whose caller announces them all in one leads.changed (emit_leads_changed), so consumers that
    work set-based (scoring) take them together instead of one task per lead."""
    from .privacy import check_changeable  # privacy's erasure runs the apps' erasers, which may import capture

    check_changeable(lead, data)
    if "email" in data:
        data = {**data, "email": normalize_email(data["email"])}
    changed = [field for field, value in data.items() if getattr(lead, field) != value]
    if not changed:
        return lead
    with transaction.atomic():
        for field in changed:
            setattr(lead, field, data[field])
        lead.save(update_fields=[*changed, "updated_at"])
        events.emit(events.LEAD_UPDATED, organization_id=lead.organization_id, lead_id=lead.pk, fields=changed,
                    actor_id=getattr(audit.user_of(actor), "pk", None),
                    api_key=audit.actor_label(actor) if audit.user_of(actor) is None and actor else "",
                    **({"bulk": True} if bulk else {}))
    return lead


def assign_owner(*, lead: Lead, owner_id, details: dict, actor=None) -> None:
    """Hand the lead to a user (None: to nobody). The timeline records it with `details` (who, why);
    distribution does the choosing and keeps the history."""
    assign_owners(organization_id=lead.organization_id, changes=[(lead, owner_id, details)], actor=actor)


def assign_owners(*, organization_id, changes: list[tuple[Lead, int | None, dict]], actor=None, now=None) -> None:
    """`assign_owner` for many leads of one org at once: one UPDATE of the owners and one INSERT of the timeline's
    owner-change rows, however many leads change hands. `changes` are (lead, new owner id, details)."""
    if not changes:
        return
    now = now or timezone.now()
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        # last_activity_at only moves forward (GREATEST skips a NULL): the owner change is the newest activity.
        cursor.execute(
            f"UPDATE {quote(Lead._meta.db_table)} AS lead SET owner_id = change.owner_id, updated_at = %s, "
            f"last_activity_at = GREATEST(lead.last_activity_at, %s) "
            f"FROM unnest(%s::uuid[], %s::bigint[]) AS change(id, owner_id) "
            f"WHERE lead.id = change.id AND lead.organization_id = %s",
            [now, now, [lead.pk for lead, _, _ in changes], [owner_id for _, owner_id, _ in changes],
             organization_id])
    Activity.objects.bulk_create([
        Activity(organization_id=organization_id, lead=lead, type=ActivityType.OWNER_CHANGE, properties=details,
                 occurred_at=now, **audit.actor_fields(actor))
        for lead, _, details in changes])
    for lead, owner_id, _ in changes:
        lead.owner_id = owner_id
        if lead.last_activity_at is None or lead.last_activity_at < now:
            lead.last_activity_at = now


def delete_lead(*, lead: Lead) -> None:
    """Delete the lead with its timeline; its tombstone tells integrations' copies (GET /api/v1/leads/deleted/)."""
    with transaction.atomic():
        record_removal(organization_id=lead.organization_id, leads=[lead], reason=TombstoneReason.DELETED)
        lead.delete()


def submit_form(
    *, form: Form, values: dict, data: dict, touch: dict, ip_address: str | None, referrer: str
) -> CaptureResult:
    """A public form submission: `values` are the validated lead fields (hidden values included),
    `data` what the visitor typed, kept with the submission."""
    with transaction.atomic():
        result = capture_lead(
            organization_id=form.organization_id, data=values, channel="form", touch=touch,
            activity_type=ActivityType.FORM_SUBMISSION,
            activity_properties={"form_id": str(form.pk), "form_name": form.name},
            consent={"channel": ConsentChannel.FORM, "source": form.slug, "ip_address": ip_address,
                     "text": data.get("consent_text") or form.consent_text},
        )
        FormSubmission.objects.create(
            organization_id=form.organization_id, form=form, lead=result.lead, data=data,
            created_lead=result.created, ip_address=ip_address, referrer=referrer[:1000],
        )
    return result

