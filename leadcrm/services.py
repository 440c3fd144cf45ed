"""Tenancy changes: organizations, memberships, API keys."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from . import audit, events
from .errors import Conflict, Invalid
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
def create_organization(*, slug: str, name: str, owner_email: str, owner_password: str | None) -> Organization:
    if Organization.objects.filter(slug=slug).exists():
        raise OrganizationExists(f"An organization with slug {slug!r} already exists.")
    organization = Organization.objects.create(slug=slug, name=name)
    add_member(organization=organization, email=owner_email, password=owner_password, role=Role.ADMIN)
    events.emit_now(events.ORG_CREATED, organization_id=organization.pk)  # e.g. default scoring rules
    return organization


@transaction.atomic
def create_api_key(*, organization: Organization, name: str, created_by=None, actor=None) -> tuple[ApiKey, str]:
    """Returns the key row and the plain key, which is shown once and never stored. `actor` defaults to
    `created_by` (an API key may create another: then it is the actor)."""
    api_key, plain = ApiKey.objects.create_key(organization=organization, name=name, created_by=created_by)
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
