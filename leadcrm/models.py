"""Tenancy: organizations, memberships with roles, and API keys."""

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager


class Organization(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    # Email sent to leads (sequences): the From address is always the app's verified sending address
    # (DEFAULT_FROM_EMAIL); these settings choose the name shown beside it and where replies go.
    email_sender_name = models.CharField(
        max_length=100, blank=True, default="",
        help_text="The From name of email to leads; empty: the organization's name.")
    email_from_owner = models.BooleanField(
        default=False, help_text="Send each lead's email in the name of the lead's owner, replies to the owner.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class OrgQuerySet(models.QuerySet):
    """The scoped path is the easy path: `Model.objects.for_org(org)`."""

    def for_org(self, organization):
        organization_id = getattr(organization, "pk", organization)
        return self.filter(organization_id=organization_id)


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MANAGER = "manager", "Manager"
    MARKETER = "marketer", "Marketer"
    REP = "rep", "Sales rep"


class Membership(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MARKETER)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="membership_unique_user")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization} ({self.role})"


class ApiKeyManager(BaseAPIKeyManager.from_queryset(OrgQuerySet)):
    def get_usable_keys(self):
        return super().get_usable_keys().select_related("organization", "created_by")  # the principal needs both


class ApiKey(AbstractAPIKey):
    """Random key, stored as a SHA-512 hash; only the prefix is kept in clear for lookup."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    # The key acts exactly like a member of this role (leadcrm/policy.py); never above its creator's. Keys made
    # before keys had roles acted for the whole org, and stay admin keys.
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ADMIN)

    objects = ApiKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        indexes = [models.Index(fields=["organization", "-created"], name="apikey_org_created")]


class IdempotencyRecord(models.Model):
    """The first answer to a POST carrying an Idempotency-Key, replayed for repeats."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    body = models.JSONField(null=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "key"], name="idempotency_unique_key")]

    def __str__(self) -> str:
        return self.key


class AuditAction(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    DELETED = "deleted", "Deleted"
    REVOKED = "revoked", "Revoked"
    ERASED = "erased", "Erased"


class AuditEntry(models.Model):
    """Who changed which configuration object, when, and how (see leadcrm/audit.py). Append-only."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=300, help_text='The user\'s email, "API key <name>" or "system"')
    action = models.CharField(max_length=16, choices=AuditAction.choices)
    object_type = models.CharField(max_length=100, help_text="app_label.model_name")
    object_id = models.CharField(max_length=64)
    object_label = models.CharField(max_length=300, blank=True, default="")
    changes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder,
                               help_text='{field: [before, after]}; secrets only as "changed"')
    time = models.DateTimeField(default=timezone.now)

    objects = OrgQuerySet.as_manager()

    class Meta:
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["organization", "-time"], name="audit_org_time")]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_type} {self.object_label}"


class OutboxEvent(models.Model):
    """A domain event written in the transaction that caused it (the transactional outbox). Its handlers run once
    that commits; the row goes when every handler succeeded, else `pending` names those left for the beat to retry.

    Not a tenant table: the beat delivers every org's events, and the organization travels in the payload.
    """

    id = models.BigAutoField(primary_key=True)
    event = models.CharField(max_length=64)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    pending = models.JSONField(null=True, blank=True, help_text="Handlers still to run; null: all of them")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(help_text="When the beat may (re)deliver it")

    class Meta:
        indexes = [models.Index(fields=["next_attempt_at"], name="outbox_due")]

    def __str__(self) -> str:
        return f"{self.event} #{self.pk}"
