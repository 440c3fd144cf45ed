"""Tenancy changes: organizations, memberships, API keys."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from . import audit, events, policy
from .errors import Conflict, Invalid
from .mailheaders import MAX_DISPLAY_NAME, header_text
from .models import ApiKey, AuditAction, Membership, Organization, Role


class OrganizationExists(Conflict):
    default_code = "organization_exists"


def get_or_create_user(*, email: str, password: str | None = None):
    User = get_user_model()
    email = email.strip().lower()
    user = User.objects.filter(username=email).first()
    if user is None:
        user = User(username=email, email=email)
        user.set_password(password) if password else user.set_unusable_password()
        user.save()
    elif password:
        user.set_password(password)
        user.save(update_fields=["password"])
    return user


@transaction.atomic
def add_member(*, organization: Organization, email: str, password: str | None, role: str,
               actor=None) -> Membership:
    if role not in Role.values:
        raise Invalid(f"Unknown role {role!r}; use one of {', '.join(Role.values)}.", code="unknown_role")
    user = get_or_create_user(email=email, password=password)
    if role == Role.ADMIN and not user.is_staff:
        user.is_staff = True  # org admins manage their org in Django admin
        user.save(update_fields=["is_staff"])
    existing = Membership.objects.filter(organization=organization, user=user).first()
    before = audit.snapshot(existing) if existing else None
    membership, _ = Membership.objects.update_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
    audit.record_save(organization=organization, actor=actor, obj=membership, before=before)
    events.emit_now(events.MEMBER_ADDED, organization_id=organization.pk, user_id=user.pk, role=role)
    return membership


@transaction.atomic
def change_role(*, membership: Membership, role: str, actor=None) -> Membership:
    """Give a member another role (audited). The org keeps at least one admin."""
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}; use one of {', '.join(Role.values)}.")
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == role:
        return membership
    if membership.role == Role.ADMIN and not Membership.objects.for_org(membership.organization_id).filter(
            role=Role.ADMIN).exclude(pk=membership.pk).exists():
        raise ValueError("The organization needs at least one admin: make someone else admin first.")
    before = audit.snapshot(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    if role == Role.ADMIN and not membership.user.is_staff:
        membership.user.is_staff = True  # as add_member: org admins work in Django admin too
        membership.user.save(update_fields=["is_staff"])
    audit.record_save(organization=membership.organization, actor=actor, obj=membership, before=before)
    return membership


@transaction.atomic
def create_organization(*, slug: str, name: str, owner_email: str, owner_password: str | None) -> Organization:
    if Organization.objects.filter(slug=slug).exists():
        raise OrganizationExists(f"An organization with slug {slug!r} already exists.")
    organization = Organization.objects.create(slug=slug, name=name)
    add_member(organization=organization, email=owner_email, password=owner_password, role=Role.ADMIN)
    events.emit_now(events.ORG_CREATED, organization_id=organization.pk)  # e.g. default scoring rules
    return organization


@transaction.atomic
def create_api_key(*, organization: Organization, name: str, role: str = Role.ADMIN, created_by=None, actor=None,
                   grantor_role: str | None = None) -> tuple[ApiKey, str]:
    """Returns the key row and the plain key, which is shown once and never stored. `actor` defaults to
    `created_by` (an API key may create another: then it is the actor). A key made for a member or a key
    (`grantor_role`) can do nothing that role cannot; commands and seeding pass none."""
    problem = policy.grant_problem(role, grantor_role)
    if problem:
        raise ValueError(problem)
    api_key, plain = ApiKey.objects.create_key(organization=organization, name=name, created_by=created_by,
                                               role=role)
    audit.record_save(organization=organization, actor=actor or created_by, obj=api_key, before=None)
    return api_key, plain


@transaction.atomic
def revoke_api_key(*, api_key: ApiKey, actor=None) -> None:
    if not api_key.revoked:
        before = audit.snapshot(api_key)
        api_key.revoked = True
        api_key.expiry_date = api_key.expiry_date or timezone.now()
        api_key.save(update_fields=["revoked", "expiry_date"])
        audit.record(organization=api_key.organization_id, actor=actor, action=AuditAction.REVOKED, obj=api_key,
                     before=before, after=audit.snapshot(api_key))


@transaction.atomic
def update_organization(*, organization: Organization, name: str, email_sender_name: str = "",
                        email_from_owner: bool = False, actor=None) -> Organization:
    """Change an organization's settings (audited): its name, and how email to its leads is sent
    (leadcrm.mailheaders.sender)."""
    errors = {}
    name = header_text(name or "")
    sender_name = header_text(email_sender_name or "")
    if not name or len(name) > 200:
        errors["name"] = ["A name of 1 to 200 characters."]
    if len(sender_name) > MAX_DISPLAY_NAME:
        errors["email_sender_name"] = [f"At most {MAX_DISPLAY_NAME} characters."]
    if errors:
        raise Invalid(errors=errors)
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    before = audit.snapshot(organization)
    organization.name, organization.email_sender_name = name, sender_name
    organization.email_from_owner = bool(email_from_owner)
    organization.save(update_fields=["name", "email_sender_name", "email_from_owner"])
    audit.record_save(organization=organization, actor=actor, obj=organization, before=before)
    return organization
