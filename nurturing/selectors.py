"""Reads for nurturing."""

import uuid

from django.db.models import Count, Max, OuterRef, Q, Subquery

from leadcrm import rls
from leads.models import Lead
from leads.selectors import search_leads

from .models import EmailTemplate, SequenceStep, TemplateFolder, TemplateVersion

# ----------------------------------------------------------------------------------------------- templates


def templates(organization_id):
    """The org's templates with their folder, current version number (`version_number`) and `version_count`."""
    return (EmailTemplate.objects.for_org(organization_id).select_related("folder")
            .annotate(version_number=Max("versions__number"), version_count=Count("versions")))


def templates_with_content(organization_id):
    """templates() with the current version's `current_subject`, `current_html` and `current_text`."""
    latest = TemplateVersion.objects.filter(template=OuterRef("pk")).order_by("-number")
    return templates(organization_id).annotate(**{
        f"current_{part}": Subquery(latest.values(part)[:1]) for part in ("subject", "html", "text")})


def template_groups(organization_id) -> list[dict]:
    """Templates grouped by folder for the list page: named folders in name order (empty ones too), then the
    templates in no folder. Two queries."""
    rows = list(templates(organization_id).order_by("name", "id"))
    groups = [{"folder": folder, "templates": []}
              for folder in TemplateFolder.objects.for_org(organization_id).order_by("name", "id")]
    by_folder = {group["folder"].pk: group for group in groups}
    loose = {"folder": None, "templates": []}
    for template in rows:
        by_folder.get(template.folder_id, loose)["templates"].append(template)
    return [*groups, loose] if loose["templates"] else groups


def versions(template):
    """Every version of a template, newest first, with who saved it."""
    return (TemplateVersion.objects.for_org(template.organization_id).filter(template=template)
            .select_related("created_by").order_by("-number"))


def current_version(template) -> TemplateVersion | None:
    return versions(template).first()


def preview_lead(organization_id, key, *, leads=None, search=False) -> Lead | None:
    """The org's lead named by id or email address (for the editor's preview); None when there is none.
    `leads` narrows the choice (the member's visible leads); with `search`, text that is neither still names the one
    lead it finds (a part of a name, email or company), so a typed name works without picking from the list."""
    key = str(key or "").strip()
    if not key:
        return None
    leads = (Lead.objects.for_org(organization_id) if leads is None else leads).select_related("owner", "organization")
    try:
        return leads.filter(pk=uuid.UUID(key)).first()
    except ValueError:
        pass
    found = leads.filter(email__iexact=key).order_by("created_at").first()
    if found is None and search:
        matches = list(search_leads(leads, key).order_by("created_at", "id")[:2])
        found = matches[0] if len(matches) == 1 else None
    return found


def preview_lead_options(leads, query: str, *, limit: int = 10):
    """Up to `limit` of `leads` (the org's leads the member sees) whose name, email or company contains the query,
    any case, for the preview's lead picker; served by the lead_org_search trigram index."""
    query = str(query or "").strip()
    if not query:
        return leads.none()
    return (search_leads(leads, query).only("id", "email", "first_name", "last_name", "company")
            .order_by("last_name", "first_name", "email", "id")[:limit])


def folders(organization_id):
    return TemplateFolder.objects.for_org(organization_id).annotate(template_count=Count("templates")).order_by(
        "name", "id")


# ----------------------------------------------------------------------------------------------- sequences

from .models import Enrollment, Message, Sequence  # noqa: E402

# Counted per step and per template version. `sent` includes messages whose sender stopped mid-send (`unknown`):
# they most likely went out.
_SENT = Q(status__in=("sent", "unknown"))


def _counts(prefix: str = "") -> dict:
    def field(name):
        return f"{prefix}{name}"

    return {
        "sent": Count("pk", filter=_SENT),
        "bounced": Count("pk", filter=_SENT & Q(**{field("bounced_at__isnull"): False})),
        "opened": Count("pk", filter=_SENT & Q(**{field("opened_at__isnull"): False})),
        "clicked": Count("pk", filter=_SENT & Q(**{field("clicked_at__isnull"): False})),
        "unsubscribed": Count("pk", filter=_SENT & Q(**{field("unsubscribed_at__isnull"): False})),
        "skipped": Count("pk", filter=Q(status="skipped")),
        "failed": Count("pk", filter=Q(status="failed")),
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def with_rates(row: dict) -> dict:
    """Add delivered (sent less bounced) and the rates: opens, clicks and unsubscribes per delivered email,
    bounces per sent one."""
    delivered = row["sent"] - row["bounced"]
    return {**row, "delivered": delivered, "open_rate": _rate(row["opened"], delivered),
            "click_rate": _rate(row["clicked"], delivered), "bounce_rate": _rate(row["bounced"], row["sent"]),
            "unsubscribe_rate": _rate(row["unsubscribed"], delivered)}


def sequences(organization_id):
    return (Sequence.objects.for_org(organization_id).select_related("entry_segment", "entry_form")
            .prefetch_related("steps"))


def enrollments(sequence):
    return (Enrollment.objects.for_org(sequence.organization_id).filter(sequence=sequence)
            .select_related("lead"))


def sequence_stats(sequence) -> dict:
    """Per step: enrolments waiting there (`at_step`) and what its email did; and the enrolments by status.
    Three queries, however many steps."""
    steps = list(sequence.steps.order_by("position"))
    by_step = {row.pop("step_id"): row for row in
               Message.objects.for_org(sequence.organization_id).filter(step__sequence=sequence)
               .order_by().values("step_id").annotate(**_counts())}
    running = Enrollment.objects.for_org(sequence.organization_id).filter(sequence=sequence)
    waiting = dict(running.filter(status="active").order_by().values("position").annotate(n=Count("pk"))
                   .values_list("position", "n"))
    statuses = dict(running.order_by().values("status").annotate(n=Count("pk")).values_list("status", "n"))
    empty = {key: 0 for key in _counts()}
    rows = []
    for step in steps:
        # An enrolment at position p runs step p next: it waits there (a wait step moves it past itself).
        rows.append({"position": step.position, "type": step.type,
                     "template": str(step.template_id) if step.template_id else None,
                     "at_step": waiting.get(step.position, 0), **with_rates(by_step.get(step.pk, empty))})
    return {"sequence": str(sequence.pk),
            "enrollments": {status: statuses.get(status, 0) for status in ("active", "completed", "exited")},
            "steps": rows}


def version_stats(organization_id, version_ids) -> dict:
    """{template version id: sent, delivered, opened, clicked, bounced, unsubscribed and rates}, in one query."""
    rows = (Message.objects.for_org(organization_id).filter(template_version_id__in=list(version_ids))
            .order_by().values("template_version_id").annotate(**_counts()))
    return {row.pop("template_version_id"): with_rates(row) for row in rows}


def template_stats(template) -> list[dict]:
    """Each version of a template with its numbers, newest first."""
    versions_ = list(TemplateVersion.objects.for_org(template.organization_id).filter(template=template)
                     .order_by("-number").values("id", "number"))
    stats = version_stats(template.organization_id, [version["id"] for version in versions_])
    empty = with_rates({key: 0 for key in _counts()})
    return [{"version": version["number"], **stats.get(version["id"], empty)} for version in versions_]


def lead_messages(organization_id, lead):
    """The emails of a lead (sent, skipped, failed…), newest first, with their sequence and template version."""
    return (Message.objects.for_org(organization_id).filter(lead=lead)
            .select_related("enrollment__sequence", "step", "template_version__template"))


# --- browser pages


def sequence_numbers(organization_id, sequence_ids) -> dict:
    """{sequence id: enrolled, active, and the email numbers of all its steps with rates}, in two queries."""
    sequence_ids = list(sequence_ids)
    enrolled = {row["sequence_id"]: row for row in
                Enrollment.objects.for_org(organization_id).filter(sequence_id__in=sequence_ids).order_by()
                .values("sequence_id").annotate(enrolled=Count("pk"), active=Count("pk", filter=Q(status="active")))}
    sent = {row.pop("step__sequence_id"): row for row in
            Message.objects.for_org(organization_id).filter(step__sequence_id__in=sequence_ids).order_by()
            .values("step__sequence_id").annotate(**_counts())}
    empty = {key: 0 for key in _counts()}
    return {sequence_id: {"enrolled": enrolled.get(sequence_id, {}).get("enrolled", 0),
                          "active": enrolled.get(sequence_id, {}).get("active", 0),
                          **with_rates(sent.get(sequence_id, empty))}
            for sequence_id in sequence_ids}


def lead_enrollments(organization_id, lead):
    """The lead's enrolments, running ones first, then the newest."""
    return (Enrollment.objects.for_org(organization_id).filter(lead=lead).select_related("sequence")
            .order_by("status", "-enrolled_at"))


def sequence_choices(organization_id):
    """The org's sequences by name, for "enrol in…" pickers."""
    return Sequence.objects.for_org(organization_id).only("id", "name", "active").order_by("name", "id")


# ----------------------------------------------------------------------------------------------- audit log


def template_content(template) -> dict:
    """The current version's content, as the audit log shows a template."""
    version = TemplateVersion.objects.filter(template=template).order_by("-number").first()
    if version is None:
        return {}
    return {"version": version.number, "subject": version.subject, "html": version.html, "text": version.text}


def sequence_steps(sequence) -> list:
    """The steps in order, as the audit log shows a sequence."""
    return [{"type": step.type, "template": step.template.name if step.template else None, "config": step.config}
            for step in SequenceStep.objects.filter(sequence=sequence).select_related("template").order_by("position")]


# ----------------------------------------------------------------------------------------------- finding the org
# The app role sees one org at a time: these ask the SECURITY DEFINER functions of migration 0003 (leadcrm/rls.py).


def organization_of_message(message_id):
    found = rls.lookup_ids("nurturing_message_organization", str(message_id))
    return found[0] if found else None


def organizations_with_unsent(before) -> list:
    """Orgs with a message still queued or being sent, created before `before`."""
    return rls.lookup_ids("nurturing_organizations_with_unsent", before)


def organizations_with_due_steps(now) -> list:
    return rls.lookup_ids("nurturing_organizations_with_due_steps", now)


def organizations_with_segment_entry() -> list:
    """Orgs with an active sequence that segment entrants join."""
    return rls.lookup_ids("nurturing_organizations_with_segment_entry")
