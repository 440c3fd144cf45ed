"""Privacy requests: export all that is held about one lead, and erase its personal data on request.

Other apps add their parts through `leadcrm.privacy` (registered in their AppConfig.ready()).
"""

import json

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q
from django.db.models.fields import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from leadcrm import audit, privacy
from leadcrm.errors import Conflict
from leadcrm.models import AuditAction, IdempotencyRecord

from .. import import_files
from ..models import (
    Activity,
    ActivityType,
    ConsentRecord,
    Deal,
    FormSubmission,
    ImportJob,
    ImportRowError,
    Lead,
    LifecycleStage,
    TombstoneReason,
    Touch,
)
from .tombstones import record_removal

# Lead fields that say who the person is; erasing blanks them. Stage, score, source type, UTM/campaign, company
# and dates stay, so reports count the lead as before.
PERSONAL_TEXT = ("email", "first_name", "last_name", "phone", "job_title", "city", "website", "external_id",
                 "bant_budget", "bant_authority", "bant_need", "bant_timeline")
# Activity properties that describe what happened rather than who it happened to; the rest are removed.
KEPT_PROPERTIES = frozenset({
    "channel", "fields", "merged", "form_id", "form_name", "import_id", "from", "to", "reason", "deal_id",
    "amount", "currency", "status", "rule", "strategy", "team", "how", "sequence_id", "message",
})
KEPT_TOUCH = frozenset({"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "source", "at"})


ERASED_MAY_CHANGE = frozenset({"unsubscribed", "do_not_contact", "bounced"})
ERASED_LABEL = "Erased lead"


def check_changeable(lead: Lead, fields) -> None:
    """An erased lead keeps only its opt-outs moving (an unsubscribe link in an old email still works); any other
    change is refused, wherever it comes from (API, pages, Django admin)."""
    if lead.erased_at is not None and set(fields) - ERASED_MAY_CHANGE:
        raise LeadErased("This lead was erased on request; it cannot be changed.")


class LeadErased(Conflict):
    """The lead was erased: it cannot be changed or merged."""

    default_code = "lead_erased"


def _kept(properties: dict) -> dict:
    def keep(key, value):
        if key in ("from", "to"):  # a stage move's; any other "to" may be an address
            return value in LifecycleStage.values or value is None
        if key == "fields":  # the names of the fields a capture gave
            return isinstance(value, list) and all(isinstance(name, str) for name in value)
        return key in KEPT_PROPERTIES and (isinstance(value, str | int | float | bool) or value is None)

    return {key: value for key, value in (properties or {}).items() if keep(key, value)}


def _row(obj, exclude=("organization",)) -> dict:
    data = {}
    for field in obj._meta.concrete_fields:
        # generated columns are derived by PostgreSQL from the fields that are exported; sync_xid is bookkeeping
        if field.name in exclude or field.generated or field.name == "sync_xid":
            continue
        data[field.name] = getattr(obj, field.attname)
    return data


# ----------------------------------------------------------------------------------------------- export


def export_lead(*, lead: Lead) -> dict:
    """Everything held about the lead, as JSON-safe data: its fields and each app's part."""
    lead_data = _row(lead)
    lead_data["owner"] = lead.owner.email if lead.owner_id else None
    parts = privacy.export(organization_id=lead.organization_id, lead_id=lead.pk)
    return {"lead": audit.json_safe(lead_data), "exported_at": timezone.now().isoformat(), **parts}


def _export_consents(organization_id, lead_id):
    return [_row(c, exclude=("organization", "lead")) for c in
            ConsentRecord.objects.for_org(organization_id).filter(lead_id=lead_id).order_by("given_at")]


def _export_activities(organization_id, lead_id):
    return [_row(a, exclude=("organization", "lead")) for a in
            Activity.objects.for_org(organization_id).filter(lead_id=lead_id).order_by("occurred_at", "id")]


def _export_submissions(organization_id, lead_id):
    return [{**_row(s, exclude=("organization", "lead", "form")), "form": s.form.name} for s in
            FormSubmission.objects.for_org(organization_id).filter(lead_id=lead_id).select_related("form")
            .order_by("created_at")]


def _export_touches(organization_id, lead_id):
    return [_row(t, exclude=("organization", "lead")) for t in
            Touch.objects.for_org(organization_id).filter(lead_id=lead_id).order_by("occurred_at", "id")]


def _erase_touches(organization_id, lead_id) -> None:
    """Where the person came from stays for attribution (source, UTM); the pages they came by go."""
    Touch.objects.for_org(organization_id).filter(lead_id=lead_id).update(referrer="", landing_page="")


def _export_deals(organization_id, lead_id):
    return [{**_row(d, exclude=("organization", "lead", "account")),
             "account": str(d.account) if d.account_id else None}
            for d in Deal.objects.for_org(organization_id).filter(lead_id=lead_id).select_related("account")
            .order_by("created_at")]


# ----------------------------------------------------------------------------------------------- erase


def erase_lead(*, lead: Lead, actor=None) -> bool:
    """Remove the lead's personal data here and in every app, in one transaction; the row stays, anonymous,
    with its stage, score, sources, campaign and deals. Erasing an erased lead changes nothing (False)."""
    with transaction.atomic():
        lead = Lead.objects.select_for_update().get(pk=lead.pk)
        if lead.erased_at is not None:
            return False
        email, identifiers = lead.email, [value for value in (lead.email, lead.phone, str(lead.pk)) if value]
        now = timezone.now()
        for name in PERSONAL_TEXT:
            setattr(lead, name, "")
        lead.custom_fields = {}
        lead.first_touch = {k: v for k, v in lead.first_touch.items() if k in KEPT_TOUCH}
        lead.last_touch = {k: v for k, v in lead.last_touch.items() if k in KEPT_TOUCH}
        lead.erased_at = now
        lead.save()
        record_removal(organization_id=lead.organization_id, leads=[lead], reason=TombstoneReason.ERASED, at=now)
        parts = privacy.erase(organization_id=lead.organization_id, lead_id=lead.pk)
        _forget_in_replays(lead.organization_id, identifiers)
        _forget_in_merges(lead.organization_id, lead.pk, email, identifiers)
        _erase_from_imports(lead.organization_id, email)
        audit.record(organization=lead.organization_id, actor=actor, action=AuditAction.ERASED,
                     obj=audit.Ref("leads.lead", str(lead.pk), ERASED_LABEL), changes={"parts": parts})
    return True


def _forget_in_replays(organization_id, identifiers) -> None:
    """Stored answers for Idempotency-Key replays may quote the lead: drop those that do."""
    text = Cast("body", TextField())
    match = Q()
    for value in identifiers:
        match |= Q(text__contains=value)
    IdempotencyRecord.objects.for_org(organization_id).annotate(text=text).filter(match).delete()


def _forget_in_merges(organization_id, lead_id, email: str, identifiers) -> None:
    """Another lead's merge activity lists the duplicates merged into it by email, name and phone: one of them may
    have been this person. Those entries keep only their id, so the merge still counts them."""
    match = Q()
    for value in identifiers:
        match |= Q(text__contains=value)
    merges = (Activity.objects.for_org(organization_id).filter(type=ActivityType.MERGE).exclude(lead_id=lead_id)
              .annotate(text=Cast("properties", TextField())).filter(match))
    for activity in merges:
        entries = activity.properties.get("merged") or []
        anonymous = [{"id": entry.get("id")} if _names_person(entry, email, identifiers) else entry
                     for entry in entries]
        if anonymous != entries:
            Activity.objects.filter(pk=activity.pk).update(properties={**activity.properties, "merged": anonymous})


def _names_person(entry, email: str, identifiers) -> bool:
    if not isinstance(entry, dict):
        return False
    return (email and str(entry.get("email", "")).lower() == email.lower()) or entry.get("phone") in identifiers


def _erase_own(organization_id, lead_id) -> None:
    for activity in Activity.objects.for_org(organization_id).filter(lead_id=lead_id).exclude(properties={}):
        kept = _kept(activity.properties)
        if kept != activity.properties:
            Activity.objects.filter(pk=activity.pk).update(properties=kept)
    FormSubmission.objects.for_org(organization_id).filter(lead_id=lead_id).update(
        data={}, ip_address=None, referrer="")
    ConsentRecord.objects.for_org(organization_id).filter(lead_id=lead_id).update(ip_address=None)


def _erase_from_imports(organization_id, email: str) -> None:
    """An imported file is kept until its rows are in: remove the lines that name the person from it."""
    if not email:
        return
    needle = email.encode()
    jobs = ImportJob.objects.for_org(organization_id).filter(Q(preview__icontains=email) | ~Q(file=""))
    for job in jobs.iterator():
        update = []
        if job.file:
            lines = import_files.read(job.file.name).splitlines(keepends=True)
            kept = [line for line in lines if needle not in line.lower()]
            if len(kept) != len(lines):
                import_files.rewrite(job, b"".join(kept))
                update.append("file")
        preview = [row for row in job.preview if email not in str(row).lower()]
        if preview != job.preview:
            job.preview = preview
            update.append("preview")
        if update:
            job.save(update_fields=update)
    for row in ImportRowError.objects.for_org(organization_id).filter(values__icontains=email):
        row.values = []
        row.save(update_fields=["values"])


def _erase_admin_log(organization_id, lead_id) -> None:
    """Django admin's "Recent actions" and history name the lead (`object_repr`) and may quote it in change
    messages (an inline's name): keep only which fields changed."""
    entries = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Lead), object_id=str(lead_id))
    for entry in entries:
        entry.object_repr, entry.change_message = ERASED_LABEL, _fields_only(entry.change_message)
        entry.save(update_fields=["object_repr", "change_message"])


def _fields_only(change_message: str) -> str:
    try:
        parts = json.loads(change_message or "[]")
    except ValueError:
        return ""  # free text written by hand: it may say anything
    if not isinstance(parts, list):
        return ""
    kept = []
    for part in parts:
        for action, detail in (part.items() if isinstance(part, dict) else []):
            fields = detail.get("fields") if isinstance(detail, dict) else None
            kept.append({action: {"fields": [str(field) for field in fields]} if isinstance(fields, list) else {}})
    return json.dumps(kept)


def register_parts() -> None:
    privacy.register("consents", exporter=_export_consents)
    privacy.register("activities", exporter=_export_activities, eraser=_erase_own)
    privacy.register("form_submissions", exporter=_export_submissions)
    privacy.register("deals", exporter=_export_deals)
    privacy.register("touches", exporter=_export_touches, eraser=_erase_touches)
    privacy.register("admin_log", eraser=_erase_admin_log)
