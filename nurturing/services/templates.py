"""Email templates and their folders. Content is checked by the sandbox before anything is saved; every change
of content saves a new version (versions are never edited, a sent email points at the one it used)."""

from django.db import IntegrityError, transaction
from django.db.models import Max, RestrictedError

from leadcrm import audit
from leadcrm.errors import Conflict, Invalid

from ..models import EmailTemplate, SequenceStep, TemplateFolder, TemplateVersion
from ..rendering import TemplateProblem, check_template

MAX_NAME = 200
MAX_FOLDER_NAME = 100
UNCHANGED = object()


class TemplateRefused(Invalid):
    """A name or folder that cannot be used; `errors` maps fields to messages."""

    default_code = "invalid_template"

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors=errors)


class TemplateInUse(Conflict):
    """A template that sequence steps send cannot be deleted; the message names the sequences."""

    default_code = "template_in_use"


def _clean_name(name, *, field="name", limit=MAX_NAME) -> str:
    name = " ".join(str(name or "").split())
    if not name:
        raise TemplateRefused({field: ["A name is required."]})
    if len(name) > limit:
        raise TemplateRefused({field: [f"At most {limit} characters."]})
    return name


def _check(*, name, subject, html, text):
    """Every problem at once: the name's and the content's."""
    errors: dict[str, list[str]] = {}
    try:
        name = _clean_name(name)
    except TemplateRefused as exc:
        errors.update(exc.errors)
    try:
        check_template(subject, html, text)
    except TemplateProblem as exc:
        errors.update(exc.errors)
    if errors:
        raise TemplateProblem(errors)
    return name


# ----------------------------------------------------------------------------------------------- folders


def _folder_named(organization_id, name) -> TemplateFolder | None:
    return TemplateFolder.objects.for_org(organization_id).filter(name__iexact=name).first()


def resolve_folder(*, organization_id, folder) -> TemplateFolder | None:
    """A folder given by object (of this org) or by name (found case-insensitively, or made); None: no folder."""
    if folder is None or folder == "":
        return None
    if isinstance(folder, TemplateFolder):
        if folder.organization_id != organization_id:
            raise TemplateRefused({"folder": ["No such folder in this organization."]})
        return folder
    name = _clean_name(folder, field="folder", limit=MAX_FOLDER_NAME)
    found = _folder_named(organization_id, name)
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return TemplateFolder.objects.create(organization_id=organization_id, name=name)
    except IntegrityError:  # made by a concurrent request
        return _folder_named(organization_id, name)


@transaction.atomic
def create_folder(*, organization_id, name, actor=None) -> TemplateFolder:
    name = _clean_name(name, limit=MAX_FOLDER_NAME)
    if _folder_named(organization_id, name) is not None:
        raise TemplateRefused({"name": ["Another folder has this name."]})
    try:
        with transaction.atomic():
            folder = TemplateFolder.objects.create(organization_id=organization_id, name=name)
    except IntegrityError:
        raise TemplateRefused({"name": ["Another folder has this name."]}) from None
    audit.record_save(organization=organization_id, actor=actor, obj=folder, before=None)
    return folder


@transaction.atomic
def rename_folder(*, folder: TemplateFolder, name, actor=None) -> TemplateFolder:
    name = _clean_name(name, limit=MAX_FOLDER_NAME)
    before = audit.stored(folder)
    other = _folder_named(folder.organization_id, name)
    if other is not None and other.pk != folder.pk:
        raise TemplateRefused({"name": ["Another folder has this name."]})
    folder.name = name
    try:
        with transaction.atomic():
            folder.save(update_fields=["name"])
    except IntegrityError:
        raise TemplateRefused({"name": ["Another folder has this name."]}) from None
    audit.record_save(organization=folder.organization_id, actor=actor, obj=folder, before=before)
    return folder


@transaction.atomic
def delete_folder(*, folder: TemplateFolder, actor=None) -> None:
    """Delete a folder; its templates stay, outside any folder."""
    with audit.Deletion(folder, organization=folder.organization_id, actor=actor):
        folder.delete()


# ----------------------------------------------------------------------------------------------- templates


def latest_version(template: EmailTemplate) -> TemplateVersion | None:
    return TemplateVersion.objects.for_org(template.organization_id).filter(template=template).order_by(
        "-number").first()


def _same_content(version: TemplateVersion | None, subject, html, text) -> bool:
    return version is not None and (version.subject, version.html, version.text) == (subject, html, text)


@transaction.atomic
def create_template(*, organization_id, name, subject, html, text, folder=None, actor=None) -> EmailTemplate:
    """A new template with its content as version 1. `actor`: a user (who wrote the version) or an API key."""
    name = _check(name=name, subject=subject, html=html, text=text)
    folder = resolve_folder(organization_id=organization_id, folder=folder)
    template = EmailTemplate.objects.create(organization_id=organization_id, name=name, folder=folder)
    TemplateVersion.objects.create(organization_id=organization_id, template=template, number=1, subject=subject,
                                   html=html, text=text, created_by=audit.user_of(actor))
    audit.record_save(organization=organization_id, actor=actor, obj=template, before=None)
    return template


@transaction.atomic
def update_template(*, template: EmailTemplate, subject, html, text, name=None, folder=UNCHANGED,
                    actor=None) -> EmailTemplate:
    """Rename, move and/or change the content. New content saves version N+1; the same content saves none."""
    name = _check(name=template.name if name is None else name, subject=subject, html=html, text=text)
    # One editor at a time picks the next number: the row lock orders concurrent saves of the same template.
    EmailTemplate.objects.select_for_update().filter(pk=template.pk).first()
    before = audit.stored(template)
    changed = []
    if name != template.name:
        template.name = name
        changed.append("name")
    if folder is not UNCHANGED:
        folder = resolve_folder(organization_id=template.organization_id, folder=folder)
        if getattr(folder, "pk", None) != template.folder_id:
            template.folder = folder
            changed.append("folder")
    current = latest_version(template)
    if not _same_content(current, subject, html, text):
        number = (TemplateVersion.objects.filter(template=template).aggregate(n=Max("number"))["n"] or 0) + 1
        TemplateVersion.objects.create(organization_id=template.organization_id, template=template, number=number,
                                       subject=subject, html=html, text=text, created_by=audit.user_of(actor))
        changed.append("updated_at")
    if changed:
        template.save(update_fields=list(dict.fromkeys([*changed, "updated_at"])))
        audit.record_save(organization=template.organization_id, actor=actor, obj=template, before=before)
    return template


def _in_use_message(template: EmailTemplate) -> str | None:
    names = sorted(set(SequenceStep.objects.for_org(template.organization_id).filter(template=template)
                       .values_list("sequence__name", flat=True)))
    if not names:
        return None
    listed = ", ".join(f"“{name}”" for name in names[:5]) + (" and others" if len(names) > 5 else "")
    return (f"This template is sent by the sequence{'s' if len(names) > 1 else ''} {listed}: "
            "remove it from their steps first.")


@transaction.atomic
def delete_template(*, template: EmailTemplate, actor=None) -> None:
    """Delete a template and its versions; refused while a sequence step sends it."""
    message = _in_use_message(template)
    if message:
        raise TemplateInUse(message)
    try:
        with transaction.atomic(), audit.Deletion(template, organization=template.organization_id, actor=actor):
            template.delete()
    except RestrictedError:  # a step added meanwhile
        raise TemplateInUse(_in_use_message(template) or "A sequence step sends this template.") from None
