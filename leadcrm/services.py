"""Tenancy changes: organizations, memberships, API keys."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from . import events
from .models import ApiKey, Membership, Organization, Role


class OrganizationExists(ValueError):
    pass


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
def add_member(*, organization: Organization, email: str, password: str | None, role: str) -> Membership:
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}; use one of {', '.join(Role.values)}.")
    user = get_or_create_user(email=email, password=password)
    if role == Role.ADMIN and not user.is_staff:
        user.is_staff = True  # org admins manage their org in Django admin
        user.save(update_fields=["is_staff"])
    membership, _ = Membership.objects.update_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
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


def create_api_key(*, organization: Organization, name: str, created_by=None) -> tuple[ApiKey, str]:
    """Returns the key row and the plain key, which is shown once and never stored."""
    return ApiKey.objects.create_key(organization=organization, name=name, created_by=created_by)


def revoke_api_key(*, api_key: ApiKey) -> None:
    if not api_key.revoked:
        api_key.revoked = True
        api_key.expiry_date = api_key.expiry_date or timezone.now()
        api_key.save(update_fields=["revoked", "expiry_date"])
